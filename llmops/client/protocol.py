"""The two streaming protocols: OpenAI chat completions and TGI's ``/generate_stream``.

Pure functions over parsed JSON: build a request body, and read one streamed payload into a
:class:`StreamResult` while returning the text it carries. No I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmops.errors import MalformedStreamError, StreamInterrupted

OPENAI = "openai"
TGI = "tgi"

#: What a chat message is on the wire: ``{"role": "user", "content": "..."}``.
Message = dict[str, str]


@dataclass(frozen=True)
class Endpoint:
    """A detected endpoint: where it is, which protocol it speaks, and which model it serves."""

    url: str  # base URL without a trailing ``/`` or ``/v1``
    protocol: str  # OPENAI or TGI
    model: str | None
    api_key: str | None = field(default=None, repr=False)  # never printed

    @property
    def stream_path(self) -> str:
        return "/v1/chat/completions" if self.protocol == OPENAI else "/generate_stream"


class StreamResult:
    """What a stream said besides its text: finish reason, the server's token counts, done-ness."""

    __slots__ = ("completion_tokens", "done", "events", "finish_reason", "prompt_tokens")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.completion_tokens: int | None = None  # from usage / TGI details
        self.prompt_tokens: int | None = None
        self.done = False  # saw [DONE] (OpenAI) or the final event (TGI)
        self.events = 0


def tgi_prompt(messages: list[Message]) -> str:
    """TGI's ``/generate_stream`` takes one string: a lone user message as is, else a transcript.

    The transcript uses plain ``System:``/``User:``/``Assistant:`` turns (TGI does not expose
    the model's chat template); :func:`build_request` adds ``"\\nUser:"`` as a stop sequence.
    """
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    turns = [f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def build_request(
    endpoint: Endpoint,
    messages: list[Message],
    max_tokens: int,
    *,
    include_usage: bool = True,
    temperature: float | None = None,
) -> bytes:
    """The JSON body for one streamed request to ``endpoint.stream_path``."""
    if endpoint.protocol == OPENAI:
        body: dict[str, Any] = {
            "model": endpoint.model or "default",
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        if temperature is not None:
            body["temperature"] = temperature
    else:
        params: dict[str, Any] = {"max_new_tokens": max_tokens, "details": True}
        if len(messages) > 1 or messages[0]["role"] != "user":
            params["stop"] = ["\nUser:"]
        if temperature is not None and temperature > 0:
            params.update(do_sample=True, temperature=temperature)
        body = {"inputs": tgi_prompt(messages), "parameters": params}
    return json.dumps(body, ensure_ascii=False).encode()


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_payload(url: str, data: str) -> list[Any]:
    """JSON objects in one event's data; several ``data:`` lines may each hold one.

    Raises:
        MalformedStreamError: the data is not JSON.
    """
    try:
        return [json.loads(data)]
    except ValueError:
        pass
    if "\n" in data:  # an event whose data lines are separate JSON documents
        try:
            return [json.loads(line) for line in data.split("\n") if line.strip()]
        except ValueError:
            pass
    raise MalformedStreamError(
        f"{url} sent a malformed server-sent event: data {_short(data, 80)!r} is not JSON",
        "the server is not speaking the OpenAI/TGI streaming protocol; check the URL and port",
    )


def _error_text(obj: Any) -> str:
    err = obj.get("error") if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    if err is None and isinstance(obj, dict):
        return str(obj.get("message") or obj)
    return str(err)


def stream_error(url: str, obj: Any) -> StreamInterrupted:
    return StreamInterrupted(
        f"{url} reported an error mid-stream: {_short(_error_text(obj))}",
        "see the server's log; a retry with a shorter prompt or lower --max-tokens may pass",
    )


def read_openai(url: str, event: str, obj: Any, result: StreamResult) -> str | None:
    """One OpenAI chat-completion chunk: the text it adds, ``""`` for a token with no visible
    text (reasoning), or None when it carries no token (role, usage, finish chunks)."""
    if not isinstance(obj, dict):
        raise MalformedStreamError(
            f"{url} sent a malformed chunk: expected a JSON object, got {_short(json.dumps(obj), 60)}"
        )
    if event == "error" or "error" in obj or obj.get("object") == "error":
        raise stream_error(url, obj)
    usage = obj.get("usage")
    if usage:
        result.completion_tokens = usage.get("completion_tokens")
        result.prompt_tokens = usage.get("prompt_tokens")
    choices = obj.get("choices")
    if not choices:
        return None
    choice = choices[0]
    reason = choice.get("finish_reason")
    if reason:
        result.finish_reason = reason
    delta = choice.get("delta")
    if delta is None:  # legacy completions chunks carry "text"
        text = choice.get("text")
        return text or None
    text = delta.get("content")
    if text:
        return str(text)
    if delta.get("reasoning_content") or delta.get("reasoning"):
        return ""
    return None


def read_tgi(url: str, event: str, obj: Any, result: StreamResult) -> str | None:
    """One TGI ``/generate_stream`` event: one token; special tokens (EOS) return ``""``."""
    if not isinstance(obj, dict):
        raise MalformedStreamError(
            f"{url} sent a malformed event: expected a JSON object, got {_short(json.dumps(obj), 60)}"
        )
    if event == "error" or "error" in obj:
        raise stream_error(url, obj)
    details = obj.get("details")
    if details:
        result.completion_tokens = details.get("generated_tokens")
        result.finish_reason = details.get("finish_reason")
    if obj.get("generated_text") is not None:
        result.done = True
    token = obj.get("token")
    if not isinstance(token, dict):
        return None
    if token.get("special"):
        return ""
    return str(token.get("text") or "")
