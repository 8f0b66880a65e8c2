"""The backend's TGI-compatible routes: ``POST /generate``, ``POST /generate_stream``, the compat
route ``POST /`` (what the text-generation client calls) and ``GET /info`` (open, as in TGI).

Errors are TGI's ``{"error", "error_type"}``; a bad request is 422 where TGI answers 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from llmops import __version__
from llmops.backend.api import (
    MAX_STOP_SEQUENCES,
    ApiError,
    ServerState,
    event_stream,
    int_param,
    json_body,
    next_event,
    num_param,
    recorded,
    run_to_end,
    sse,
    stop_param,
    submit,
)
from llmops.backend.engine import Event, GenRequest, SamplingParams
from llmops.backend.loader import LoadedModel


def tgi_params(
    state: ServerState, body: dict[str, Any], loaded: LoadedModel, prompt_ids: list[int]
) -> Any:
    p = body.get("parameters") or {}
    if not isinstance(p, dict):
        raise ApiError(422, "'parameters' must be an object.")
    temperature = p.get("temperature")
    top_p = p.get("top_p")
    sampling = bool(p.get("do_sample")) or temperature is not None or top_p is not None
    return SamplingParams(
        max_tokens=state.budget(
            loaded, prompt_ids, int_param(p, "max_new_tokens", 20, 1), "inputs"
        ),
        temperature=num_param(p, "temperature", 1.0, 1e-6, 100.0) if sampling else 0.0,
        top_p=num_param(p, "top_p", 1.0, 1e-6, 1.0),
        seed=int_param(p, "seed", None, 0),
        stop=stop_param(p.get("stop"), "stop"),
    )


async def tgi_prepare(
    state: ServerState, request: Request
) -> tuple[GenRequest, dict[str, Any], list[int]]:
    body = await json_body(request)
    engine, loaded = state.ready_engine()
    inputs = body.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        raise ApiError(422, "'inputs' must be a non-empty string.")
    ids = [int(t) for t in loaded.tokenizer.encode(inputs, add_special_tokens=True)]
    params = tgi_params(state, body, loaded, ids)
    return submit(engine, ids, params), body, ids


def token_json(ev: Event) -> dict[str, Any]:
    return {"id": ev.token_id, "text": ev.text, "logprob": ev.logprob, "special": ev.special}


def full_text(body: dict[str, Any], text: str) -> str:
    p = body.get("parameters") or {}
    return (body["inputs"] + text) if p.get("return_full_text") else text


async def tgi_generate(state: ServerState, request: Request) -> dict[str, Any]:
    req, body, _ = await tgi_prepare(state, request)
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


async def tgi_stream(state: ServerState, request: Request) -> Response:
    req, body, _ = await tgi_prepare(state, request)

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

    return event_stream(events())


def tgi_routes(state: ServerState) -> APIRouter:
    """The TGI routes over ``state``; generation wants the API key when one is set."""
    router = APIRouter()
    config = state.config

    @router.post("/generate")
    @recorded(state, "/generate", "tgi")
    async def generate(request: Request) -> Response:
        return JSONResponse(await tgi_generate(state, request))

    @router.post("/generate_stream")
    @recorded(state, "/generate_stream", "tgi")
    async def generate_stream(request: Request) -> Response:
        return await tgi_stream(state, request)

    @router.post("/")
    @recorded(state, "/", "tgi")
    async def compat(request: Request) -> Response:
        """TGI's compat route (used by the text-generation client): a list, or a stream."""
        body = await json_body(request)  # Starlette caches the body: the handlers re-read it
        if body.get("stream"):
            return await tgi_stream(state, request)
        return JSONResponse([await tgi_generate(state, request)])

    @router.get("/info")
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

    return router
