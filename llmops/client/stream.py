"""One streamed generation over either transport and either protocol, and endpoint detection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from llmops.client.protocol import (
    OPENAI,
    TGI,
    Endpoint,
    StreamResult,
    decode_payload,
    read_openai,
    read_tgi,
)
from llmops.client.sse import SseDecoder
from llmops.errors import (
    MalformedStreamError,
    StreamInterrupted,
    UnsupportedEndpoint,
)


class Transport(Protocol):
    url: str

    def stream(self, path: str, body: bytes) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


async def stream_tokens(
    transport: Transport, endpoint: Endpoint, body: bytes, result: StreamResult
) -> AsyncIterator[str]:
    """Yield each streamed token's text (``""`` for tokens with nothing to show) as it arrives.

    ``result`` collects the finish reason and the server's token counts.

    Raises:
        EndpointError: one of its subclasses, naming the URL, for every way a request can fail.
    """
    url = endpoint.url
    read = read_openai if endpoint.protocol == OPENAI else read_tgi
    decoder = SseDecoder()
    first_bytes = b""
    async for chunk in transport.stream(endpoint.stream_path, body):
        if not result.events and len(first_bytes) < 80:
            first_bytes += chunk[:80]
        for event, data in decoder.feed(chunk):
            result.events += 1
            if data == "[DONE]":
                result.done = True
                continue
            for obj in decode_payload(url, data):
                text = read(url, event, obj, result)
                if text is not None:
                    yield text
    for event, data in decoder.close():
        result.events += 1
        if data == "[DONE]":
            result.done = True
            continue
        for obj in decode_payload(url, data):
            text = read(url, event, obj, result)
            if text is not None:
                yield text
    if not result.events:
        shown = first_bytes.decode("utf-8", "replace").strip()[:60]
        raise MalformedStreamError(
            f"{url}{endpoint.stream_path} did not answer with server-sent events"
            + (f" (it began {shown!r})" if shown else " (the body was empty)"),
            "check that the URL points at an OpenAI-compatible or TGI server",
        )
    if not result.done and result.finish_reason is None:
        raise StreamInterrupted(
            f"{url} ended the stream before the response was complete",
            "the server may have crashed or restarted mid-response: see its log",
        )


def _first_model(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("data"), list) and obj["data"]:
        first = obj["data"][0]
        if isinstance(first, dict) and first.get("id"):
            return str(first["id"])
    return None


async def detect(transport: Any, url: str, api_key: str | None, model: str | None) -> Endpoint:
    """Which protocol ``url`` speaks: OpenAI when ``/v1/models`` answers, else TGI when ``/info``
    does. ``transport`` is an :class:`~llmops.client.transport.HttpxTransport`.

    Raises:
        EndpointUnreachable: nothing listens there.
        EndpointAuthError: the server wants an API key, or rejected the one given.
        UnsupportedEndpoint: neither API answers.
    """
    from llmops.client.transport import status_error

    status, obj = await transport.get_json("/v1/models")
    if status in (401, 403):
        raise status_error(url, "/v1/models", status, b"", key_sent=bool(api_key))
    if status == 200 and isinstance(obj, dict) and "data" in obj:
        return Endpoint(url, OPENAI, model or _first_model(obj), api_key)
    info_status, info = await transport.get_json("/info")
    if info_status == 200 and isinstance(info, dict) and "model_id" in info:
        return Endpoint(url, TGI, model or str(info["model_id"]), api_key)
    raise UnsupportedEndpoint(
        f"{url} speaks neither the OpenAI API (GET /v1/models answered {status}) "
        f"nor TGI's (GET /info answered {info_status})",
        "give the server's base URL (without /v1/chat/completions), e.g. http://HOST:8000",
    )
