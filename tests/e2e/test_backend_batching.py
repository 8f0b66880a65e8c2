"""Continuous batching on the CPU with SmolLM2: shared forward passes give each request exactly
what it gets alone; a full queue answers 503; a client that disconnects frees its slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MODEL_NAME = "SmolLM2-135M-Instruct"
MAX_BATCH, MAX_QUEUE = 16, 8
QUESTIONS = [
    "What is the capital of France?",
    "Name three colors.",
    "What is 2+2?",
    "Write a haiku about the sea.",
    "Who wrote Hamlet?",
    "What is the boiling point of water?",
    "Tell me a joke.",
    "What is Python?",
    "Explain gravity briefly.",
    "What is the largest planet?",
    "Say hello in Spanish.",
    "List two fruits.",
    "What day comes after Monday?",
    "What is AI?",
    "Describe a cat.",
    "What is the capital of Japan?",
]


@pytest.fixture(scope="module")
def server(backend, backend_home: Path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    # fp32: the test asks for bit-equal answers batched and alone. In bf16 a matmul over 16
    # rows rounds differently from one over 1 row (the CPU kernels block by rows), so greedy
    # decoding may flip at a near-tie; that is numerics, not the scheduler this test checks.
    srv = backend.start(
        backend_home,
        "--precision",
        "fp32",
        "--max-batch-size",
        str(MAX_BATCH),
        "--max-queue",
        str(MAX_QUEUE),
        "--context-length",
        "1024",
    )
    yield srv
    backend.stop(srv)


async def _chat(client: Any, question: str, max_tokens: int = 20) -> Any:
    return await client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
            "temperature": 0,
        },
    )


def _batch_counts(server: Any) -> tuple[float, float]:
    """(decode steps, steps with more than 8 rows) so far."""
    m = server.metrics()
    return m["llmops_batch_size_count"], m["llmops_batch_size_count"] - m[
        'llmops_batch_size_bucket{le="8"}'
    ]


def test_16_concurrent_greedy_requests_match_running_alone(server: Any) -> None:
    import httpx

    async def run() -> tuple[list[str], list[str], float]:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
            alone = []
            for q in QUESTIONS:
                r = await _chat(client, q)
                assert r.status_code == 200, r.text
                alone.append(r.json()["choices"][0]["message"]["content"])
            t0 = time.monotonic()
            rs = await asyncio.gather(*(_chat(client, q) for q in QUESTIONS))
            elapsed = time.monotonic() - t0
            assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
            return alone, [r.json()["choices"][0]["message"]["content"] for r in rs], elapsed

    _, wide_before = _batch_counts(server)
    alone, together, _ = asyncio.run(run())
    _, wide_after = _batch_counts(server)
    assert together == alone
    assert "Paris" in together[0] and "Tokyo" in together[-1]
    assert len(set(together)) > 10  # no response carries another request's tokens
    assert wide_after - wide_before >= 5, "the 16 requests were not decoded together"


def test_overload_is_refused_with_503_and_retry_after(server: Any) -> None:
    import httpx

    n = MAX_BATCH + MAX_QUEUE + 16

    async def run() -> list[Any]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits) as client:
            return await asyncio.gather(*(_chat(client, f"Count to {i}.", 12) for i in range(n)))

    rs = asyncio.run(run())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) >= 1 and codes.count(200) >= MAX_BATCH, codes
    refused = next(r for r in rs if r.status_code == 503)
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "overloaded"
    assert server.metrics()["llmops_rejected_requests_total"] >= codes.count(503)
    # the server is healthy and answering afterwards
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_client_disconnect_mid_stream_frees_the_slot(server: Any) -> None:
    import httpx

    before = server.metrics()["llmops_cancelled_requests_total"]
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Write a very long essay about the ocean."}],
        "max_tokens": 900,
        "temperature": 0,
        "stream": True,
    }
    with httpx.Client(base_url=server.url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            got = 0
            for line in r.iter_lines():
                if line.startswith("data:"):
                    got += 1
                if got >= 5:
                    break
        # leaving the block closes the connection mid-stream
        assert server.metrics()["llmops_active_sequences"] >= 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = server.metrics()
        if m["llmops_active_sequences"] == 0 and m["llmops_cancelled_requests_total"] > before:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the disconnected stream still holds its slot: {server.metrics()}")
    generated = server.metrics()["llmops_generated_tokens_total"]
    time.sleep(1.0)
    assert server.metrics()["llmops_generated_tokens_total"] == generated  # nothing runs on
