"""Raw request records reduced to one load point's figures (pure).

Per-request output speed is the decode rate ``(tokens - 1) / (latency - TTFT)``. Aggregate
output tokens/s and requests/s are over the point's wall time (or its measured window). Only
successful requests enter the timings. Token counts come from the server when it reports them
(OpenAI ``usage`` via ``stream_options.include_usage``, TGI ``details.generated_tokens``), else
from a tokenizer, else from the number of token-bearing events (exact for TGI and vLLM, which
send one per token); where the server reports them, they are checked against the client's own
count (``UsageCheck``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from llmops.client.records import RequestRecord
from llmops.client.slo import SloResult, SloTarget, judge, request_is_good
from llmops.client.stats import Distribution, Interval, distribution
from llmops.errors import UsageError


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
        kept = [r for r in records if lo <= sent_at(r) < hi]
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
    acc = _Timings(count_tokens, slo)
    for r in ok:
        acc.add(r)
    lag = [r.start_s - r.intended_s for r in records if r.intended_s is not None]
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
        output_throughput_tok_s=acc.out_tokens / duration_s if duration_s > 0 else 0.0,
        output_tokens=acc.out_tokens,
        prompt_tokens=acc.prompt_tokens,
        token_source=acc.source(),
        ttft_ms=distribution(acc.ttft, 1000.0),
        itl_ms=distribution(acc.itl, 1000.0),
        latency_ms=distribution(acc.latency, 1000.0),
        request_output_tok_s=distribution(acc.speed),
        tpot_ms=distribution(acc.tpot, 1000.0),
        schedule_lag_ms=distribution(lag, 1000.0),
        excluded=excluded,
        in_flight_start=in_flight[0],
        in_flight_end=in_flight[1],
        usage=_usage_check(acc.pairs, "tokenizer" if count_tokens is not None else "events"),
        **point,
    )
    if not slo:
        return result
    stats = {"ttft": result.ttft_ms, "tpot": result.tpot_ms, "itl": result.itl_ms}
    stats["e2e"] = result.latency_ms
    verdict = judge(
        slo,
        {k: None if d is None else asdict(d) for k, d in stats.items()},
        good=acc.good,
        sent=len(records),
        window_s=duration_s,
    )
    return replace(result, slo=verdict)


class _Timings:
    """The successful requests' timings and token counts, one request at a time."""

    def __init__(self, count_tokens: Callable[[str], int] | None, slo: tuple[SloTarget, ...]):
        self.count_tokens, self.slo = count_tokens, slo
        self.ttft: list[float] = []
        self.itl: list[float] = []
        self.latency: list[float] = []
        self.speed: list[float] = []
        self.tpot: list[float] = []
        self.sources: set[str] = set()
        self.pairs: list[tuple[int, int]] = []  # (server's count, the client's) per response
        self.out_tokens = 0
        self.good = 0  # requests meeting every per-request SLO
        self.prompt_tokens: int | None = None

    def _tokens(self, r: RequestRecord) -> int:
        times = r.token_times
        counted = self.count_tokens(r.text) if self.count_tokens is not None else len(times)
        if r.server_tokens is not None:
            self.sources.add("usage")
            self.pairs.append((r.server_tokens, counted))
            return r.server_tokens
        self.sources.add("tokenizer" if self.count_tokens is not None else "events")
        return counted

    def add(self, r: RequestRecord) -> None:
        n = self._tokens(r)
        self.out_tokens += n
        if r.prompt_tokens is not None:
            self.prompt_tokens = (self.prompt_tokens or 0) + r.prompt_tokens
        times = r.token_times
        first = times[0] - r.start_s
        e2e = r.end_s - r.start_s
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        self.ttft.append(first)
        self.latency.append(e2e)
        self.itl.extend(gaps)
        decode_s = r.end_s - times[0]
        one_tpot = (e2e - first) / (n - 1) if n > 1 else None
        if one_tpot is not None:
            self.tpot.append(one_tpot)
        if n > 1 and decode_s > 0:
            self.speed.append((n - 1) / decode_s)
        if self.slo and request_is_good(
            self.slo,
            first * 1e3,
            None if one_tpot is None else one_tpot * 1e3,
            e2e * 1e3,
            [g * 1e3 for g in gaps],
        ):
            self.good += 1

    def source(self) -> str | None:
        """Where the token counts came from: usage, tokenizer or events, or mixed."""
        if not self.sources:
            return None
        return next(iter(self.sources)) if len(self.sources) == 1 else "mixed"


def sent_at(r: RequestRecord) -> float:
    """When a request was sent: its intended time (open loop), else its actual start."""
    return r.intended_s if r.intended_s is not None else r.start_s


def _in_flight_thirds(records: list[RequestRecord]) -> tuple[float | None, float | None]:
    """Mean number of requests outstanding at each send, over the first and the last third of
    the sends (a request is outstanding from its send time until its response ended)."""
    if len(records) < 6:
        return None, None
    from bisect import bisect_right

    sends = sorted(sent_at(r) for r in records)
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
