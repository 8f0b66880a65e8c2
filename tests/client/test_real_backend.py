"""The client against the real bundled backend serving SmolLM2 on the CPU (OpenAI and TGI
routes, usage counts, auth), started once in a subprocess with an API key."""

from __future__ import annotations

import asyncio

import pytest

from llmops.client.bench import BenchSettings, bench_endpoint
from llmops.client.chat import ChatSession
from llmops.client.prompts import load_prompts
from llmops.client.protocol import TGI, Endpoint, StreamResult, build_request
from llmops.client.stream import detect, stream_tokens
from llmops.client.transport import HttpxTransport, RawTransport
from llmops.errors import EndpointAuthError
from tests.client.servers import KEY, real_backend

pytestmark = pytest.mark.slow


def test_detects_openai_and_answers_paris() -> None:
    url = real_backend().url

    async def go() -> tuple[Endpoint, str, str]:
        t = HttpxTransport(url, KEY, timeout_s=120)
        try:
            ep = await detect(t, url, KEY, None)
            chat = ChatSession(ep, t, max_tokens=12, temperature=0)
            pieces: list[str] = []
            reply = await chat.send("What is the capital of France?", pieces.append)
            return ep, reply, "".join(pieces)
        finally:
            await t.aclose()

    ep, reply, streamed = asyncio.run(go())
    assert (ep.protocol, ep.model) == ("openai", "SmolLM2-135M-Instruct")
    assert "Paris" in reply and streamed == reply


@pytest.mark.parametrize("kind", ["raw", "httpx"])
def test_wrong_key_is_401(kind: str) -> None:
    url = real_backend().url

    async def go() -> None:
        t = (
            RawTransport(url, "not-the-key")
            if kind == "raw"
            else HttpxTransport(url, "not-the-key")
        )
        ep = Endpoint(url, "openai", "SmolLM2-135M-Instruct", "not-the-key")
        try:
            async for _ in stream_tokens(
                t, ep, build_request(ep, [{"role": "user", "content": "hi"}], 2), StreamResult()
            ):
                pass
        finally:
            await t.aclose()

    with pytest.raises(EndpointAuthError) as info:
        asyncio.run(go())
    assert "HTTP 401" in info.value.message and "not-the-key" not in info.value.message


def test_tgi_generate_stream_counts_match_details() -> None:
    url = real_backend().url

    async def go() -> tuple[list[str], StreamResult]:
        t = RawTransport(url, KEY, timeout_s=120)
        ep = Endpoint(url, TGI, "SmolLM2-135M-Instruct", KEY)
        result = StreamResult()
        body = build_request(ep, [{"role": "user", "content": "The capital of France is"}], 6)
        try:
            return [p async for p in stream_tokens(t, ep, body, result)], result
        finally:
            await t.aclose()

    pieces, result = asyncio.run(go())
    assert result.done and result.completion_tokens is not None
    assert 1 <= result.completion_tokens <= 6
    assert len(pieces) == result.completion_tokens  # one event per token, special ones as ""


def test_bench_endpoint_measures_with_server_usage() -> None:
    url = real_backend().url
    settings = BenchSettings(concurrency=(1, 2), requests=3, max_tokens=5, warmup=1, timeout_s=120)
    result = asyncio.run(bench_endpoint("", url, KEY, None, load_prompts(None), settings))
    assert result.error is None and result.protocol == "openai"
    assert [lv.concurrency for lv in result.levels] == [1, 2]
    for lv in result.levels:
        assert (lv.requests, lv.ok, lv.errors) == (3, 3, {})
        assert lv.token_source == "usage"
        assert 3 <= lv.output_tokens <= 15 and lv.prompt_tokens and lv.prompt_tokens > 0
        assert lv.ttft_ms is not None and lv.latency_ms is not None
        assert 0 < lv.ttft_ms.p50 <= lv.latency_ms.p50
        assert lv.request_throughput_rps > 0 and lv.output_throughput_tok_s > 0
