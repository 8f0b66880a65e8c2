"""Open-loop schedules, SLO parsing and the search's stop rules, Prometheus parsing: pure parts,
and the schedule run for real against the built-in mock server."""

from __future__ import annotations

import asyncio
import gc
import math

import pytest

from llmops.client import load
from llmops.client import metrics_scrape as ms
from llmops.client.load import arrival_offsets, gc_paused, run_open_loop
from llmops.client.slo import (
    CLIENT_BEHIND,
    ERROR_RATE,
    MAX_RATE,
    SATURATED,
    SLO_BROKEN,
    Probe,
    judge,
    next_rate,
    parse_slo,
)
from llmops.client.stats import distribution, interval, ks_exponential
from llmops.errors import UsageError


def _ks_critical(n: int) -> float:
    return 1.36 / math.sqrt(n)  # 5 % level, large-sample Kolmogorov-Smirnov


def test_poisson_gaps_pass_ks_against_the_exponential_and_constant_ones_fail() -> None:
    rate = 40.0
    offsets = arrival_offsets(rate, 60.0, "poisson", seed=7)
    gaps = [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]
    assert 2000 < len(gaps) < 2800  # 2400 expected
    assert ks_exponential(gaps, rate) < _ks_critical(len(gaps))
    # the test has teeth: evenly spaced arrivals and a wrong rate are rejected
    steady = arrival_offsets(rate, 60.0, "constant", seed=7)
    steady_gaps = [b - a for a, b in zip([0.0, *steady], steady, strict=False)]
    assert ks_exponential(steady_gaps, rate) > 5 * _ks_critical(len(steady_gaps))
    assert ks_exponential(gaps, rate * 1.5) > _ks_critical(len(gaps))


def test_seeds_fix_poisson_schedules_and_constant_is_even() -> None:
    assert arrival_offsets(5, 10, "poisson", 1) == arrival_offsets(5, 10, "poisson", 1)
    assert arrival_offsets(5, 10, "poisson", 1) != arrival_offsets(5, 10, "poisson", 2)
    assert arrival_offsets(4, 1, "constant", 0) == [0.0, 0.25, 0.5, 0.75]
    assert arrival_offsets(0.1, 1, "constant", 0) == [0.0]  # at least one request


def test_open_loop_sends_on_schedule_against_the_mock() -> None:
    from llmops.client.mock import MockProcess
    from llmops.client.prompts import request_bodies
    from llmops.client.protocol import OPENAI, Endpoint
    from llmops.client.summary import summarize
    from llmops.client.transport import RawTransport

    with MockProcess(ttft_ms=5, itl_ms=1, tokens=3) as mock:
        endpoint = Endpoint(mock.url, OPENAI, "mock", None)
        bodies = request_bodies(
            endpoint, [[{"role": "user", "content": "x"}]], 3, include_usage=True
        )
        offsets = arrival_offsets(50, 2.0, "poisson", seed=3)

        collector_on_at_send: list[bool] = []
        real_timed_request = load.timed_request

        async def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
            collector_on_at_send.append(gc.isenabled())
            return await real_timed_request(*args, **kwargs)

        async def go():  # type: ignore[no-untyped-def]
            t = RawTransport(mock.url, None)
            try:
                return await run_open_loop(t, endpoint, bodies, offsets)
            finally:
                await t.aclose()

        load.timed_request = spy  # type: ignore[assignment]
        try:
            records, t0, wall = asyncio.run(go())
        finally:
            load.timed_request = real_timed_request  # type: ignore[assignment]
    assert len(records) == len(offsets) and all(r.ok for r in records)
    # no collector pauses while sending; the collector is back afterwards
    assert collector_on_at_send == [False] * len(offsets)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # intended times are exactly the schedule; actual sends never precede them
    assert [r.intended_s - t0 for r in records] == pytest.approx(offsets, abs=1e-9)
    assert all(r.start_s >= r.intended_s for r in records)
    lv = summarize(records, concurrency=None, duration_s=wall)
    assert lv.schedule_lag_ms is not None and lv.schedule_lag_ms.count == len(offsets)
    assert lv.schedule_lag_ms.p50 < 50  # generous: this machine is shared
    assert lv.ttft_ms is not None and lv.ttft_ms.p50 >= 5.0  # the mock's fixed TTFT


def test_gc_paused_restores_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a failing run")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_slo_parsing() -> None:
    (a, b) = parse_slo("ttft_p99=0.5s, itl_p999=50ms")
    assert (a.metric, a.stat, a.limit_ms, a.name) == ("ttft", "p99", 500.0, "ttft_p99")
    assert (b.metric, b.stat, b.limit_ms) == ("itl", "p999", 50.0)
    assert parse_slo("tpot_mean=800us")[0].limit_ms == pytest.approx(0.8)
    for bad in (
        "ttft=5ms",
        "ttft_p99=5",
        "speed_p99=5ms",
        "ttft_p99=0ms",
        "ttft_p99=1ms,ttft_p99=2ms",
    ):
        with pytest.raises(UsageError):
            parse_slo(bad)


def test_judge_and_goodput() -> None:
    targets = parse_slo("ttft_p99=100ms,e2e_p50=1s")
    v = judge(
        targets, {"ttft": {"p99": 150.0}, "e2e": {"p50": 900.0}}, good=30, sent=40, window_s=10
    )
    assert not v.met and v.broken == ("ttft_p99 150 ms > 100 ms",)
    assert (v.attainment, v.goodput_rps) == (0.75, 3.0)
    assert judge(
        targets, {"ttft": {"p99": 99.0}, "e2e": {"p50": 1.0}}, good=1, sent=1, window_s=1
    ).met
    assert not judge(targets, {"ttft": None, "e2e": None}, good=0, sent=3, window_s=1).met


def _p(
    rate: float, *, met: bool = True, err: float = 0.0, grow: bool = False, lag: float = 1.0
) -> Probe:
    return Probe(
        rate, met, () if met else ("ttft_p99 9 ms > 1 ms",), err, 2.0, 9.0 if grow else 2.0, lag
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_p(8, met=False), SLO_BROKEN),
        (_p(8, err=0.2), ERROR_RATE),
        (_p(8, grow=True), SATURATED),
        (_p(8, lag=500.0), CLIENT_BEHIND),
    ],
)
def test_search_doubles_then_bisects_and_names_the_reason(bad: Probe, reason: str) -> None:
    probes = [_p(1), _p(2), _p(4)]
    assert next_rate([], start_rps=1, max_rps=100, steps=2) == (1, None, None)
    assert next_rate(probes, start_rps=1, max_rps=100, steps=2) == (8, None, None)
    probes.append(bad)
    assert next_rate(probes, start_rps=1, max_rps=100, steps=2)[0] == 6  # bisect 4..8
    probes.append(_p(6))
    assert next_rate(probes, start_rps=1, max_rps=100, steps=2)[0] == 7
    probes.append(_p(7))
    rate, why, detail = next_rate(probes, start_rps=1, max_rps=100, steps=2)
    assert (rate, why) == (None, reason) and "at 8 req/s" in (detail or "")


def test_search_stops_at_max_rate() -> None:
    probes = [_p(10), _p(20)]
    assert next_rate(probes, start_rps=10, max_rps=30, steps=3)[0] == 30
    rate, why, _ = next_rate([*probes, _p(30)], start_rps=10, max_rps=30, steps=3)
    assert (rate, why) == (None, MAX_RATE)


def test_distribution_and_interval() -> None:
    d = distribution([float(i) for i in range(1, 1001)])
    assert d is not None and (d.p50, d.p99, d.p999, d.max) == pytest.approx(
        (500.5, 990.01, 999.001, 1000)
    )
    iv = interval([10.0, 12.0, 11.0])
    assert (
        iv is not None and iv.mean == 11.0 and iv.ci95 == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    )
    single = interval([5.0])
    assert single is not None and (single.n, single.ci95) == (1, 0.0)


VLLM_TEXT = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 5.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
vllm:generation_tokens_total{engine="0",model_name="m"} 1200.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 10.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 50.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="m"} 90.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 100.0
"""


def test_vllm_metrics_snapshot_and_histogram_quantile() -> None:
    snap = ms.snapshot(ms.parse(VLLM_TEXT))
    assert snap.engine == "vllm"
    assert (snap.running, snap.waiting, snap.generated_tokens, snap.requests) == (3, 5, 1200, 12)
    assert snap.kv_usage_pct == pytest.approx(42.0)
    assert snap.ttft_buckets is not None
    assert ms.histogram_quantile(0.5, None, snap.ttft_buckets) == pytest.approx(0.1)
    assert ms.histogram_quantile(0.7, None, snap.ttft_buckets) == pytest.approx(0.3)
    assert ms.histogram_quantile(0.99, None, snap.ttft_buckets) == pytest.approx(0.5)  # +Inf bucket
    earlier = ((0.1, 50.0), (0.5, 50.0), (math.inf, 50.0))
    assert ms.histogram_quantile(0.5, earlier, snap.ttft_buckets) == pytest.approx(0.35)
    assert ms.rate(100, 160, 2.0) == 30.0 and ms.rate(100, 50, 2.0) is None


def test_other_engines_are_detected() -> None:
    tgi = ms.snapshot(
        ms.parse(
            "tgi_queue_size 2\ntgi_batch_current_size 4\ntgi_request_generated_tokens_sum 99\n"
        )
    )
    assert (tgi.engine, tgi.waiting, tgi.running, tgi.generated_tokens, tgi.kv_usage_pct) == (
        "tgi",
        2,
        4,
        99,
        None,
    )
    llama = ms.snapshot(
        ms.parse(
            "llamacpp:requests_processing 1\nllamacpp:requests_deferred 0\nllamacpp:tokens_predicted_total 7\n"
        )
    )
    assert (llama.engine, llama.running, llama.generated_tokens) == ("llamacpp", 1, 7)
    assert ms.snapshot(ms.parse("something_else 1\n")).engine is None
