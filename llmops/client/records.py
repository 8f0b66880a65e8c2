"""One request's raw measurements and the closed-loop runner that makes them.

Timing uses ``time.perf_counter``. For each request: TTFT is from just before the request is
written to the first token's arrival; inter-token latency (ITL) is the gap between successive
token-bearing stream events; latency is until the stream ends. Failures are recorded by kind
(``connect``, ``auth``, ``http_5xx``, ``stream_error``, ``malformed_sse``, ...), never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from llmops.client.protocol import Endpoint, StreamResult
from llmops.client.stream import Transport, stream_tokens
from llmops.errors import EndpointError


class RequestRecord:
    """One request's raw measurements (perf_counter seconds)."""

    __slots__ = (
        "end_s",
        "error_kind",
        "error_message",
        "intended_s",
        "prompt_tokens",
        "server_tokens",
        "start_s",
        "text",
        "token_times",
    )

    def __init__(self) -> None:
        self.start_s = 0.0
        self.end_s = 0.0
        self.token_times: list[float] = []
        self.text = ""
        self.server_tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.error_kind: str | None = None
        self.error_message: str | None = None
        self.intended_s: float | None = None  # open loop: when it was meant to be sent

    @property
    def ok(self) -> bool:
        return self.error_kind is None


async def timed_request(transport: Transport, endpoint: Endpoint, body: bytes) -> RequestRecord:
    """Send one streamed request and time every token; failures are recorded, not raised."""
    rec = RequestRecord()
    result = StreamResult()
    times = rec.token_times
    parts: list[str] = []
    clock = time.perf_counter
    rec.start_s = clock()
    try:
        async for text in stream_tokens(transport, endpoint, body, result):
            times.append(clock())
            if text:
                parts.append(text)
    except EndpointError as exc:
        rec.error_kind, rec.error_message = exc.kind, exc.message
    except Exception as exc:  # a client bug must not hide the other requests' figures
        rec.error_kind, rec.error_message = "client", f"{type(exc).__name__}: {exc}"
    rec.end_s = clock()
    if not times and rec.error_kind is None:
        rec.error_kind, rec.error_message = "no_tokens", f"{endpoint.url} streamed no tokens"
    rec.text = "".join(parts)
    rec.server_tokens = result.completion_tokens
    rec.prompt_tokens = result.prompt_tokens
    return rec


async def run_level(
    transport: Transport,
    endpoint: Endpoint,
    bodies: list[bytes],
    *,
    concurrency: int,
    requests: int,
    on_done: Callable[[RequestRecord], None] | None = None,
) -> tuple[list[RequestRecord], float]:
    """``requests`` requests, ``concurrency`` at a time, bodies round-robin.

    Returns:
        The records in request order, and the level's wall time in seconds.
    """
    records: list[RequestRecord | None] = [None] * requests
    indices = iter(range(requests))

    async def worker() -> None:
        for i in indices:  # one iterator shared by all workers: each index is taken once
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
            records[i] = rec
            if on_done is not None:
                on_done(rec)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, requests)))))
    wall_s = time.perf_counter() - t0
    return [r for r in records if r is not None], wall_s
