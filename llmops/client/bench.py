"""``llmops bench``'s load generator: detect the endpoint, warm it up, run the load points
(closed-loop concurrency levels, open-loop rates, a sweep or an SLO search), and summarize.

The pieces: ``prompts`` (what is sent), ``records`` (one timed request), ``load`` (open loop
and timed closed loop), ``summary`` (records → a point's figures), ``monitor`` (the server's
metrics and NVML while a point runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from llmops.client.prompts import request_bodies
from llmops.client.protocol import OPENAI, Endpoint, Message
from llmops.client.records import RequestRecord, run_level, timed_request
from llmops.client.slo import SloTarget
from llmops.client.stats import Interval, interval
from llmops.client.stream import Transport
from llmops.client.summary import LevelResult, sent_at, summarize, token_counter
from llmops.errors import EndpointError


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
                    else [r for r in recs if window[0] <= sent_at(r) < window[1]]
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
    transport = make_transport(
        st.transport,
        url,
        api_key,
        connections=max((*st.concurrency, st.sweep_concurrency)),
        timeout_s=st.timeout_s,
    )
    notes: list[str] = []
    try:
        bodies, error = await _warm_up(transport, endpoint, prompts, st)
        if error is not None:
            return EndpointResult(url, endpoint.protocol, endpoint.model, st.transport, (), error)
        runner = _Runner(transport, endpoint, bodies, st, progress, label, api_key, nvml)
        order, stop = await _run_points(runner, notes)
    finally:
        await transport.aclose()
    records = [r for _, _, runs, _ in runner.raw for recs, _, _, _ in runs for r in recs]
    counter = None
    if any(r.ok and (r.server_tokens is None or st.tokenizer) for r in records):
        counter = token_counter(st.tokenizer, endpoint.model)
    levels = tuple(runner.summarize(i, counter) for i in order)
    notes += _notes(records, levels, st)
    return EndpointResult(
        url, endpoint.protocol, endpoint.model, st.transport, levels, None, stop, tuple(notes)
    )


async def _warm_up(
    transport: Transport, endpoint: Endpoint, prompts: list[list[Message]], st: BenchSettings
) -> tuple[list[bytes], str | None]:
    """Send ``st.warmup`` requests; returns the request bodies to use (without usage reporting
    for an older server that rejects ``stream_options``) and an error when the endpoint cannot
    be measured at all (cannot connect, refuses the key, or does not stream)."""
    include_usage = endpoint.protocol == OPENAI

    def bodies_for(usage: bool) -> list[bytes]:
        return request_bodies(
            endpoint, prompts, st.max_tokens, include_usage=usage, fixed_output=st.fixed_output
        )

    bodies = bodies_for(include_usage)
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
            return bodies, rec.error_message
    return bodies, None


async def _run_points(runner: _Runner, notes: list[str]) -> tuple[list[int], Stop | None]:
    """Run the settings' load points in order: a search, a sweep, the rates or the levels.
    Returns the points' indices in ``runner.raw`` and, for a search, why it stopped."""
    st = runner.settings
    order: list[int] = []
    if st.search:
        return order, await _search(runner, order)
    if st.sweep:
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
            return order, None
        for j in range(1, st.sweep + 1):
            rate = lo + (hi - lo) * j / (st.sweep + 1)
            order.append(await runner.run_point(_Point("rate", rate, f"sweep {j}")))
    elif st.rates:
        for rate in st.rates:
            order.append(await runner.run_point(_Point("rate", rate)))
    else:
        for c in st.concurrency:
            order.append(await runner.run_point(_Point("concurrency", c)))
    return order, None


def _notes(
    records: list[RequestRecord], levels: tuple[LevelResult, ...], st: BenchSettings
) -> list[str]:
    """What the reader must know about the figures: short outputs despite ``--fixed-output``,
    and the first point whose server-reported token counts disagree with the client's."""
    notes = []
    if st.fixed_output:
        short = sum(
            1
            for r in records
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
    return notes


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
