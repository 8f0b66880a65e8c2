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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from llmops.client.protocol import OPENAI, Endpoint, Message, StreamResult, build_request
from llmops.client.slo import SloResult, SloTarget, judge, request_is_good
from llmops.client.stats import Distribution, Interval, distribution, interval
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
        "intended_s",
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
        self.intended_s: float | None = None  # open loop: when it was meant to be sent

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
class UsageCheck:
    """The server's token counts against the client's own count of the same responses."""

    compared: int  # successful requests that reported usage
    mismatched: int  # of those, how many disagree by more than max(1, 5 %)
    server_tokens: int
    counted_tokens: int
    counted_by: str  # "events" (one per token-bearing stream event) or "tokenizer"
    worst: str | None  # the largest disagreement, e.g. "server said 100, counted 4"


@dataclass(frozen=True)
class LevelResult:
    """The figures for one load point (a concurrency level or a request rate) at one endpoint.

    Open-loop points (``rate_rps`` set) also carry the schedule lag; points with a time window
    count only requests *sent* inside it (``excluded`` were sent during warm-up or cool-down).
    """

    concurrency: int | None
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
    latency_ms: Distribution | None  # end to end
    request_output_tok_s: Distribution | None
    mode: str = "concurrency"  # "concurrency" (closed loop) or "rate" (open loop)
    rate_rps: float | None = None  # offered rate (open loop)
    arrival: str | None = None  # constant or poisson
    seed: int | None = None
    label: str | None = None  # e.g. "sync", "throughput", "search 3"
    tpot_ms: Distribution | None = None
    schedule_lag_ms: Distribution | None = None
    excluded: int = 0
    in_flight_start: float | None = None  # mean outstanding requests, first third of sends
    in_flight_end: float | None = None  # ... last third (growth = saturation)
    usage: UsageCheck | None = None
    slo: SloResult | None = None
    repeats: int = 1
    ci95: dict[str, Interval] | None = None  # across --repeat runs
    server: Any = None  # metrics_scrape.ServerSample summary, when scraped
    gpu: Any = None  # GPU samples summary, when NVML answered


def _usage_check(pairs: list[tuple[int, int]], counted_by: str) -> UsageCheck | None:
    if not pairs:
        return None
    bad = [(s, c) for s, c in pairs if abs(s - c) > max(1, round(0.05 * s))]
    worst = max(bad, key=lambda sc: abs(sc[0] - sc[1]), default=None)
    return UsageCheck(
        compared=len(pairs),
        mismatched=len(bad),
        server_tokens=sum(s for s, _ in pairs),
        counted_tokens=sum(c for _, c in pairs),
        counted_by=counted_by,
        worst=None if worst is None else f"server said {worst[0]}, counted {worst[1]}",
    )


def summarize(
    records: list[RequestRecord],
    *,
    concurrency: int | None,
    duration_s: float,
    count_tokens: Callable[[str], int] | None = None,
    window: tuple[float, float] | None = None,
    slo: tuple[SloTarget, ...] = (),
    **point: Any,
) -> LevelResult:
    """Reduce raw records to a :class:`LevelResult` (pure).

    With ``window`` (perf_counter start, end), only requests sent inside it count, and the rates
    are over the time from its start until the window ends or the last of them finished,
    whichever is later; otherwise over ``duration_s``. ``point`` fills the descriptive fields
    (mode, rate_rps, arrival, seed, label).
    """
    excluded = 0
    if window is not None:
        lo, hi = window
        kept = [r for r in records if lo <= _sent(r) < hi]
        excluded = len(records) - len(kept)
        records = kept
        # until the last of them finished, when that is after the window: a slow server's
        # requests sent in the window are not delivered at the window's rate
        duration_s = max(hi, max((r.end_s for r in kept), default=hi)) - lo
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
    tpot: list[float] = []
    lag: list[float] = []
    sources: set[str] = set()
    pairs: list[tuple[int, int]] = []
    out_tokens = 0
    good = 0
    prompt_tokens: int | None = None
    for r in records:
        if r.intended_s is not None:
            lag.append(r.start_s - r.intended_s)
    for r in ok:
        times = r.token_times
        counted = count_tokens(r.text) if count_tokens is not None else len(times)
        if r.server_tokens is not None:
            n, src = r.server_tokens, "usage"
            pairs.append((r.server_tokens, counted))
        elif count_tokens is not None:
            n, src = counted, "tokenizer"
        else:
            n, src = counted, "events"
        sources.add(src)
        out_tokens += n
        if r.prompt_tokens is not None:
            prompt_tokens = (prompt_tokens or 0) + r.prompt_tokens
        first = times[0] - r.start_s
        e2e = r.end_s - r.start_s
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        ttft.append(first)
        latency.append(e2e)
        itl.extend(gaps)
        decode_s = r.end_s - times[0]
        one_tpot = (e2e - first) / (n - 1) if n > 1 else None
        if one_tpot is not None:
            tpot.append(one_tpot)
        if n > 1 and decode_s > 0:
            speed.append((n - 1) / decode_s)
        if slo and request_is_good(
            slo,
            first * 1e3,
            None if one_tpot is None else one_tpot * 1e3,
            e2e * 1e3,
            [g * 1e3 for g in gaps],
        ):
            good += 1
    source = None if not sources else sources.pop() if len(sources) == 1 else "mixed"
    in_flight = _in_flight_thirds(records)
    result = LevelResult(
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
        tpot_ms=distribution(tpot, 1000.0),
        schedule_lag_ms=distribution(lag, 1000.0),
        excluded=excluded,
        in_flight_start=in_flight[0],
        in_flight_end=in_flight[1],
        usage=_usage_check(pairs, "tokenizer" if count_tokens is not None else "events"),
        **point,
    )
    if slo:
        stats = {
            "ttft": result.ttft_ms,
            "tpot": result.tpot_ms,
            "itl": result.itl_ms,
            "e2e": result.latency_ms,
        }
        verdict = judge(
            slo,
            {k: None if d is None else asdict(d) for k, d in stats.items()},
            good=good,
            sent=len(records),
            window_s=duration_s,
        )
        result = replace(result, slo=verdict)
    return result


def _sent(r: RequestRecord) -> float:
    return r.intended_s if r.intended_s is not None else r.start_s


def _in_flight_thirds(records: list[RequestRecord]) -> tuple[float | None, float | None]:
    """Mean number of requests outstanding at each send, over the first and the last third of
    the sends (a request is outstanding from its send time until its response ended)."""
    if len(records) < 6:
        return None, None
    from bisect import bisect_right

    sends = sorted(_sent(r) for r in records)
    ends = sorted(r.end_s for r in records)
    outstanding = [i + 1 - bisect_right(ends, t) for i, t in enumerate(sends)]
    third = len(outstanding) // 3
    return (
        sum(outstanding[:third]) / third,
        sum(outstanding[-third:]) / third,
    )


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
        import importlib

        auto_tokenizer: Any = importlib.import_module("transformers").AutoTokenizer
        tok = auto_tokenizer.from_pretrained(name, local_files_only=tokenizer is None)
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


@dataclass(frozen=True)
class BenchSettings:
    """What ``llmops bench`` runs against each endpoint.

    The load points are, in order of precedence: a search for the highest rate meeting the SLO
    (``search``); a sweep (``sweep`` rates between a synchronous baseline and the throughput
    ceiling); the open-loop ``rates``; else the closed-loop ``concurrency`` levels (``requests``
    each, or for ``duration_s`` when set).
    """

    concurrency: tuple[int, ...]
    requests: int
    max_tokens: int
    warmup: int = 1
    transport: str = "raw"  # "raw" (lean HTTP/1.1) or "httpx"
    timeout_s: float = 300.0
    tokenizer: str | None = None
    rates: tuple[float, ...] = ()
    arrival: str = "constant"
    duration_s: float | None = None
    warmup_s: float = 0.0  # leading window of each timed point left out of the figures
    cooldown_s: float = 0.0  # trailing window left out
    fixed_output: bool = False
    seed: int = 0
    repeat: int = 1
    sweep: int = 0  # open-loop rates between the baseline and the ceiling; 0 = no sweep
    sweep_concurrency: int = 64  # the closed-loop level that finds the ceiling
    slo: tuple[SloTarget, ...] = ()
    search: bool = False
    max_rate: float = 10000.0
    search_steps: int = 4
    max_error_rate: float = 0.05
    monitor: bool = True  # scrape /metrics and sample NVML during each point
    sample_interval_s: float = 1.0


class BenchProgress(Protocol):
    """Where the run reports progress (the CLI draws a bar on stderr)."""

    def start_level(self, label: str, what: str, total: int | None) -> None: ...

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


@dataclass(frozen=True)
class Stop:
    """Why a search ended and the rate it settled on."""

    reason: str  # slo_broken, error_rate, saturated, client_behind, max_rate
    detail: str
    best_rate_rps: float | None  # the highest probed rate that passed


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint's run: what it is, and a result per load point (or why it failed)."""

    url: str
    protocol: str | None
    model: str | None
    transport: str
    levels: tuple[LevelResult, ...]
    error: str | None = None
    search: Stop | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Point:
    mode: str  # "concurrency" or "rate"
    value: float
    label: str | None = None


_CI_FIGURES = (
    ("request_throughput_rps", None),
    ("output_throughput_tok_s", None),
    ("ttft_ms", "p50"),
    ("ttft_ms", "p99"),
    ("itl_ms", "p50"),
    ("itl_ms", "p99"),
    ("tpot_ms", "p50"),
    ("latency_ms", "p50"),
)


def _confidence(runs: list[LevelResult]) -> dict[str, Interval]:
    out: dict[str, Interval] = {}
    for field, stat in _CI_FIGURES:
        values = []
        for lv in runs:
            v = getattr(lv, field)
            if stat is not None:
                v = None if v is None else getattr(v, stat)
            if v is not None:
                values.append(float(v))
        iv = interval(values)
        if iv is not None:
            out[field if stat is None else f"{field.removesuffix('_ms')}_{stat}_ms"] = iv
    goodput = [lv.slo.goodput_rps for lv in runs if lv.slo is not None]
    if goodput:
        g = interval(goodput)
        assert g is not None
        out["goodput_rps"] = g
    return out


class _Runner:
    """Runs load points against one detected endpoint and summarizes them."""

    def __init__(
        self,
        transport: Transport,
        endpoint: Endpoint,
        bodies: list[bytes],
        settings: BenchSettings,
        progress: BenchProgress | None,
        label: str,
        api_key: str | None,
        nvml: Any = None,
    ) -> None:
        self.nvml = nvml
        self.transport = transport
        self.endpoint = endpoint
        self.bodies = bodies
        self.settings = settings
        self.progress = progress
        self.label = label
        self.api_key = api_key
        self.raw: list[
            tuple[_Point, int, list[tuple[list[RequestRecord], Any, float, int]], Any]
        ] = []

    async def run_point(self, point: _Point) -> int:
        """Measure one point (``repeat`` times); returns its index in ``raw``."""
        from llmops.client.load import arrival_offsets, run_closed_for, run_open_loop

        st = self.settings
        index = len(self.raw)
        runs: list[tuple[list[RequestRecord], Any, float, int]] = []
        sampler = None
        if st.monitor:
            from llmops.client.monitor import Sampler

            sampler = Sampler(self.endpoint.url, self.api_key, st.sample_interval_s, self.nvml)
            await sampler.start()
        try:
            for k in range(st.repeat):
                seed = st.seed + 1000 * index + k
                what = (
                    f"{point.value:g} req/s {st.arrival}"
                    if point.mode == "rate"
                    else f"concurrency {point.value:g}"
                )
                if point.label:
                    what = f"{point.label}: {what}"
                if st.repeat > 1:
                    what += f" (run {k + 1}/{st.repeat})"
                on_done = None
                if point.mode == "rate":
                    duration = st.duration_s or st.requests / point.value
                    offsets = arrival_offsets(point.value, duration, st.arrival, seed)
                    if self.progress is not None:
                        self.progress.start_level(self.label, what, len(offsets))
                        on_done = _advance(self.progress)
                    records, t0, wall = await run_open_loop(
                        self.transport, self.endpoint, self.bodies, offsets, on_done=on_done
                    )
                    window: Any = (t0 + st.warmup_s, t0 + duration - st.cooldown_s)
                elif st.duration_s is not None:
                    if self.progress is not None:
                        self.progress.start_level(self.label, what, None)
                        on_done = _advance(self.progress)
                    records, t0, wall = await run_closed_for(
                        self.transport,
                        self.endpoint,
                        self.bodies,
                        concurrency=int(point.value),
                        duration_s=st.duration_s,
                        on_done=on_done,
                    )
                    window = (t0 + st.warmup_s, t0 + st.duration_s - st.cooldown_s)
                else:
                    if self.progress is not None:
                        self.progress.start_level(self.label, what, st.requests)
                        on_done = _advance(self.progress)
                    records, wall = await run_level(
                        self.transport,
                        self.endpoint,
                        self.bodies,
                        concurrency=int(point.value),
                        requests=st.requests,
                        on_done=on_done,
                    )
                    window = None
                if self.progress is not None:
                    self.progress.end_level()
                runs.append((records, window, wall, seed))
        finally:
            monitored = await sampler.stop() if sampler is not None else None
        self.raw.append((point, index, runs, monitored))
        return index

    def summarize(self, index: int, counter: Callable[[str], int] | None) -> LevelResult:
        point, _, runs, monitored = self.raw[index]
        st = self.settings
        common: dict[str, Any] = {
            "mode": point.mode,
            "rate_rps": point.value if point.mode == "rate" else None,
            "arrival": st.arrival if point.mode == "rate" else None,
            "label": point.label,
        }
        conc = int(point.value) if point.mode == "concurrency" else None
        per_run = [
            summarize(
                recs,
                concurrency=conc,
                duration_s=wall,
                count_tokens=counter,
                window=window,
                slo=st.slo,
                seed=seed,
                **common,
            )
            for recs, window, wall, seed in runs
        ]
        if len(per_run) == 1:
            result = per_run[0]
        else:
            kept: list[RequestRecord] = []
            for recs, window, _, _ in runs:
                kept += (
                    recs
                    if window is None
                    else [r for r in recs if window[0] <= _sent(r) < window[1]]
                )
            result = summarize(
                kept,
                concurrency=conc,
                duration_s=sum(lv.duration_s for lv in per_run),
                count_tokens=counter,
                slo=st.slo,
                seed=runs[0][3],
                **common,
            )
            result = replace(
                result,
                excluded=sum(lv.excluded for lv in per_run),
                repeats=len(per_run),
                ci95=_confidence(per_run),
                in_flight_start=per_run[-1].in_flight_start,
                in_flight_end=per_run[-1].in_flight_end,
            )
        if monitored is not None:
            from llmops.client.monitor import attach

            result = attach(result, monitored)
        return result

    def probe(self, index: int) -> Any:
        from llmops.client.slo import Probe

        lv = self.summarize(index, None)
        return Probe(
            rate_rps=lv.rate_rps or 0.0,
            met=lv.slo.met if lv.slo is not None else True,
            broken=lv.slo.broken if lv.slo is not None else (),
            error_rate=lv.failed / lv.requests if lv.requests else 1.0,
            in_flight_start=lv.in_flight_start or 0.0,
            in_flight_end=lv.in_flight_end or 0.0,
            lag_p99_ms=lv.schedule_lag_ms.p99 if lv.schedule_lag_ms else None,
        )


async def bench_endpoint(
    label: str,
    url: str,
    api_key: str | None,
    model: str | None,
    prompts: list[list[Message]],
    settings: BenchSettings,
    progress: BenchProgress | None = None,
    nvml: Any = None,
) -> EndpointResult:
    """Detect the endpoint, warm it up, run every load point, and summarize.

    Never raises an EndpointError: an endpoint that cannot be measured at all comes back with
    ``error`` set; failed requests are counted in each point.
    """
    from llmops.client.stream import detect
    from llmops.client.transport import HttpxTransport

    st = settings
    probe = HttpxTransport(url, api_key, max_connections=1, timeout_s=min(st.timeout_s, 30.0))
    try:
        endpoint = await detect(probe, url, api_key, model)
    except EndpointError as exc:
        return EndpointResult(url, None, model, st.transport, (), error=exc.message)
    finally:
        await probe.aclose()
    include_usage = endpoint.protocol == OPENAI

    def bodies_for(usage: bool) -> list[bytes]:
        return request_bodies(
            endpoint, prompts, st.max_tokens, include_usage=usage, fixed_output=st.fixed_output
        )

    bodies = bodies_for(include_usage)
    transport = make_transport(
        st.transport,
        url,
        api_key,
        connections=max((*st.concurrency, st.sweep_concurrency)),
        timeout_s=st.timeout_s,
    )
    notes: list[str] = []
    stop: Stop | None = None
    try:
        for i in range(st.warmup):
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
            if (
                include_usage
                and rec.error_kind == "http_4xx"
                and "stream_options" in (rec.error_message or "")
            ):  # an older server that rejects stream_options: count tokens another way
                include_usage = False
                bodies = bodies_for(False)
                rec = await timed_request(transport, endpoint, bodies[0])
            if rec.error_kind in ("connect", "auth", "unsupported"):
                return EndpointResult(
                    url, endpoint.protocol, endpoint.model, st.transport, (), rec.error_message
                )
        runner = _Runner(transport, endpoint, bodies, st, progress, label, api_key, nvml)
        order: list[int] = []
        if st.search:
            stop = await _search(runner, order)
        elif st.sweep:
            order.append(await runner.run_point(_Point("concurrency", 1, "sync")))
            order.append(
                await runner.run_point(_Point("concurrency", st.sweep_concurrency, "throughput"))
            )
            lo = runner.summarize(order[0], None).request_throughput_rps
            hi = runner.summarize(order[1], None).request_throughput_rps
            if hi <= lo or lo <= 0:
                notes.append(
                    f"the throughput ceiling ({hi:.4g} req/s) is not above the synchronous rate "
                    f"({lo:.4g} req/s): no open-loop rates between them were run"
                )
            else:
                for j in range(1, st.sweep + 1):
                    rate = lo + (hi - lo) * j / (st.sweep + 1)
                    order.append(await runner.run_point(_Point("rate", rate, f"sweep {j}")))
        elif st.rates:
            for rate in st.rates:
                order.append(await runner.run_point(_Point("rate", rate)))
        else:
            for c in st.concurrency:
                order.append(await runner.run_point(_Point("concurrency", c)))
    finally:
        await transport.aclose()
    counter = None
    if any(
        r.ok and (r.server_tokens is None or st.tokenizer)
        for _, _, runs, _ in runner.raw
        for recs, _, _, _ in runs
        for r in recs
    ):
        counter = token_counter(st.tokenizer, endpoint.model)
    levels = tuple(runner.summarize(i, counter) for i in order)
    if st.fixed_output:
        short = sum(
            1
            for _, _, runs, _ in runner.raw
            for recs, _, _, _ in runs
            for r in recs
            if r.ok and r.server_tokens is not None and r.server_tokens < st.max_tokens
        )
        if short:
            notes.append(
                f"{short} responses stopped before --max-tokens {st.max_tokens}: this server "
                "does not honour ignore_eos/min_tokens, so output lengths vary"
            )
    for lv in levels:
        if lv.usage is not None and lv.usage.mismatched:
            notes.append(
                f"usage discrepancy: {lv.usage.mismatched} of {lv.usage.compared} responses "
                f"report a token count that differs from the {lv.usage.counted_by} counted "
                f"({lv.usage.worst})"
            )
            break
    return EndpointResult(
        url, endpoint.protocol, endpoint.model, st.transport, levels, None, stop, tuple(notes)
    )


async def _search(runner: _Runner, order: list[int]) -> Stop:
    """Double the rate until a point fails, then bisect; see :func:`llmops.client.slo.next_rate`."""
    from llmops.client.slo import next_rate

    st = runner.settings
    if st.rates:
        start = st.rates[0]
    else:
        order.append(await runner.run_point(_Point("concurrency", 1, "sync")))
        start = max(runner.summarize(order[0], None).request_throughput_rps, 0.1)
    probes: list[Any] = []
    while True:
        rate, reason, detail = next_rate(
            probes,
            start_rps=start,
            max_rps=st.max_rate,
            steps=st.search_steps,
            max_error_rate=st.max_error_rate,
        )
        if rate is None:
            from llmops.client.slo import why_bad

            ok = [
                p.rate_rps
                for p in probes
                if why_bad(p, max_error_rate=st.max_error_rate, lag_limit_ms=50.0) is None
            ]
            return Stop(reason or "", detail or "", max(ok) if ok else None)
        index = await runner.run_point(_Point("rate", rate, f"search {len(probes) + 1}"))
        order.append(index)
        probes.append(runner.probe(index))
