"""Both transports against scripted servers: a healthy stream, and every way a request fails.

Each failure must become its own EndpointError subclass with a one-line message naming the URL,
and the API key must never appear in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmops.client.chat import ChatSession
from llmops.client.protocol import OPENAI, TGI, Endpoint, StreamResult, build_request
from llmops.client.records import timed_request
from llmops.client.stream import Transport, detect, stream_tokens
from llmops.client.transport import HttpxTransport, RawTransport
from llmops.errors import (
    EndpointAuthError,
    EndpointError,
    EndpointHttpError,
    EndpointUnreachable,
    MalformedStreamError,
    StreamInterrupted,
    UnsupportedEndpoint,
)
from tests.client.servers import (
    KEY,
    MODEL,
    Handler,
    ScriptedServer,
    free_port,
    healthy_openai,
    openai_chunk,
    openai_server,
    openai_stream,
    sse,
    stream_route,
    tgi_stream,
)

HI = [{"role": "user", "content": "hi"}]


def make(kind: str, url: str, key: str | None) -> Transport:
    return (
        RawTransport(url, key, timeout_s=10)
        if kind == "raw"
        else HttpxTransport(url, key, timeout_s=10)
    )


@pytest.fixture(params=["raw", "httpx"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def collect(
    kind: str, server_url: str, key: str | None = None, protocol: str = OPENAI
) -> tuple[str, StreamResult]:
    async def go() -> tuple[str, StreamResult]:
        t = make(kind, server_url, key)
        ep = Endpoint(server_url, protocol, MODEL, key)
        result = StreamResult()
        try:
            parts = [p async for p in stream_tokens(t, ep, build_request(ep, HI, 16), result)]
        finally:
            await t.aclose()
        return "".join(parts), result

    return asyncio.run(go())


@pytest.fixture
def server_factory() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def test_healthy_stream_text_usage_and_request(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    s = healthy_openai(key=KEY)
    server_factory.append(s)
    text, result = collect(transport_kind, s.url, KEY)
    assert text == "Hello, world!"
    assert (result.completion_tokens, result.prompt_tokens, result.finish_reason, result.done) == (
        4,
        5,
        "stop",
        True,
    )
    method, path, headers, body = s.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert b'"include_usage": true' in body


def test_keep_alive_connection_is_reused_and_stale_ones_retried(
    server_factory: list[ScriptedServer],
) -> None:
    s = healthy_openai()
    server_factory.append(s)

    async def go() -> list[str | None]:
        t = RawTransport(s.url, None, timeout_s=10)
        ep = Endpoint(s.url, OPENAI, MODEL)
        body = build_request(ep, HI, 4)
        kinds = [(await timed_request(t, ep, body)).error_kind for _ in range(3)]
        for conn in t._idle:  # the server closed it meanwhile: the next request must retry
            conn.writer.transport.abort()
        kinds.append((await timed_request(t, ep, body)).error_kind)
        await t.aclose()
        return kinds

    assert asyncio.run(go()) == [None, None, None, None]
    assert len(s.requests) == 4


def test_connection_refused(transport_kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EndpointUnreachable) as info:
        collect(transport_kind, url)
    assert info.value.message.startswith(f"cannot connect to {url}")
    assert info.value.kind == "connect" and info.value.hint


@pytest.mark.parametrize("key", [None, "wrong-key-123"])
def test_401(transport_kind: str, key: str | None, server_factory: list[ScriptedServer]) -> None:
    s = healthy_openai(key=KEY)
    server_factory.append(s)
    with pytest.raises(EndpointAuthError) as info:
        collect(transport_kind, s.url, key)
    msg = info.value.message
    assert msg == f"{s.url}/v1/chat/completions answered HTTP 401 Unauthorized: Invalid API key"
    assert "\n" not in msg and (key or KEY) not in msg + str(info.value.hint)
    assert ("rejected" if key else "no API key was sent") in str(info.value.hint)


def test_503_before_streaming(transport_kind: str, server_factory: list[ScriptedServer]) -> None:
    s = openai_server(
        lambda h, b: h.reply(503, {"error": "model is overloaded", "error_type": "overloaded"})
    )
    server_factory.append(s)
    with pytest.raises(EndpointHttpError) as info:
        collect(transport_kind, s.url)
    assert info.value.status == 503 and info.value.kind == "http_5xx"
    assert info.value.message.endswith("HTTP 503 Service Unavailable: model is overloaded")


def test_5xx_error_event_mid_stream(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    events = [
        sse(openai_chunk("Hel")),
        sse({"error": {"message": "CUDA error: an illegal memory access", "code": 500}}),
    ]
    s = openai_server(stream_route(lambda n, b: events))
    server_factory.append(s)
    with pytest.raises(
        StreamInterrupted,
        match="reported an error mid-stream: CUDA error: an illegal memory access",
    ):
        collect(transport_kind, s.url)


def test_connection_cut_mid_stream(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    s = openai_server(
        stream_route(
            lambda n, b: [sse(openai_chunk("Hel")), sse(openai_chunk("lo"))], cut_after=True
        )
    )
    server_factory.append(s)
    with pytest.raises(StreamInterrupted) as info:
        collect(transport_kind, s.url)
    assert s.url in info.value.message and info.value.kind == "stream_error"


def test_stream_that_ends_without_finishing(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    s = openai_server(stream_route(lambda n, b: [sse(openai_chunk("Hel"))]))
    server_factory.append(s)
    with pytest.raises(
        StreamInterrupted, match="ended the stream before the response was complete"
    ):
        collect(transport_kind, s.url)


def test_malformed_sse(transport_kind: str, server_factory: list[ScriptedServer]) -> None:
    s = openai_server(
        stream_route(lambda n, b: [sse(openai_chunk("ok")), b"data: {'oops': 1,\n\n"])
    )
    server_factory.append(s)
    with pytest.raises(MalformedStreamError) as info:
        collect(transport_kind, s.url)
    assert info.value.kind == "malformed_sse" and "is not JSON" in info.value.message


def test_not_sse_at_all(transport_kind: str, server_factory: list[ScriptedServer]) -> None:
    def html(h: Handler, body: bytes) -> None:
        h.start_chunked("text/html")
        h.chunk(b"<html><body>It works!</body></html>")
        h.end_chunked()

    s = openai_server(html)
    server_factory.append(s)
    with pytest.raises(
        MalformedStreamError,
        match="did not answer with server-sent events .it began '<html><body>It works",
    ):
        collect(transport_kind, s.url)


def test_noise_between_events_is_tolerated(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    events = openai_stream(["a", "b"])
    noisy = [b": ping\n\n", b"event: message\r\n", events[0], b"id: 3\nretry: 5\n\n", *events[1:]]
    s = openai_server(stream_route(lambda n, b: noisy))
    server_factory.append(s)
    assert collect(transport_kind, s.url)[0] == "ab"


def tgi_only() -> ScriptedServer:
    return ScriptedServer(
        {
            ("GET", "/info"): lambda h, b: h.reply(
                200, {"model_id": "tgi-model", "max_total_tokens": 2048}
            ),
            ("POST", "/generate_stream"): stream_route(lambda n, b: tgi_stream([" Paris", "."])),
        }
    )


def test_detect_openai_tgi_and_neither(server_factory: list[ScriptedServer]) -> None:
    oai, tgi, neither = healthy_openai(key=KEY), tgi_only(), ScriptedServer({})
    server_factory += [oai, tgi, neither]

    async def go(url: str, key: str | None) -> Endpoint:
        t = HttpxTransport(url, key, timeout_s=5)
        try:
            return await detect(t, url, key, None)
        finally:
            await t.aclose()

    assert asyncio.run(go(oai.url, KEY)) == Endpoint(oai.url, OPENAI, MODEL, KEY)
    assert asyncio.run(go(tgi.url, None)) == Endpoint(tgi.url, TGI, "tgi-model", None)
    with pytest.raises(EndpointAuthError):
        asyncio.run(go(oai.url, None))
    with pytest.raises(UnsupportedEndpoint, match="speaks neither the OpenAI API"):
        asyncio.run(go(neither.url, None))
    with pytest.raises(EndpointUnreachable):
        asyncio.run(go(f"http://127.0.0.1:{free_port()}", None))


def test_tgi_only_server_streams_through_generate_stream(
    transport_kind: str, server_factory: list[ScriptedServer]
) -> None:
    s = tgi_only()
    server_factory.append(s)
    text, result = collect(transport_kind, s.url, protocol=TGI)
    assert text == " Paris."
    assert (result.completion_tokens, result.done) == (3, True)
    assert s.requests[-1][1] == "/generate_stream"


def test_chat_session_keeps_history_and_drops_failed_turns(
    server_factory: list[ScriptedServer],
) -> None:
    bodies: list[bytes] = []

    def events(n: int, body: bytes) -> list[bytes] | None:
        bodies.append(body)
        return None if n == 2 else openai_stream([f"reply{n}"])

    s = openai_server(stream_route(events))
    server_factory.append(s)

    async def go() -> list[str]:
        t = HttpxTransport(s.url, None, timeout_s=5)
        chat = ChatSession(Endpoint(s.url, OPENAI, MODEL), t, system="be brief")
        shown: list[str] = []
        await chat.send("one", shown.append)
        with pytest.raises(EndpointError):
            await chat.send("two", shown.append)  # the connection is cut: not kept
        await chat.send("three", shown.append)
        history = [m["content"] for m in chat.history]
        chat.reset()
        assert chat.history == [{"role": "system", "content": "be brief"}]
        await t.aclose()
        return history

    assert asyncio.run(go()) == ["be brief", "one", "reply1", "three", "reply3"]
    import json

    assert [m["content"] for m in json.loads(bodies[-1])["messages"]] == [
        "be brief",
        "one",
        "reply1",
        "three",
    ]
