"""``llmops top``'s figures: each deployment's engine metrics between two scrapes, and each
GPU's current state. Pure reductions here; the CLI does the fetching and drawing.

Rates (requests/s, tokens/s) are counter increases between the two most recent scrapes over the
time between them. The p99 TTFT is from the engine's TTFT histogram over the observations since
``top`` started when there are any, else since the engine started (``ttft_window`` says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.client import metrics_scrape as ms


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    engine: str | None
    model: str | None
    port: int | None
    status: str
    health: str
    metrics: str | None  # the engine its /metrics looked like, or why there are none
    requests_per_s: float | None
    tokens_per_s: float | None
    waiting: float | None
    running: float | None
    kv_usage_pct: float | None
    ttft_p99_ms: float | None
    ttft_window: str | None  # "since top started" or "since the engine started"


def metrics_url(endpoint: str | None) -> str | None:
    """``http://HOST:PORT/v1`` (a deployment's endpoint) → ``http://HOST:PORT/metrics``."""
    if not endpoint:
        return None
    base = endpoint.rstrip("/")
    base = base.removesuffix("/v1")
    return base + "/metrics"


def deployment_row(
    status: Any,
    first: tuple[float, ms.ServerSnapshot] | None,
    prev: tuple[float, ms.ServerSnapshot] | None,
    last: tuple[float, ms.ServerSnapshot] | None,
    error: str | None,
) -> DeploymentRow:
    """One deployment's row from its ``ps`` status and its scrapes (time s, snapshot):
    the first of this ``top`` session, the one before the latest, and the latest."""
    req = tok = ttft = None
    window = None
    snap = last[1] if last is not None else None
    if prev is not None and last is not None:
        dt = last[0] - prev[0]
        req = ms.rate(prev[1].requests, last[1].requests, dt)
        tok = ms.rate(prev[1].generated_tokens, last[1].generated_tokens, dt)
    if snap is not None and snap.ttft_buckets:
        before = first[1].ttft_buckets if first is not None and first is not last else None
        q = ms.histogram_quantile(0.99, before, snap.ttft_buckets) if before else None
        window = "since top started"
        if q is None:
            q = ms.histogram_quantile(0.99, None, snap.ttft_buckets)
            window = "since the engine started"
        ttft = None if q is None else q * 1e3
        if ttft is None:
            window = None
    return DeploymentRow(
        name=status.name,
        engine=status.engine,
        model=status.model,
        port=status.port,
        status=status.status,
        health=status.health,
        metrics=error if snap is None else snap.engine,
        requests_per_s=req,
        tokens_per_s=tok,
        waiting=None if snap is None else snap.waiting,
        running=None if snap is None else snap.running,
        kv_usage_pct=None if snap is None else snap.kv_usage_pct,
        ttft_p99_ms=ttft,
        ttft_window=window,
    )
