"""``llmops bench --calibrate``: the client measured against the built-in mock server, whose
TTFT and ITL are fixed, at each request rate of the coming run.

What it prints is an upper bound of the client's own cost: measured TTFT minus the mock's fixed
TTFT includes the mock's timer lateness and the loopback hop as well as the client's request
writing, SSE parsing and timestamping. The schedule lag (actual minus intended send time) is the
client's alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llmops.errors import LlmopsError

MOCK_TTFT_MS = 20.0
MOCK_ITL_MS = 5.0
MOCK_TOKENS = 8
DEFAULT_RATES = (10.0, 100.0, 500.0)
SECONDS_PER_RATE = 2.0


def calibrate(settings: Any, seconds: float = SECONDS_PER_RATE) -> dict[str, Any]:
    """Run the mock in a child process and one open-loop point per rate against it."""
    from llmops.client.mock import MockProcess

    rates = settings.rates or DEFAULT_RATES
    with MockProcess(ttft_ms=MOCK_TTFT_MS, itl_ms=MOCK_ITL_MS, tokens=MOCK_TOKENS) as mock:
        points = asyncio.run(_run(mock.url, rates, settings, seconds))
    return {
        "mock_ttft_ms": MOCK_TTFT_MS,
        "mock_itl_ms": MOCK_ITL_MS,
        "tokens": MOCK_TOKENS,
        "seconds_per_rate": seconds,
        "points": points,
    }


async def _run(
    url: str, rates: tuple[float, ...], settings: Any, seconds: float
) -> list[dict[str, Any]]:
    from llmops.client.bench import make_transport
    from llmops.client.load import arrival_offsets, run_open_loop
    from llmops.client.prompts import request_bodies
    from llmops.client.protocol import OPENAI, Endpoint
    from llmops.client.summary import summarize

    endpoint = Endpoint(url, OPENAI, "mock", None)
    bodies = request_bodies(
        endpoint, [[{"role": "user", "content": "hi"}]], MOCK_TOKENS, include_usage=True
    )
    transport = make_transport(settings.transport, url, None, connections=256, timeout_s=30.0)
    out = []
    try:
        for rate in rates:
            offsets = arrival_offsets(rate, seconds, settings.arrival, settings.seed)
            records, _, wall = await run_open_loop(transport, endpoint, bodies, offsets)
            lv = summarize(records, concurrency=None, duration_s=wall)
            ttft, itl, lag = lv.ttft_ms, lv.itl_ms, lv.schedule_lag_ms
            if ttft is None or itl is None or lag is None:
                raise LlmopsError(
                    f"calibration at {rate:g} req/s: no request to the mock succeeded "
                    f"({', '.join(lv.errors) or 'no records'})",
                    "run `python -m llmops.client.mock` to see whether the mock starts here",
                )
            out.append(
                {
                    "rate_rps": rate,
                    "requests": lv.requests,
                    "errors": lv.failed,
                    "ttft_overhead_ms_p50": ttft.p50 - MOCK_TTFT_MS,
                    "ttft_overhead_ms_p99": ttft.p99 - MOCK_TTFT_MS,
                    "itl_overhead_ms_p50": itl.p50 - MOCK_ITL_MS,
                    "lag_ms_p50": lag.p50,
                    "lag_ms_p99": lag.p99,
                    "lag_ms_max": lag.max,
                }
            )
    finally:
        await transport.aclose()
    return out
