"""Percentiles, the summary of a set of timed requests, and confidence intervals across repeated
runs. Pure: no clock, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Distribution:
    """Summary of a sample, in the unit named by the field that holds it (``ttft_ms``...)."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    min: float
    max: float

    def stat(self, name: str) -> float:
        """One statistic by name: ``mean``, ``p50`` ... ``p999``, ``min``, ``max``."""
        return float(getattr(self, name))


#: The statistics an SLO or a plot may name.
STATS = ("mean", "p50", "p90", "p95", "p99", "p999", "min", "max")


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
        p95=percentile(v, 95),
        p99=percentile(v, 99),
        p999=percentile(v, 99.9),
        min=v[0],
        max=v[-1],
    )


# Two-sided 95 % Student t quantiles t(0.975, df) for df = 1..30 (standard table values).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """The mean of repeated measurements and its 95 % confidence half-width (Student t)."""

    n: int
    mean: float
    stdev: float
    ci95: float  # mean ± ci95; 0 for a single run (unknown, not zero spread: see ``n``)

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95


def interval(values: list[float]) -> Interval | None:
    """Mean and 95 % confidence interval of independent repeated measurements; None when empty."""
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Interval(1, mean, 0.0, 0.0)
    stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.960
    return Interval(n, mean, stdev, t * stdev / math.sqrt(n))


def ks_exponential(samples: list[float], rate: float) -> float:
    """Kolmogorov-Smirnov statistic D of ``samples`` against the exponential distribution with
    ``rate`` (the largest gap between the empirical and the exponential CDF)."""
    v = sorted(samples)
    n = len(v)
    d = 0.0
    for i, x in enumerate(v):
        cdf = 1.0 - math.exp(-rate * x)
        d = max(d, cdf - i / n, (i + 1) / n - cdf)
    return d
