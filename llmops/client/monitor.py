"""The server and GPU side of a bench point: ``/metrics`` scraped and every GPU sampled through
NVML once per interval while the point runs, reduced to a summary and a time series.

Energy: the GPUs' summed power draw, averaged over the samples, times the point's measured
window; tokens per joule is the point's output tokens/s divided by that mean power. Power is
what NVML reports (``nvmlDeviceGetPowerUsage``: the board's draw), for every GPU of the host,
not only the ones serving: on a shared host that overstates the cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any

from llmops.client import metrics_scrape as ms


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str | None
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    power_w: float | None
    temperature_c: float | None


def gpu_samples(nvml: Any | None) -> tuple[list[GpuSample], str | None]:
    """Every GPU's current figures (NVML through ``llmops.hw.nvml``), or why there are none."""
    from llmops.hw.nvml import probe_nvidia

    facts = probe_nvidia(nvml)
    if facts.error:
        return [], facts.error
    return [
        GpuSample(
            g.index,
            g.name,
            g.utilization_gpu_pct,
            g.memory_used_mib,
            g.memory_total_mib,
            g.power_draw_w,
            g.temperature_c,
        )
        for g in facts.gpus
        if g.ok
    ], None


@dataclass(frozen=True)
class GpuSummary:
    index: int
    name: str | None
    utilization_pct_mean: float | None
    memory_used_mib_max: float | None
    power_w_mean: float | None
    temperature_c_max: float | None


@dataclass(frozen=True)
class ServerSide:
    """What the engine's own metrics said during the point."""

    engine: str | None
    waiting_max: float | None
    running_max: float | None
    kv_usage_pct_max: float | None
    generated_tokens: float | None  # counter increase over the point
    requests: float | None
    ttft_p50_ms: float | None  # from the engine's TTFT histogram, observations in the point
    ttft_p99_ms: float | None


@dataclass(frozen=True)
class GpuSide:
    gpus: tuple[GpuSummary, ...]
    power_w_mean: float | None  # all GPUs together
    energy_j: float | None  # over the measured window
    tokens_per_joule: float | None


@dataclass(frozen=True)
class Monitored:
    first: ms.ServerSnapshot | None
    last: ms.ServerSnapshot | None
    samples: list[tuple[float, ms.ServerSnapshot | None, list[GpuSample]]]
    metrics_error: str | None
    gpu_error: str | None


class Sampler:
    """Scrape ``URL/metrics`` and NVML every ``interval_s`` between :meth:`start` and :meth:`stop`."""

    def __init__(
        self, url: str, api_key: str | None, interval_s: float = 1.0, nvml: Any | None = None
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.interval_s = interval_s
        self.nvml = nvml
        self.samples: list[tuple[float, ms.ServerSnapshot | None, list[GpuSample]]] = []
        self.metrics_error: str | None = None
        self.gpu_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._engine: str | None = None
        self._t0 = 0.0

    async def start(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=5.0)
        self._t0 = time.perf_counter()
        await self.sample()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.sample()

    async def scrape(self) -> ms.ServerSnapshot | None:
        if self.metrics_error is not None and not self.samples:
            return None
        try:
            r = await self._client.get("/metrics")
        except Exception as exc:  # httpx errors: note once, keep the point running
            self.metrics_error = f"GET {self.url}/metrics failed: {type(exc).__name__}"
            return None
        if r.status_code != 200:
            self.metrics_error = f"GET {self.url}/metrics answered HTTP {r.status_code}"
            return None
        samples = ms.parse(r.text)
        snap = ms.snapshot(samples, self._engine)
        self._engine = snap.engine
        if snap.engine is None:
            self.metrics_error = f"{self.url}/metrics has none of the metric names llmops knows"
        return snap

    async def sample(self) -> None:
        t = time.perf_counter() - self._t0
        snap = await self.scrape()
        gpus: list[GpuSample] = []
        if self.gpu_error is None:
            gpus, self.gpu_error = await asyncio.to_thread(gpu_samples, self.nvml)
        self.samples.append((t, snap, gpus))

    async def stop(self) -> Monitored:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sample()
        await self._client.aclose()
        snaps = [s for _, s, _ in self.samples if s is not None and s.engine is not None]
        return Monitored(
            snaps[0] if snaps else None,
            snaps[-1] if snaps else None,
            self.samples,
            self.metrics_error,
            self.gpu_error,
        )


def _max(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return max(v) if v else None


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def summarize_server(m: Monitored) -> ServerSide | None:
    if m.first is None or m.last is None:
        return None
    snaps = [s for _, s, _ in m.samples if s is not None]
    first, last = m.first, m.last

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b < a else b - a

    p50 = p99 = None
    if last.ttft_buckets:
        q50 = ms.histogram_quantile(0.5, first.ttft_buckets, last.ttft_buckets)
        q99 = ms.histogram_quantile(0.99, first.ttft_buckets, last.ttft_buckets)
        p50 = None if q50 is None else q50 * 1e3
        p99 = None if q99 is None else q99 * 1e3
    return ServerSide(
        engine=last.engine,
        waiting_max=_max([s.waiting for s in snaps]),
        running_max=_max([s.running for s in snaps]),
        kv_usage_pct_max=_max([s.kv_usage_pct for s in snaps]),
        generated_tokens=delta(first.generated_tokens, last.generated_tokens),
        requests=delta(first.requests, last.requests),
        ttft_p50_ms=p50,
        ttft_p99_ms=p99,
    )


def summarize_gpus(m: Monitored, output_tok_s: float, window_s: float) -> GpuSide | None:
    by_index: dict[int, list[GpuSample]] = {}
    totals: list[float] = []
    for _, _, gpus in m.samples:
        for g in gpus:
            by_index.setdefault(g.index, []).append(g)
        powers = [g.power_w for g in gpus]
        if gpus and all(p is not None for p in powers):
            totals.append(sum(p for p in powers if p is not None))
    if not by_index:
        return None
    summaries = tuple(
        GpuSummary(
            i,
            gs[0].name,
            _mean([g.utilization_pct for g in gs]),
            _max([g.memory_used_mib for g in gs]),
            _mean([g.power_w for g in gs]),
            _max([g.temperature_c for g in gs]),
        )
        for i, gs in sorted(by_index.items())
    )
    power = sum(totals) / len(totals) if totals else None
    return GpuSide(
        gpus=summaries,
        power_w_mean=power,
        energy_j=None if power is None else power * window_s,
        tokens_per_joule=None if not power else output_tok_s / power,
    )


def series(m: Monitored) -> list[dict[str, Any]]:
    """One row per sample: time since the point began, queue, running, KV %, server tok/s,
    mean GPU utilisation and summed power."""
    rows: list[dict[str, Any]] = []
    prev: tuple[float, ms.ServerSnapshot | None] | None = None
    for t, snap, gpus in m.samples:
        tok_s = None
        if prev is not None and snap is not None and prev[1] is not None:
            tok_s = ms.rate(prev[1].generated_tokens, snap.generated_tokens, t - prev[0])
        powers = [g.power_w for g in gpus]
        rows.append(
            {
                "t_s": round(t, 3),
                "waiting": None if snap is None else snap.waiting,
                "running": None if snap is None else snap.running,
                "kv_usage_pct": None if snap is None else snap.kv_usage_pct,
                "server_tok_s": tok_s,
                "gpu_util_pct": _mean([g.utilization_pct for g in gpus]),
                "gpu_power_w": sum(p for p in powers if p is not None) if gpus else None,
            }
        )
        prev = (t, snap)
    return rows


@dataclass(frozen=True)
class PointMonitor:
    """What a bench point carries in its ``server``/``gpu`` fields."""

    server: ServerSide | None
    series: list[dict[str, Any]]
    metrics_error: str | None


def attach(result: Any, m: Monitored) -> Any:
    """The LevelResult with its server and GPU sides filled in."""
    return replace(
        result,
        server=PointMonitor(summarize_server(m), series(m), m.metrics_error),
        gpu=summarize_gpus(m, result.output_throughput_tok_s, result.duration_s),
    )
