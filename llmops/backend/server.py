"""The HTTP front of the bundled backend: OpenAI- and TGI-compatible routes over the engine.

Routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (streaming
as OpenAI SSE chunks, ``data: [DONE]`` last); TGI's ``POST /``, ``/generate``,
``/generate_stream`` and ``GET /info``; ``GET /health`` (503 while loading, 200 when ready) and
``GET /metrics`` (Prometheus text). With an API key set, every generation route wants
``Authorization: Bearer KEY``; health, info, models and metrics stay open, as in TGI.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from llmops import __version__
from llmops.backend.config import ServerConfig
from llmops.backend.engine import Engine, Event, GenRequest, QueueFull, SamplingParams
from llmops.backend.loader import LoadedModel, load_model
from llmops.backend.metrics import Metrics

log = logging.getLogger("llmops.backend")

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


# ---- request parsing --------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
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


def _num(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be a number between {lo} and {hi}.", param=name)
    return float(value)


def _int(body: dict[str, Any], name: str, default: int | None, lo: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ApiError(400, f"'{name}' must be an integer >= {lo}.", param=name)
    return value


def _stops(value: Any, name: str = "stop") -> tuple[str, ...]:
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


def _message_text(content: Any) -> str:
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


# ---- the app ----------------------------------------------------------------------------------


def create_app(
    config: ServerConfig, *, loader: Callable[..., LoadedModel] = load_model
) -> tuple[FastAPI, ServerState]:
    """Build the FastAPI app; the model loads in a background thread when the app starts."""
    state = ServerState(config=config)

    def _load() -> None:
        try:
            if config.threads:
                import torch

                torch.set_num_threads(config.threads)
            t0 = time.monotonic()
            loaded = loader(
                config.model,
                precision=config.precision,
                device=config.device,
                served_name=config.served_model_name,
                context_length=config.context_length,
            )
            engine = Engine(
                loaded,
                max_batch_size=config.max_batch_size,
                max_queue=config.max_queue,
                metrics=state.metrics,
            )
            engine.start()
            state.loaded, state.engine = loaded, engine
            log.info(
                "ready: %s on %s (%s) in %.1fs at http://%s:%d/v1",
                loaded.served_name,
                loaded.device,
                loaded.dtype,
                time.monotonic() - t0,
                config.host,
                config.port,
            )
            if loaded.sampling:
                log.info(
                    "request defaults: %s (from %s; a request's own values win)",
                    ", ".join(f"{k} {v:g}" for k, v in loaded.sampling),
                    loaded.sampling_source,
                )
        except Exception as exc:
            state.error = f"{type(exc).__name__}: {exc}"
            hint = getattr(exc, "hint", None)
            log.error(
                "loading %s failed: %s%s", config.model, exc, f" (hint: {hint})" if hint else ""
            )
            if state.on_fatal is not None:
                state.on_fatal()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_load, name="llmops-loader", daemon=True).start()
        yield
        if state.engine is not None:
            state.engine.stop()

    app = FastAPI(title="llmops backend", version=__version__, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.llmops = state

    def names() -> set[str]:
        out = {config.model}
        if state.loaded is not None:
            out.add(state.loaded.served_name)
        return out

    def check_auth(request: Request) -> None:
        if not config.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), config.api_key.encode()
        ):
            raise ApiError(
                401,
                "Missing or incorrect API key: send 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def ready_engine() -> tuple[Engine, LoadedModel]:
        if state.engine is None or state.loaded is None or not state.ready:
            raise ApiError(
                503,
                "The model is still loading." if state.error is None else state.error,
                type_="server_error",
                code="model_loading",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return state.engine, state.loaded

    def check_model(body: dict[str, Any]) -> str:
        model = body.get("model")
        if model is None:
            raise ApiError(400, "'model' is required.", param="model")
        if model not in names():
            raise ApiError(
                404,
                f"The model '{model}' does not exist; this server serves "
                f"'{state.loaded.served_name if state.loaded else config.model}'.",
                code="model_not_found",
                param="model",
            )
        assert state.loaded is not None
        return state.loaded.served_name

    def budget(
        loaded: LoadedModel, prompt_ids: list[int], max_tokens: int | None, param: str
    ) -> int:
        room = loaded.context_length - len(prompt_ids)
        if room < 1:
            raise ApiError(
                400,
                f"This model's maximum context length is {loaded.context_length} tokens; the "
                f"prompt has {len(prompt_ids)} tokens.",
                code="context_length_exceeded",
                param=param,
            )
        return min(max_tokens or config.default_max_tokens, room)

    def submit(engine: Engine, prompt_ids: list[int], params: SamplingParams) -> GenRequest:
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

    def recorded(route: str, style: str) -> Callable[[Any], Any]:
        """Wrap a route: auth, error rendering in its style, and the request counter."""

        def wrap(fn: Any) -> Any:
            async def handler(request: Request) -> Response:
                try:
                    check_auth(request)
                    response: Response = await fn(request)
                except ApiError as err:
                    state.metrics.request_done(route, err.status)
                    return err.openai() if style == "openai" else err.tgi()
                state.metrics.request_done(route, response.status_code)
                return response

            handler.__name__ = fn.__name__
            return handler

        return wrap

    # ---- OpenAI ----------------------------------------------------------------------------

    def openai_params(
        body: dict[str, Any], loaded: LoadedModel, prompt_ids: list[int], param: str
    ) -> Any:
        if _int(body, "n", 1, 1) != 1:
            raise ApiError(400, "Only n=1 is supported.", param="n")
        max_tokens = _int(body, "max_completion_tokens", None, 1)
        max_tokens = _int(body, "max_tokens", max_tokens, 1)
        defaults = dict(loaded.sampling)  # the model's own (see loader.sampling_defaults)
        return SamplingParams(
            max_tokens=budget(loaded, prompt_ids, max_tokens, param),
            temperature=_num(body, "temperature", defaults.get("temperature", 1.0), 0.0, 2.0),
            top_p=_num(body, "top_p", defaults.get("top_p", 1.0), 0.0, 1.0),
            seed=_int(body, "seed", None, 0),
            stop=_stops(body.get("stop")),
        )

    async def openai_generate(
        request: Request, body: dict[str, Any], prompt_ids: list[int], chat: bool
    ) -> Response:
        engine, loaded = ready_engine()
        model = check_model(body)
        params = openai_params(body, loaded, prompt_ids, "messages" if chat else "prompt")
        stream = bool(body.get("stream", False))
        opts = body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
        req = submit(engine, prompt_ids, params)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"

        def usage(fin: Event) -> dict[str, int]:
            return {
                "prompt_tokens": fin.prompt_tokens,
                "completion_tokens": fin.completion_tokens,
                "total_tokens": fin.prompt_tokens + fin.completion_tokens,
            }

        if not stream:
            _, fin = await run_to_end(req, request)
            choice: dict[str, Any] = {"index": 0, "finish_reason": fin.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": fin.full_text}
                choice["logprobs"] = None
            else:
                choice["text"] = fin.full_text
                choice["logprobs"] = None
            return JSONResponse(
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage(fin),
                    "system_fingerprint": f"llmops-{__version__}",
                }
            )

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }

        def piece(text: str, finish: str | None, first: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"content": text}
                if first:
                    delta["role"] = "assistant"
                return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

        async def events() -> AsyncIterator[str]:
            try:
                if chat:
                    yield sse(chunk([piece("", None, first=True)]))
                while True:
                    ev = await next_event(req, request)
                    if ev.kind == "finish":
                        yield sse(chunk([piece("", ev.finish_reason)]))
                        if include_usage:
                            yield sse(chunk([], usage=usage(ev)))
                        yield sse("[DONE]")
                        return
                    if ev.text:
                        yield sse(chunk([piece(ev.text, None)]))
            except ApiError as err:
                yield sse({"error": {"message": err.message, "type": err.type, "code": err.code}})
            finally:
                req.cancel()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/v1/completions")
    @recorded("/v1/completions", "openai")
    async def completions(request: Request) -> Response:
        body = await _json_body(request)
        _, loaded = ready_engine()
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = loaded.tokenizer.encode(prompt, add_special_tokens=True)
        elif (
            isinstance(prompt, list)
            and prompt
            and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
        ):
            ids = list(prompt)
        else:
            raise ApiError(
                400,
                "'prompt' must be a string, a list of one string, or a list of token ids.",
                param="prompt",
            )
        if not ids:
            raise ApiError(400, "'prompt' must not be empty.", param="prompt")
        return await openai_generate(request, body, list(ids), chat=False)

    @app.post("/v1/chat/completions")
    @recorded("/v1/chat/completions", "openai")
    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request)
        _, loaded = ready_engine()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
        convo = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, "Each message needs a 'role' and 'content'.", param="messages")
            convo.append({"role": m["role"], "content": _message_text(m.get("content"))})
        if not getattr(loaded.tokenizer, "chat_template", None):
            raise ApiError(
                400,
                f"Model '{loaded.served_name}' has no chat template; use /v1/completions.",
                param="messages",
            )
        ids = loaded.tokenizer.apply_chat_template(convo, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict):  # BatchEncoding from newer transformers
            ids = ids["input_ids"]
        return await openai_generate(request, body, [int(t) for t in ids], chat=True)

    @app.get("/v1/models")
    async def models() -> Response:
        served = state.loaded.served_name if state.loaded else config.model
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": served,
                        "object": "model",
                        "created": int(state.started_s),
                        "owned_by": "llmops",
                        "max_model_len": state.loaded.context_length if state.loaded else None,
                    }
                ],
            }
        )

    # ---- TGI -------------------------------------------------------------------------------

    def tgi_params(body: dict[str, Any], loaded: LoadedModel, prompt_ids: list[int]) -> Any:
        p = body.get("parameters") or {}
        if not isinstance(p, dict):
            raise ApiError(422, "'parameters' must be an object.")
        temperature = p.get("temperature")
        top_p = p.get("top_p")
        sampling = bool(p.get("do_sample")) or temperature is not None or top_p is not None
        return SamplingParams(
            max_tokens=budget(loaded, prompt_ids, _int(p, "max_new_tokens", 20, 1), "inputs"),
            temperature=_num(p, "temperature", 1.0, 1e-6, 100.0) if sampling else 0.0,
            top_p=_num(p, "top_p", 1.0, 1e-6, 1.0),
            seed=_int(p, "seed", None, 0),
            stop=_stops(p.get("stop"), "stop"),
        )

    async def tgi_prepare(request: Request) -> tuple[GenRequest, dict[str, Any], list[int]]:
        body = await _json_body(request)
        engine, loaded = ready_engine()
        inputs = body.get("inputs")
        if not isinstance(inputs, str) or not inputs:
            raise ApiError(422, "'inputs' must be a non-empty string.")
        ids = [int(t) for t in loaded.tokenizer.encode(inputs, add_special_tokens=True)]
        params = tgi_params(body, loaded, ids)
        return submit(engine, ids, params), body, ids

    def token_json(ev: Event) -> dict[str, Any]:
        return {"id": ev.token_id, "text": ev.text, "logprob": ev.logprob, "special": ev.special}

    def full_text(body: dict[str, Any], text: str) -> str:
        p = body.get("parameters") or {}
        return (body["inputs"] + text) if p.get("return_full_text") else text

    async def tgi_generate(request: Request) -> dict[str, Any]:
        req, body, _ = await tgi_prepare(request)
        tokens, fin = await run_to_end(req, request)
        return {
            "generated_text": full_text(body, fin.full_text),
            "details": {
                "finish_reason": fin.stop_kind,
                "generated_tokens": fin.completion_tokens,
                "seed": req.params.seed,
                "prefill": [],
                "tokens": [token_json(t) for t in tokens],
                "top_tokens": None,
                "best_of_sequences": None,
            },
        }

    async def tgi_stream(request: Request) -> Response:
        req, body, _ = await tgi_prepare(request)

        async def events() -> AsyncIterator[str]:
            pending: Event | None = None
            index = 0
            try:
                while True:
                    ev = await next_event(req, request)
                    if ev.kind == "finish":
                        assert pending is not None
                        yield sse(
                            {
                                "index": index,
                                "token": token_json(pending),
                                "top_tokens": None,
                                "generated_text": full_text(body, ev.full_text),
                                "details": {
                                    "finish_reason": ev.stop_kind,
                                    "generated_tokens": ev.completion_tokens,
                                    "seed": req.params.seed,
                                },
                            }
                        )
                        return
                    if pending is not None:
                        index += 1
                        yield sse(
                            {
                                "index": index,
                                "token": token_json(pending),
                                "top_tokens": None,
                                "generated_text": None,
                                "details": None,
                            }
                        )
                    pending = ev
            except ApiError as err:
                yield sse({"error": err.message, "error_type": "generation"})
            finally:
                req.cancel()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/generate")
    @recorded("/generate", "tgi")
    async def generate(request: Request) -> Response:
        return JSONResponse(await tgi_generate(request))

    @app.post("/generate_stream")
    @recorded("/generate_stream", "tgi")
    async def generate_stream(request: Request) -> Response:
        return await tgi_stream(request)

    @app.post("/")
    @recorded("/", "tgi")
    async def compat(request: Request) -> Response:
        """TGI's compat route (used by the text-generation client): a list, or a stream."""
        body = await _json_body(request)  # Starlette caches the body: the handlers re-read it
        if body.get("stream"):
            return await tgi_stream(request)
        return JSONResponse([await tgi_generate(request)])

    @app.get("/info")
    async def info() -> Response:
        loaded = state.loaded
        return JSONResponse(
            {
                "model_id": loaded.served_name if loaded else config.model,
                "model_sha": None,
                "model_dtype": loaded.dtype if loaded else config.precision,
                "model_device_type": loaded.device.split(":")[0] if loaded else config.device,
                "model_pipeline_tag": "text-generation",
                "max_concurrent_requests": config.max_batch_size + config.max_queue,
                "max_best_of": 1,
                "max_stop_sequences": MAX_STOP_SEQUENCES,
                "max_input_tokens": (loaded.context_length - 1) if loaded else None,
                "max_total_tokens": loaded.context_length if loaded else None,
                "max_batch_size": config.max_batch_size,
                "validation_workers": 1,
                "max_client_batch_size": 1,
                "router": "llmops-backend",
                "version": __version__,
                "sha": None,
                "docker_label": None,
            }
        )

    # ---- ops -------------------------------------------------------------------------------

    @app.get("/health")
    async def health() -> Response:
        if state.ready:
            return JSONResponse({"status": "ok"})
        if state.error or (state.engine is not None and state.engine.error is not None):
            return JSONResponse({"status": "error", "error": state.error}, status_code=503)
        return JSONResponse(
            {"status": "loading"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        if state.engine is not None:
            waiting, active = state.engine.load()
            state.metrics.set_load(queue_depth=waiting, active=active)
        return PlainTextResponse(
            state.metrics.render(ready=state.ready),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return app, state


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("llmops.backend")
    logger.handlers[:] = [handler]
    level = os.environ.get("LLMOPS_LOG_LEVEL", "INFO").upper()
    logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    logger.propagate = False


def run_server(config: ServerConfig) -> int:
    """Serve until interrupted. Returns 0, or 1 when the model failed to load."""
    import uvicorn

    configure_logging()
    log.info("starting %r", config)
    app, state = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )

    def fatal() -> None:
        server.should_exit = True

    state.on_fatal = fatal
    server.run()
    return 1 if state.error else 0
