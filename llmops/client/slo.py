"""Latency SLOs (``ttft_p99=500ms,itl_p99=50ms``), goodput, and the search for the highest
request rate that meets them. Pure: no clock, no I/O.

A load point *meets* the SLO when every named statistic of the point (e.g. the p99 of all its
requests' TTFTs) is within its limit. Goodput is the rate of requests that each met every limit
on their own (their TTFT, TPOT and E2E; for ITL, that request's own statistic of its gaps), as in
DistServe; attainment is the share of requests (failed ones included) that did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops.client.stats import STATS, percentile
from llmops.errors import UsageError

METRICS = ("ttft", "tpot", "itl", "e2e")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_TERM = re.compile(r"^(ttft|tpot|itl|e2e)_(mean|p50|p90|p95|p99|p999|max)=([0-9.]+)(us|ms|s)$")


@dataclass(frozen=True)
class SloTarget:
    """One limit: ``metric``'s ``stat`` over a load point must be at most ``limit_ms``."""

    metric: str  # ttft, tpot, itl, e2e
    stat: str  # mean, p50 ... p999, max
    limit_ms: float

    @property
    def name(self) -> str:
        return f"{self.metric}_{self.stat}"


def parse_slo(spec: str) -> tuple[SloTarget, ...]:
    """``ttft_p99=500ms,itl_p99=50ms`` → targets.

    Raises:
        UsageError: a term is not ``METRIC_STAT=NUMBER UNIT``.
    """
    targets: list[SloTarget] = []
    for term in (t.strip() for t in spec.split(",")):
        m = _TERM.match(term.replace(" ", ""))
        if not m:
            raise UsageError(
                f"--slo term {term!r} is not METRIC_STAT=VALUE (metric one of "
                f"{', '.join(METRICS)}; stat one of mean, p50, p90, p95, p99, p999, max; "
                "unit us, ms or s)",
                "e.g. --slo ttft_p99=500ms,itl_p99=50ms",
            )
        try:
            value = float(m.group(3))
        except ValueError:
            value = -1.0
        if not value > 0:
            raise UsageError(f"--slo {term!r}: the limit must be positive", "e.g. ttft_p99=500ms")
        targets.append(SloTarget(m.group(1), m.group(2), value * _UNITS[m.group(4)]))
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"--slo {spec!r} names a statistic twice", "give each one once")
    return tuple(targets)


@dataclass(frozen=True)
class SloResult:
    """How one load point did against the SLO."""

    met: bool
    values_ms: dict[str, float | None]  # each target's measured statistic (None: no sample)
    broken: tuple[str, ...]  # e.g. "ttft_p99 812 ms > 500 ms"
    good_requests: int
    attainment: float  # good / all sent (failed count as not good)
    goodput_rps: float


def request_is_good(
    targets: tuple[SloTarget, ...],
    ttft_ms: float,
    tpot_ms: float | None,
    e2e_ms: float,
    itl_ms: list[float],
) -> bool:
    """Whether one successful request met every limit on its own."""
    for t in targets:
        if t.metric == "ttft":
            v: float | None = ttft_ms
        elif t.metric == "e2e":
            v = e2e_ms
        elif t.metric == "tpot":
            v = tpot_ms
        else:
            v = _stat(sorted(itl_ms), t.stat) if itl_ms else None
        if v is not None and v > t.limit_ms:
            return False
    return True


def _stat(sorted_values: list[float], stat: str) -> float:
    if stat == "mean":
        return sum(sorted_values) / len(sorted_values)
    if stat == "max":
        return sorted_values[-1]
    return percentile(sorted_values, float(stat[1:].replace("999", "99.9")))


def judge(
    targets: tuple[SloTarget, ...],
    stats: dict[str, dict[str, float] | None],
    *,
    good: int,
    sent: int,
    window_s: float,
) -> SloResult:
    """The point's verdict from its per-metric statistics (``stats["ttft"]["p99"]`` in ms)."""
    values: dict[str, float | None] = {}
    broken: list[str] = []
    for t in targets:
        d = stats.get(t.metric)
        v = None if d is None else d.get(t.stat)
        values[t.name] = v
        if v is None:
            broken.append(f"{t.name} not measured (no successful request)")
        elif v > t.limit_ms:
            broken.append(f"{t.name} {v:.4g} ms > {t.limit_ms:g} ms")
    return SloResult(
        met=not broken,
        values_ms=values,
        broken=tuple(broken),
        good_requests=good,
        attainment=good / sent if sent else 0.0,
        goodput_rps=good / window_s if window_s > 0 else 0.0,
    )


# ------------------------------------------------------------------------------- search
SLO_BROKEN = "slo_broken"
ERROR_RATE = "error_rate"
SATURATED = "saturated"
CLIENT_BEHIND = "client_behind"
MAX_RATE = "max_rate"
CONVERGED = "converged"


@dataclass(frozen=True)
class Probe:
    """What the search needs from one measured rate."""

    rate_rps: float
    met: bool
    broken: tuple[str, ...]
    error_rate: float
    in_flight_start: float  # mean requests outstanding over the first third of the arrivals
    in_flight_end: float  # ... and over the last third
    lag_p99_ms: float | None


def saturated(in_flight_start: float, in_flight_end: float) -> bool:
    """The server falls behind the offered rate: requests outstanding grew during the arrivals
    (by Little's law they stay level when it keeps up) by more than half, plus 2 for noise."""
    return in_flight_end > 1.5 * in_flight_start + 2


def why_bad(p: Probe, *, max_error_rate: float, lag_limit_ms: float) -> str | None:
    """Why a probed rate cannot count as sustained, or None when it is fine.

    Order matters: a client that fell behind its own schedule measured nothing about the server;
    errors come before latency; a server whose completions fall short of the offered rate is
    saturated (its queue grows without bound) even if the short run still met the SLO.
    """
    if p.lag_p99_ms is not None and p.lag_p99_ms > lag_limit_ms:
        return CLIENT_BEHIND
    if p.error_rate > max_error_rate:
        return ERROR_RATE
    if not p.met:
        return SLO_BROKEN
    if saturated(p.in_flight_start, p.in_flight_end):
        return SATURATED
    return None


def next_rate(
    probes: list[Probe],
    *,
    start_rps: float,
    max_rps: float,
    steps: int,
    max_error_rate: float = 0.05,
    lag_limit_ms: float = 50.0,
) -> tuple[float | None, str | None, str | None]:
    """The search's next rate: double from ``start_rps`` until a rate fails, then bisect
    between the last good and the first bad rate ``steps`` times.

    Returns:
        ``(next rate, None, None)`` to go on, or ``(None, stop reason, its detail)`` when done;
        the reason of the first failing rate (slo_broken, error_rate, saturated, client_behind)
        is kept once bisection ends, or ``max_rate``/``converged``.
    """
    if not probes:
        return min(start_rps, max_rps), None, None
    verdicts = [
        why_bad(p, max_error_rate=max_error_rate, lag_limit_ms=lag_limit_ms) for p in probes
    ]
    if all(v is None for v in verdicts):
        last = probes[-1].rate_rps
        if last >= max_rps:
            return None, MAX_RATE, f"reached --max-rate {max_rps:g} req/s with the SLO still met"
        return min(last * 2, max_rps), None, None
    first_failure = next(i for i, v in enumerate(verdicts) if v is not None)
    bad = [(p, v) for p, v in zip(probes, verdicts, strict=True) if v is not None]
    lowest_bad, reason = min(bad, key=lambda pv: pv[0].rate_rps)
    best = max(
        (p.rate_rps for p, v in zip(probes, verdicts, strict=True) if v is None), default=0.0
    )
    taken = len(probes) - 1 - first_failure  # bisection steps so far
    close = lowest_bad.rate_rps - best <= 0.02 * lowest_bad.rate_rps
    if taken >= steps or close:
        return None, reason, _detail(lowest_bad, reason)
    return (best + lowest_bad.rate_rps) / 2, None, None


def _detail(p: Probe, reason: str | None) -> str:
    r = f"{p.rate_rps:.4g} req/s"
    if reason == CLIENT_BEHIND:
        return f"at {r} the client fell behind its schedule (lag p99 {p.lag_p99_ms:.3g} ms)"
    if reason == ERROR_RATE:
        return f"at {r} {p.error_rate:.1%} of requests failed"
    if reason == SATURATED:
        return (
            f"at {r} requests in flight grew from {p.in_flight_start:.3g} to "
            f"{p.in_flight_end:.3g} during the run: the server cannot keep up (saturated)"
        )
    return f"at {r} the SLO broke: " + "; ".join(p.broken)


__all__ = ["METRICS", "STATS", "SloResult", "SloTarget", "judge", "next_rate", "parse_slo"]
