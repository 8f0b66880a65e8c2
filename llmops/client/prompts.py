"""What ``llmops bench`` sends: the prompts (built in or from a file) and every request body,
built once before the clock starts."""

from __future__ import annotations

import json
from pathlib import Path

from llmops.client.protocol import OPENAI, Endpoint, Message, build_request
from llmops.errors import UsageError

DEFAULT_PROMPTS = (
    "Explain what a GPU does in one paragraph.",
    "Write a short poem about the sea.",
    "List five uses of Python in data engineering.",
    "What is the capital of France, and why is it famous?",
    "Summarise the plot of Romeo and Juliet in three sentences.",
    "Give three tips for writing clear documentation.",
    "Describe how a hash table works.",
    "What are the health benefits of walking every day?",
)


def load_prompts(path: Path | None) -> list[list[Message]]:
    """Prompts from ``path``: one per line, or JSON lines with ``prompt`` or ``messages``.

    Raises:
        UsageError: the file is missing, empty, or holds a line that is neither.
    """
    if path is None:
        return [[{"role": "user", "content": p}] for p in DEFAULT_PROMPTS]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"prompts file {str(path)!r} cannot be read: {exc.strerror}",
            "give a text file with one prompt per line",
        ) from exc
    prompts: list[list[Message]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(("{", '"')):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, str):
                prompts.append([{"role": "user", "content": obj}])
                continue
            if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
                prompts.append([{"role": "user", "content": obj["prompt"]}])
                continue
            if isinstance(obj, dict) and isinstance(obj.get("messages"), list):
                msgs = obj["messages"]
                if msgs and all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs
                ):
                    prompts.append(
                        [
                            {"role": str(m.get("role", "user")), "content": m["content"]}
                            for m in msgs
                        ]
                    )
                    continue
            raise UsageError(
                f"prompts file {str(path)!r} line {n} is JSON but has no 'prompt' or 'messages'",
                'write {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}',
            )
        prompts.append([{"role": "user", "content": line}])
    if not prompts:
        raise UsageError(f"prompts file {str(path)!r} holds no prompts", "write one per line")
    return prompts


def request_bodies(
    endpoint: Endpoint,
    prompts: list[list[Message]],
    max_tokens: int,
    *,
    include_usage: bool,
    fixed_output: bool = False,
) -> list[bytes]:
    """Every request body built once, before the clock starts.

    ``fixed_output`` asks an OpenAI-protocol server for exactly ``max_tokens`` tokens:
    ``ignore_eos`` and ``min_tokens`` (vLLM's sampling parameters; llama.cpp reads
    ``ignore_eos``; servers that do not know them ignore them, which the run then reports).
    TGI's ``/generate_stream`` has neither.
    """
    bodies = [build_request(endpoint, p, max_tokens, include_usage=include_usage) for p in prompts]
    if fixed_output and endpoint.protocol == OPENAI:
        out = []
        for b in bodies:
            obj = json.loads(b)
            obj.update(ignore_eos=True, min_tokens=max_tokens)
            out.append(json.dumps(obj, ensure_ascii=False).encode())
        bodies = out
    return bodies
