"""Percentiles and the summary of a set of timed requests. Pure: no clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Distribution:
    """Summary of a sample, in the unit named by the field that holds it (``ttft_ms``...)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, linearly interpolated (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: list[float], scale: float = 1.0) -> Distribution | None:
    """Summary of ``values`` multiplied by ``scale`` (1000 for seconds → ms); None when empty."""
    if not values:
        return None
    v = sorted(x * scale for x in values)
    return Distribution(
        count=len(v),
        mean=sum(v) / len(v),
        p50=percentile(v, 50),
        p90=percentile(v, 90),
        p99=percentile(v, 99),
        min=v[0],
        max=v[-1],
    )
