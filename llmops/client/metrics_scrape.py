"""An engine's Prometheus ``/metrics``, read into the few figures llmops shows: requests waiting
and running, KV-cache usage, generated tokens, finished requests and the server's TTFT histogram.
Pure: parsing and arithmetic on text already fetched.

Each engine names these differently (the table lives in ``llmops.plan.monitoring``, which the
compose/k8s monitoring renders use too); the names and where they come from:

- vLLM v0.20.2 (``vllm/v1/metrics/loggers.py``: ``vllm:num_requests_running`` l.452,
  ``vllm:num_requests_waiting`` l.462, ``vllm:kv_cache_usage_perc`` l.520 (a 0-1 fraction),
  ``vllm:generation_tokens`` l.663 and ``vllm:request_success`` l.673 (counters, exposed with
  ``_total``), ``vllm:time_to_first_token_seconds`` l.755 (histogram)).
- TGI (``docs/source/reference/metrics.md`` in huggingface/text-generation-inference, commit
  53fdbe6): ``tgi_queue_size``, ``tgi_batch_current_size``, ``tgi_request_success`` (counter),
  ``tgi_request_generated_tokens`` (a per-request histogram: its ``_sum`` is the total). TGI
  exports no TTFT and no KV-cache usage.
- llama.cpp b11434 (``tools/server/server-task.cpp`` l.1530-1610, needs ``--metrics``, which
  llmops' llama.cpp plan passes): ``llamacpp:requests_processing``,
  ``llamacpp:requests_deferred``, ``llamacpp:tokens_predicted_total``; no KV usage, no TTFT.
- llmops' bundled backend (``llmops/backend/metrics.py``): ``llmops_queue_depth``,
  ``llmops_active_sequences``, ``llmops_generated_tokens_total``, ``llmops_requests_total``
  (by route and status), ``llmops_time_to_first_token_seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmops.plan.monitoring import ENGINE_METRICS

#: Per engine: figure -> metric name (None: the engine does not export it). One table, shared
#: with the monitoring renders: see ``llmops.plan.monitoring.ENGINE_METRICS`` for the sources.
PROFILES = ENGINE_METRICS

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Prometheus text exposition → ``{name: [(labels, value), ...]}``; bad lines are skipped."""
    out: Samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        labels: dict[str, str] = {}
        if "{" in line:
            name, _, rest = line.partition("{")
            body, _, tail = rest.rpartition("}")
            labels = _labels(body)
        else:
            name, _, tail = line.partition(" ")
        parts = tail.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        out.setdefault(name.strip(), []).append((labels, value))
    return out


def _labels(body: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    i = 0
    while i < len(body):
        eq = body.find("=", i)
        if eq < 0:
            break
        key = body[i:eq].strip().lstrip(",").strip()
        j = body.find('"', eq) + 1
        value = []
        while j < len(body) and body[j] != '"':
            if body[j] == "\\" and j + 1 < len(body):
                j += 1
                value.append({"n": "\n"}.get(body[j], body[j]))
            else:
                value.append(body[j])
            j += 1
        labels[key] = "".join(value)
        i = j + 1
    return labels


def detect_engine(samples: Samples) -> str | None:
    """The profile whose metric names appear most (None when none does)."""
    best, hits = None, 0
    for engine, names in PROFILES.items():
        n = sum(1 for m in names.values() if m and (m in samples or m + "_bucket" in samples))
        if n > hits:
            best, hits = engine, n
    return best


@dataclass(frozen=True)
class ServerSnapshot:
    """One scrape, reduced. Counters are totals since the engine started."""

    engine: str | None
    waiting: float | None
    running: float | None
    kv_usage_pct: float | None
    generated_tokens: float | None
    requests: float | None
    ttft_buckets: tuple[tuple[float, float], ...] | None  # (upper bound s, cumulative count)


def _total(samples: Samples, name: str | None) -> float | None:
    if not name or name not in samples:
        return None
    return sum(v for _, v in samples[name])


def snapshot(samples: Samples, engine: str | None = None) -> ServerSnapshot:
    """The figures of one scrape; ``engine`` None detects it from the names."""
    engine = engine or detect_engine(samples)
    prof = PROFILES.get(engine or "", {})
    kv = _total(samples, prof.get("kv_usage"))
    buckets = None
    ttft = prof.get("ttft")
    if ttft and ttft + "_bucket" in samples:
        acc: dict[float, float] = {}
        for labels, v in samples[ttft + "_bucket"]:
            le = labels.get("le")
            if le is None:
                continue
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            acc[bound] = acc.get(bound, 0.0) + v  # summed over other labels (model, engine)
        buckets = tuple(sorted(acc.items()))
    return ServerSnapshot(
        engine=engine,
        waiting=_total(samples, prof.get("waiting")),
        running=_total(samples, prof.get("running")),
        kv_usage_pct=None if kv is None else 100.0 * kv,
        generated_tokens=_total(samples, prof.get("generated_tokens")),
        requests=_total(samples, prof.get("requests")),
        ttft_buckets=buckets,
    )


def histogram_quantile(
    q: float,
    before: tuple[tuple[float, float], ...] | None,
    after: tuple[tuple[float, float], ...],
) -> float | None:
    """The ``q`` (0-1) quantile of the observations between two cumulative bucket snapshots,
    interpolated linearly inside the bucket as Prometheus' ``histogram_quantile`` does; None
    with no observations. A quantile in the +Inf bucket returns the last finite bound."""
    prev = dict(before or ())
    deltas = [(b, c - prev.get(b, 0.0)) for b, c in after]
    if not deltas or deltas[-1][1] <= 0:
        return None
    total = deltas[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in deltas:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


def rate(before: float | None, after: float | None, seconds: float) -> float | None:
    """Per-second increase of a counter (None when either side is missing or it was reset)."""
    if before is None or after is None or seconds <= 0 or after < before:
        return None
    return (after - before) / seconds
