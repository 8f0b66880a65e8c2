"""The backend's OpenAI-compatible routes: ``POST /v1/completions``, ``POST /v1/chat/completions``
(streamed as OpenAI SSE chunks, ``data: [DONE]`` last) and ``GET /v1/models`` (open, as in TGI).

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from llmops import __version__
from llmops.backend.api import (
    ApiError,
    ServerState,
    event_stream,
    int_param,
    json_body,
    message_text,
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


def openai_params(
    state: ServerState, body: dict[str, Any], loaded: LoadedModel, prompt_ids: list[int], param: str
) -> Any:
    if int_param(body, "n", 1, 1) != 1:
        raise ApiError(400, "Only n=1 is supported.", param="n")
    max_tokens = int_param(body, "max_completion_tokens", None, 1)
    max_tokens = int_param(body, "max_tokens", max_tokens, 1)
    defaults = dict(loaded.sampling)  # the model's own (see loader.sampling_defaults)
    return SamplingParams(
        max_tokens=state.budget(loaded, prompt_ids, max_tokens, param),
        temperature=num_param(body, "temperature", defaults.get("temperature", 1.0), 0.0, 2.0),
        top_p=num_param(body, "top_p", defaults.get("top_p", 1.0), 0.0, 1.0),
        seed=int_param(body, "seed", None, 0),
        stop=stop_param(body.get("stop")),
    )


async def openai_generate(
    state: ServerState, request: Request, body: dict[str, Any], prompt_ids: list[int], chat: bool
) -> Response:
    engine, loaded = state.ready_engine()
    model = state.check_model(body)
    params = openai_params(state, body, loaded, prompt_ids, "messages" if chat else "prompt")
    opts = body.get("stream_options") or {}
    include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
    req = submit(engine, prompt_ids, params)
    reply = _Reply(chat, model)
    if not body.get("stream", False):
        _, fin = await run_to_end(req, request)
        return JSONResponse(reply.whole(fin))
    return event_stream(reply.events(req, request, include_usage))


def _usage(fin: Event) -> dict[str, int]:
    return {
        "prompt_tokens": fin.prompt_tokens,
        "completion_tokens": fin.completion_tokens,
        "total_tokens": fin.prompt_tokens + fin.completion_tokens,
    }


class _Reply:
    """One completion's answer in OpenAI's shapes: whole, or as a stream of chunks."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def whole(self, fin: Event) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": fin.finish_reason}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": fin.full_text}
        else:
            choice["text"] = fin.full_text
        choice["logprobs"] = None
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": _usage(fin),
            "system_fingerprint": f"llmops-{__version__}",
        }

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def piece(self, text: str, finish: str | None, first: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"content": text}
            if first:
                delta["role"] = "assistant"
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    async def events(
        self, req: GenRequest, request: Request, include_usage: bool
    ) -> AsyncIterator[str]:
        try:
            if self.chat:
                yield sse(self.chunk([self.piece("", None, first=True)]))
            while True:
                ev = await next_event(req, request)
                if ev.kind == "finish":
                    yield sse(self.chunk([self.piece("", ev.finish_reason)]))
                    if include_usage:
                        yield sse(self.chunk([], usage=_usage(ev)))
                    yield sse("[DONE]")
                    return
                if ev.text:
                    yield sse(self.chunk([self.piece(ev.text, None)]))
        except ApiError as err:
            yield sse({"error": {"message": err.message, "type": err.type, "code": err.code}})
        finally:
            req.cancel()


def openai_routes(state: ServerState) -> APIRouter:
    """The OpenAI routes over ``state``; generation wants the API key when one is set."""
    router = APIRouter()
    config = state.config

    @router.post("/v1/completions")
    @recorded(state, "/v1/completions", "openai")
    async def completions(request: Request) -> Response:
        body = await json_body(request)
        _, loaded = state.ready_engine()
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
        return await openai_generate(state, request, body, list(ids), chat=False)

    @router.post("/v1/chat/completions")
    @recorded(state, "/v1/chat/completions", "openai")
    async def chat_completions(request: Request) -> Response:
        body = await json_body(request)
        _, loaded = state.ready_engine()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
        convo = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, "Each message needs a 'role' and 'content'.", param="messages")
            convo.append({"role": m["role"], "content": message_text(m.get("content"))})
        if not getattr(loaded.tokenizer, "chat_template", None):
            raise ApiError(
                400,
                f"Model '{loaded.served_name}' has no chat template; use /v1/completions.",
                param="messages",
            )
        ids = loaded.tokenizer.apply_chat_template(
            convo, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if hasattr(ids, "keys"):  # a BatchEncoding (a UserDict, not a dict) all the same
            ids = ids["input_ids"]
        return await openai_generate(state, request, body, [int(t) for t in ids], chat=True)

    @router.get("/v1/models")
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

    return router
