"""What the backend's routers share: the server state, errors, request parsing, route plumbing.

- :class:`ServerState`: the config, the loaded model and engine once ready, the metrics; its
  methods are the checks every generation route makes (API key, engine ready, model name,
  token budget).
- :class:`ApiError`: an error answered to the client, rendered in OpenAI's or TGI's shape.
- Request parsing (:func:`json_body`, :func:`num_param`, :func:`int_param`, :func:`stop_param`,
  :func:`message_text`): a bad value is a 400 naming the parameter.
- Route plumbing: :func:`recorded` (auth, error rendering, the request counter), :func:`submit`
  (the engine's queue, 503 when full), :func:`next_event` / :func:`run_to_end` (a request's
  events, cancelled when the client goes away) and :func:`sse` (one Server-Sent Event).

The routes themselves are in ``routes_openai``, ``routes_tgi`` and ``routes_ops``;
``server.create_app`` builds the app from them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmops.backend.config import ServerConfig
from llmops.backend.engine import Engine, Event, GenRequest, QueueFull, SamplingParams
from llmops.backend.loader import LoadedModel
from llmops.backend.metrics import Metrics

RETRY_AFTER_S = 2
MAX_STOP_SEQUENCES = 4


class ApiError(Exception):
    """An error answered to the client, rendered in OpenAI's or TGI's shape by the route."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)

    def tgi(self) -> JSONResponse:
        kind = {401: "authentication", 503: "overloaded", 500: "generation"}.get(
            self.status, "validation"
        )
        body = {"error": self.message, "error_type": kind}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass
class ServerState:
    """What the routes share: config, the loaded model and engine once ready, metrics."""

    config: ServerConfig
    metrics: Metrics = field(default_factory=Metrics)
    loaded: LoadedModel | None = None
    engine: Engine | None = None
    error: str | None = None
    started_s: float = field(default_factory=time.time)
    on_fatal: Callable[[], None] | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.engine.error is None and self.error is None

    def names(self) -> set[str]:
        """The model names a request may ask for: the configured one and the served one."""
        out = {self.config.model}
        if self.loaded is not None:
            out.add(self.loaded.served_name)
        return out

    def check_auth(self, request: Request) -> None:
        """401 unless the request carries ``Authorization: Bearer KEY`` (when a key is set)."""
        if not self.config.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.config.api_key.encode()
        ):
            raise ApiError(
                401,
                "Missing or incorrect API key: send 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def ready_engine(self) -> tuple[Engine, LoadedModel]:
        """The engine and model, or 503 (with Retry-After) while loading or after a failure."""
        if self.engine is None or self.loaded is None or not self.ready:
            raise ApiError(
                503,
                "The model is still loading." if self.error is None else self.error,
                type_="server_error",
                code="model_loading",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return self.engine, self.loaded

    def check_model(self, body: dict[str, Any]) -> str:
        """The served name for the request's ``model``: 400 without one, 404 for another."""
        model = body.get("model")
        if model is None:
            raise ApiError(400, "'model' is required.", param="model")
        if model not in self.names():
            raise ApiError(
                404,
                f"The model '{model}' does not exist; this server serves "
                f"'{self.loaded.served_name if self.loaded else self.config.model}'.",
                code="model_not_found",
                param="model",
            )
        assert self.loaded is not None
        return self.loaded.served_name

    def budget(
        self, loaded: LoadedModel, prompt_ids: list[int], max_tokens: int | None, param: str
    ) -> int:
        """Tokens to generate: the request's (or the default), at most what the context has
        room for; 400 when the prompt alone fills it."""
        room = loaded.context_length - len(prompt_ids)
        if room < 1:
            raise ApiError(
                400,
                f"This model's maximum context length is {loaded.context_length} tokens; the "
                f"prompt has {len(prompt_ids)} tokens.",
                code="context_length_exceeded",
                param=param,
            )
        return min(max_tokens or self.config.default_max_tokens, room)


# ---- request parsing --------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def num_param(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be a number between {lo} and {hi}.", param=name)
    return float(value)


def int_param(body: dict[str, Any], name: str, default: int | None, lo: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ApiError(400, f"'{name}' must be an integer >= {lo}.", param=name)
    return value


def stop_param(value: Any, name: str = "stop") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise ApiError(
            400, f"'{name}' must be a string or a list of non-empty strings.", param=name
        )
    if len(value) > MAX_STOP_SEQUENCES:
        raise ApiError(400, f"'{name}' takes at most {MAX_STOP_SEQUENCES} sequences.", param=name)
    return tuple(value)


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and "text" in part:
                parts.append(str(part["text"]))
            else:
                raise ApiError(400, "Only text content parts are supported.", param="messages")
        return "".join(parts)
    if content is None:
        return ""
    raise ApiError(400, "Message content must be a string or a list of parts.", param="messages")


# ---- route plumbing ---------------------------------------------------------------------------


def submit(engine: Engine, prompt_ids: list[int], params: SamplingParams) -> GenRequest:
    """Queue a generation on the engine; 503 (with Retry-After) when it is full."""
    req = GenRequest(
        prompt_ids=prompt_ids,
        params=params,
        loop=asyncio.get_running_loop(),
        queue=asyncio.Queue(),
    )
    try:
        engine.submit(req)
    except QueueFull:
        raise ApiError(
            503,
            "The server is overloaded: every batch slot and queue place is taken; retry later.",
            type_="server_error",
            code="overloaded",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    return req


async def next_event(req: GenRequest, request: Request) -> Event:
    """The request's next event; cancels it when the client has gone away."""
    while True:
        try:
            ev = await asyncio.wait_for(req.queue.get(), timeout=1.0)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                req.cancel()
                raise asyncio.CancelledError from None
            continue
        if ev.kind == "error":
            raise ApiError(500, f"Generation failed: {ev.text}", type_="server_error")
        return ev


async def run_to_end(req: GenRequest, request: Request) -> tuple[list[Event], Event]:
    """Every token event of the request, then its finish event."""
    tokens: list[Event] = []
    try:
        while True:
            ev = await next_event(req, request)
            if ev.kind == "finish":
                return tokens, ev
            tokens.append(ev)
    finally:
        req.cancel()  # a no-op for a finished request; frees the slot otherwise


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """A server-sent events response of ``events`` (each one already ``sse``-framed)."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def recorded(state: ServerState, route: str, style: str) -> Callable[[Any], Any]:
    """Wrap a route: auth, error rendering in its style (``openai`` or ``tgi``), and the
    request counter."""

    def wrap(fn: Any) -> Any:
        async def handler(request: Request) -> Response:
            try:
                state.check_auth(request)
                response: Response = await fn(request)
            except ApiError as err:
                state.metrics.request_done(route, err.status)
                return err.openai() if style == "openai" else err.tgi()
            state.metrics.request_done(route, response.status_code)
            return response

        handler.__name__ = fn.__name__
        return handler

    return wrap
