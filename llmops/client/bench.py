"""``llmops bench``'s load generator: N streamed requests at each concurrency, timed per token.

Timing uses ``time.perf_counter``. For each request: TTFT is from just before the request is
written to the first token's arrival; inter-token latency (ITL) is the gap between successive
token-bearing stream events; latency is until the stream ends. Per-request output speed is the
decode rate ``(tokens - 1) / (latency - TTFT)``. Aggregate output tokens/s and requests/s are
over the level's wall time. Only successful requests enter the timings; failures are counted by
kind (``connect``, ``auth``, ``http_5xx``, ``stream_error``, ``malformed_sse``, ...).

Token counts come from the server when it reports them (OpenAI ``usage`` via
``stream_options.include_usage``, TGI ``details.generated_tokens``), else from a tokenizer,
else from the number of token-bearing events (exact for TGI and vLLM, which send one per token).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmops.client.protocol import OPENAI, Endpoint, Message, StreamResult, build_request
from llmops.client.stats import Distribution, distribution
from llmops.client.stream import Transport, stream_tokens
from llmops.errors import EndpointError, UsageError

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


class RequestRecord:
    """One request's raw measurements (perf_counter seconds)."""

    __slots__ = (
        "end_s",
        "error_kind",
        "error_message",
        "prompt_tokens",
        "server_tokens",
        "start_s",
        "text",
        "token_times",
    )

    def __init__(self) -> None:
        self.start_s = 0.0
        self.end_s = 0.0
        self.token_times: list[float] = []
        self.text = ""
        self.server_tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.error_kind: str | None = None
        self.error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_kind is None


async def timed_request(transport: Transport, endpoint: Endpoint, body: bytes) -> RequestRecord:
    """Send one streamed request and time every token; failures are recorded, not raised."""
    rec = RequestRecord()
    result = StreamResult()
    times = rec.token_times
    parts: list[str] = []
    clock = time.perf_counter
    rec.start_s = clock()
    try:
        async for text in stream_tokens(transport, endpoint, body, result):
            times.append(clock())
            if text:
                parts.append(text)
    except EndpointError as exc:
        rec.error_kind, rec.error_message = exc.kind, exc.message
    except Exception as exc:  # a client bug must not hide the other requests' figures
        rec.error_kind, rec.error_message = "client", f"{type(exc).__name__}: {exc}"
    rec.end_s = clock()
    if not times and rec.error_kind is None:
        rec.error_kind, rec.error_message = "no_tokens", f"{endpoint.url} streamed no tokens"
    rec.text = "".join(parts)
    rec.server_tokens = result.completion_tokens
    rec.prompt_tokens = result.prompt_tokens
    return rec


async def run_level(
    transport: Transport,
    endpoint: Endpoint,
    bodies: list[bytes],
    *,
    concurrency: int,
    requests: int,
    on_done: Callable[[RequestRecord], None] | None = None,
) -> tuple[list[RequestRecord], float]:
    """``requests`` requests, ``concurrency`` at a time, bodies round-robin.

    Returns:
        The records in request order, and the level's wall time in seconds.
    """
    records: list[RequestRecord | None] = [None] * requests
    indices = iter(range(requests))

    async def worker() -> None:
        for i in indices:  # one iterator shared by all workers: each index is taken once
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
            records[i] = rec
            if on_done is not None:
                on_done(rec)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, requests)))))
    wall_s = time.perf_counter() - t0
    return [r for r in records if r is not None], wall_s


@dataclass(frozen=True)
class LevelResult:
    """The figures for one concurrency level against one endpoint."""

    concurrency: int
    requests: int
    ok: int
    failed: int
    errors: dict[str, int]
    error_examples: dict[str, str]
    duration_s: float
    request_throughput_rps: float
    output_throughput_tok_s: float
    output_tokens: int
    prompt_tokens: int | None
    token_source: str | None  # "usage", "tokenizer", "events", or "mixed"
    ttft_ms: Distribution | None
    itl_ms: Distribution | None
    latency_ms: Distribution | None
    request_output_tok_s: Distribution | None


def summarize(
    records: list[RequestRecord],
    *,
    concurrency: int,
    duration_s: float,
    count_tokens: Callable[[str], int] | None = None,
) -> LevelResult:
    """Reduce raw records to a :class:`LevelResult` (pure)."""
    ok = [r for r in records if r.ok]
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in records:
        if r.error_kind is not None:
            errors[r.error_kind] = errors.get(r.error_kind, 0) + 1
            examples.setdefault(r.error_kind, r.error_message or "")
    ttft: list[float] = []
    itl: list[float] = []
    latency: list[float] = []
    speed: list[float] = []
    sources: set[str] = set()
    out_tokens = 0
    prompt_tokens: int | None = None
    for r in ok:
        times = r.token_times
        if r.server_tokens is not None:
            n, src = r.server_tokens, "usage"
        elif count_tokens is not None:
            n, src = count_tokens(r.text), "tokenizer"
        else:
            n, src = len(times), "events"
        sources.add(src)
        out_tokens += n
        if r.prompt_tokens is not None:
            prompt_tokens = (prompt_tokens or 0) + r.prompt_tokens
        ttft.append(times[0] - r.start_s)
        latency.append(r.end_s - r.start_s)
        itl.extend(b - a for a, b in zip(times, times[1:], strict=False))
        decode_s = r.end_s - times[0]
        if n > 1 and decode_s > 0:
            speed.append((n - 1) / decode_s)
    source = None if not sources else sources.pop() if len(sources) == 1 else "mixed"
    return LevelResult(
        concurrency=concurrency,
        requests=len(records),
        ok=len(ok),
        failed=len(records) - len(ok),
        errors=dict(sorted(errors.items())),
        error_examples=dict(sorted(examples.items())),
        duration_s=duration_s,
        request_throughput_rps=len(ok) / duration_s if duration_s > 0 else 0.0,
        output_throughput_tok_s=out_tokens / duration_s if duration_s > 0 else 0.0,
        output_tokens=out_tokens,
        prompt_tokens=prompt_tokens,
        token_source=source,
        ttft_ms=distribution(ttft, 1000.0),
        itl_ms=distribution(itl, 1000.0),
        latency_ms=distribution(latency, 1000.0),
        request_output_tok_s=distribution(speed),
    )


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint's run: what it is, and a result per concurrency level (or why it failed)."""

    url: str
    protocol: str | None
    model: str | None
    transport: str
    levels: tuple[LevelResult, ...]
    error: str | None = None


def token_counter(tokenizer: str | None, model: str | None) -> Callable[[str], int] | None:
    """A text → token count function from a Hugging Face tokenizer, or None.

    ``tokenizer`` (a repo id or local path) must load; without it, the served model's id (when
    it looks like ``org/name``) is tried from the local Hugging Face cache only, quietly.

    Raises:
        UsageError: ``tokenizer`` was given and cannot be loaded.
    """
    name = tokenizer or model
    if not name:
        return None
    if tokenizer is None and "/" not in name:  # not a Hub repo id: nothing to find in the cache
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            name, local_files_only=tokenizer is None
        )
    except Exception as exc:
        if tokenizer is None:
            return None
        raise UsageError(
            f"tokenizer {tokenizer!r} cannot be loaded: {type(exc).__name__}: {exc}"[:300],
            "give a Hugging Face repo id or a local directory holding tokenizer.json",
        ) from exc

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    return count


def request_bodies(
    endpoint: Endpoint, prompts: list[list[Message]], max_tokens: int, *, include_usage: bool
) -> list[bytes]:
    """Every request body built once, before the clock starts."""
    return [build_request(endpoint, p, max_tokens, include_usage=include_usage) for p in prompts]


@dataclass(frozen=True)
class BenchSettings:
    """What ``llmops bench`` runs against each endpoint."""

    concurrency: tuple[int, ...]
    requests: int
    max_tokens: int
    warmup: int = 1
    transport: str = "raw"  # "raw" (lean HTTP/1.1) or "httpx"
    timeout_s: float = 300.0
    tokenizer: str | None = None


class BenchProgress(Protocol):
    """Where the run reports progress (the CLI draws a bar on stderr)."""

    def start_level(self, label: str, concurrency: int, total: int) -> None: ...

    def advance(self, ok: bool) -> None: ...

    def end_level(self) -> None: ...


def make_transport(
    name: str, url: str, api_key: str | None, *, connections: int, timeout_s: float
) -> Transport:
    from llmops.client.transport import HttpxTransport, RawTransport

    if name == "httpx":
        return HttpxTransport(url, api_key, max_connections=connections, timeout_s=timeout_s)
    return RawTransport(url, api_key, timeout_s=timeout_s)


def _advance(progress: BenchProgress) -> Callable[[RequestRecord], None]:
    def on_done(rec: RequestRecord) -> None:
        progress.advance(rec.ok)

    return on_done


async def bench_endpoint(
    label: str,
    url: str,
    api_key: str | None,
    model: str | None,
    prompts: list[list[Message]],
    settings: BenchSettings,
    progress: BenchProgress | None = None,
) -> EndpointResult:
    """Detect the endpoint, warm it up, run every concurrency level, and summarize.

    Never raises an EndpointError: an endpoint that cannot be measured at all comes back with
    ``error`` set; failed requests are counted in each level.
    """
    from llmops.client.stream import detect
    from llmops.client.transport import HttpxTransport

    probe = HttpxTransport(url, api_key, max_connections=1, timeout_s=min(settings.timeout_s, 30.0))
    try:
        endpoint = await detect(probe, url, api_key, model)
    except EndpointError as exc:
        return EndpointResult(url, None, model, settings.transport, (), error=exc.message)
    finally:
        await probe.aclose()
    include_usage = endpoint.protocol == OPENAI
    bodies = request_bodies(endpoint, prompts, settings.max_tokens, include_usage=include_usage)
    transport = make_transport(
        settings.transport,
        url,
        api_key,
        connections=max(settings.concurrency),
        timeout_s=settings.timeout_s,
    )
    raw: list[tuple[int, list[RequestRecord], float]] = []
    try:
        for i in range(settings.warmup):
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
            if (
                include_usage
                and rec.error_kind == "http_4xx"
                and "stream_options" in (rec.error_message or "")
            ):  # an older server that rejects stream_options: count tokens another way
                include_usage = False
                bodies = request_bodies(endpoint, prompts, settings.max_tokens, include_usage=False)
                rec = await timed_request(transport, endpoint, bodies[0])
            if rec.error_kind in ("connect", "auth", "unsupported"):
                return EndpointResult(
                    url,
                    endpoint.protocol,
                    endpoint.model,
                    settings.transport,
                    (),
                    rec.error_message,
                )
        for c in settings.concurrency:
            on_done = None
            if progress is not None:
                progress.start_level(label, c, settings.requests)
                on_done = _advance(progress)
            records, wall_s = await run_level(
                transport,
                endpoint,
                bodies,
                concurrency=c,
                requests=settings.requests,
                on_done=on_done,
            )
            if progress is not None:
                progress.end_level()
            raw.append((c, records, wall_s))
    finally:
        await transport.aclose()
    counter = None
    if any(r.ok and r.server_tokens is None for _, recs, _ in raw for r in recs):
        counter = token_counter(settings.tokenizer, endpoint.model)
    levels = tuple(
        summarize(recs, concurrency=c, duration_s=wall_s, count_tokens=counter)
        for c, recs, wall_s in raw
    )
    return EndpointResult(url, endpoint.protocol, endpoint.model, settings.transport, levels)
