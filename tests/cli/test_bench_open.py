"""`llmops bench` open-loop modes through the CLI against the built-in mock server (a real
asyncio HTTP server in a child process, with fixed timing and scripted misbehaviour): rates,
windows, sweeps, repeats, SLO search stop reasons, a server that lies about usage, the NVML
fake, plots, calibration; and against the real bundled backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.client.mock import MockProcess


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["bench", *args])


def bench_json(*args: str) -> dict[str, Any]:
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


@pytest.fixture
def mocks() -> Iterator[list[MockProcess]]:
    made: list[MockProcess] = []
    yield made
    for m in made:
        m.close()


def mock(mocks: list[MockProcess], **timing: float) -> str:
    m = MockProcess(**timing)
    mocks.append(m)
    return m.url


def test_rates_report_every_figure(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=5, itl_ms=2, tokens=4)
    doc = bench_json(
        url, "--rate", "10,20", "--duration", "1", "--arrival", "poisson", "--seed", "5"
    )
    assert doc["settings"]["rates"] == [10, 20] and doc["settings"]["arrival"] == "poisson"
    levels = doc["endpoints"][0]["levels"]
    assert [(lv["mode"], lv["rate_rps"], lv["arrival"]) for lv in levels] == [
        ("rate", 10, "poisson"),
        ("rate", 20, "poisson"),
    ]
    assert levels[0]["seed"] != levels[1]["seed"]  # a seed per point
    for lv in levels:
        assert lv["failed"] == 0 and lv["requests"] > 0
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "latency_ms", "schedule_lag_ms"):
            assert set(lv[key]) >= {"p50", "p90", "p95", "p99", "p999"}, key
        assert lv["ttft_ms"]["p50"] >= 5  # the mock's TTFT is a floor
        assert lv["tpot_ms"]["p50"] >= 2
        assert lv["usage"]["mismatched"] == 0 and lv["usage"]["server_tokens"] == 4 * lv["ok"]
        assert lv["server"]["server"]["engine"] == "llmops"  # the mock's /metrics
        assert lv["server"]["server"]["generated_tokens"] >= 4 * lv["ok"]


def test_windows_leave_warmup_and_cooldown_out(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=2)
    doc = bench_json(
        url, "--rate", "20", "--duration", "2", "--warmup", "0.5s", "--cooldown", "0.5"
    )
    (lv,) = doc["endpoints"][0]["levels"]
    assert (lv["requests"], lv["excluded"], lv["duration_s"]) == (20, 20, pytest.approx(1.0))
    assert lv["request_throughput_rps"] == pytest.approx(20.0)


def test_sweep_runs_baseline_ceiling_and_rates_between(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=5, itl_ms=2, tokens=3)
    doc = bench_json(
        url, "--sweep", "2", "--duration", "1", "--max-concurrency", "8", "--no-monitor"
    )
    levels = doc["endpoints"][0]["levels"]
    assert [lv["label"] for lv in levels] == ["sync", "throughput", "sweep 1", "sweep 2"]
    assert (levels[0]["concurrency"], levels[1]["concurrency"]) == (1, 8)
    lo, hi = levels[0]["request_throughput_rps"], levels[1]["request_throughput_rps"]
    assert hi > lo
    assert levels[2]["rate_rps"] == pytest.approx(lo + (hi - lo) / 3)
    assert levels[3]["rate_rps"] == pytest.approx(lo + 2 * (hi - lo) / 3)


def test_repeat_gives_confidence_intervals(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=3, itl_ms=1, tokens=2)
    doc = bench_json(
        url, "--rate", "20", "--duration", "0.5", "--repeat", "3", "--slo", "ttft_p99=5s"
    )
    (lv,) = doc["endpoints"][0]["levels"]
    assert lv["repeats"] == 3 and lv["requests"] == 30
    ci = lv["ci95"]
    assert ci["request_throughput_rps"]["n"] == 3
    assert ci["request_throughput_rps"]["mean"] == pytest.approx(20.0)
    assert ci["ttft_p99_ms"]["ci95"] >= 0 and "goodput_rps" in ci
    assert lv["slo"]["met"] and lv["slo"]["attainment"] == 1.0


def test_a_server_that_lies_about_usage_is_caught(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=4, usage_factor=3)
    r = run(url, "--rate", "10", "--duration", "0.5", "--no-monitor")
    assert r.exit_code == 0, r.output
    assert "usage discrepancy: 5 of 5 responses" in r.stdout
    assert "server said 12, counted 4" in r.stdout
    doc = bench_json(url, "--rate", "10", "--duration", "0.5", "--no-monitor")
    usage = doc["endpoints"][0]["levels"][0]["usage"]
    assert (usage["mismatched"], usage["server_tokens"], usage["counted_tokens"]) == (5, 60, 20)


@pytest.mark.parametrize(
    ("timing", "slo", "reason"),
    [
        # TTFT grows 25 ms per request in flight: the SLO breaks before anything else does
        (
            {"ttft_ms": 5, "itl_ms": 20, "tokens": 5, "ttft_per_active_ms": 25},
            "ttft_p99=60ms",
            "slo_broken",
        ),
        # one request at a time (20 ms each), at most one waiting, the rest refused with 503
        (
            {"ttft_ms": 5, "itl_ms": 5, "tokens": 4, "capacity": 1, "max_queue": 1},
            "ttft_p99=10s",
            "error_rate",
        ),
        # one at a time, unbounded queue: past 50 req/s requests in flight grow without end
        ({"ttft_ms": 5, "itl_ms": 5, "tokens": 4, "capacity": 1}, "itl_p99=10s", "saturated"),
    ],
)
def test_search_stops_for_the_right_reason(
    mocks: list[MockProcess], timing: dict[str, float], slo: str, reason: str
) -> None:
    url = mock(mocks, **timing)
    doc = bench_json(
        url, "--search", "--slo", slo, "--rate", "4", "--duration", "1.5", "--max-rate", "256",
        "--search-steps", "1", "--no-monitor",
    )  # fmt: skip
    ep = doc["endpoints"][0]
    assert ep["search"]["reason"] == reason, ep["search"]
    best = ep["search"]["best_rate_rps"]
    assert best is not None and 4 <= best < 256
    rates = [lv["rate_rps"] for lv in ep["levels"]]
    assert rates[:3] == [4, 8, 16]  # doubling from --rate
    assert all(lv["label"].startswith("search ") for lv in ep["levels"])


def test_search_table_says_why_it_stopped(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=2)
    r = run(
        url,
        "--search",
        "--slo",
        "ttft_p99=5s",
        "--rate",
        "5",
        "--max-rate",
        "10",
        "--duration",
        "0.6",
    )
    assert r.exit_code == 0, r.output
    assert "search: highest rate meeting the SLO 10 req/s; stopped (max_rate)" in r.stdout
    assert "SLO" in r.stdout and "goodput/s" in r.stdout and "lag ms p99" in r.stdout


def test_gpus_through_the_nvml_fake(
    mocks: list[MockProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops.cli import deps
    from tests.support.fakes import fake_nvml

    fake = fake_nvml("h100x8_nvlink")
    monkeypatch.setattr(deps, "nvml_module", lambda: fake)
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=4)
    doc = bench_json(url, "--rate", "10", "--duration", "1")
    gpu = doc["endpoints"][0]["levels"][0]["gpu"]
    assert [g["index"] for g in gpu["gpus"]] == list(range(8))  # every GPU, not only GPU 0
    total = sum(g["power_w_mean"] for g in gpu["gpus"])
    assert gpu["power_w_mean"] == pytest.approx(total)
    lv = doc["endpoints"][0]["levels"][0]
    assert gpu["tokens_per_joule"] == pytest.approx(lv["output_throughput_tok_s"] / total)


def test_plot_compare_and_saved_runs(mocks: list[MockProcess], tmp_path: Path) -> None:
    a = mock(mocks, ttft_ms=2, itl_ms=1, tokens=3)
    b = mock(mocks, ttft_ms=30, itl_ms=3, tokens=3)
    plot = tmp_path / "cmp.html"
    saved = tmp_path / "run.json"
    r = run(
        a,
        "--compare",
        b,
        "--rate",
        "5,10",
        "--duration",
        "0.6",
        "--plot",
        str(plot),
        "--out",
        str(saved),
    )
    assert r.exit_code == 0, r.output
    page = plot.read_text()
    assert page.count("<svg") >= 4 and a in page and b in page
    assert "TTFT p99 (ms)" in page and "requests running / waiting (server)" in page
    assert page.count("<polyline") >= 2 * 5  # two endpoints on each latency panel
    # several saved runs in one plot
    second = tmp_path / "again.json"
    assert run(a, "--rate", "5", "--duration", "0.5", "--out", str(second)).exit_code == 0
    out = tmp_path / "both.html"
    r2 = CliRunner().invoke(
        app, ["bench-plot", str(saved), str(second), "--out", str(out), "--json"]
    )
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["runs"] == [
        f"run.json: {a}",
        f"run.json: {b}",
        f"again.json ({a})",
    ]
    assert "again.json" in out.read_text()
    svg = tmp_path / "both.svg"
    r3 = CliRunner().invoke(app, ["bench-plot", str(saved), str(second), "--out", str(svg)])
    assert r3.exit_code == 0, r3.output
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg.read_text())  # one well-formed image holding every panel
    assert len(root.findall("{http://www.w3.org/2000/svg}svg")) >= 5


def test_plot_errors(tmp_path: Path) -> None:
    r = run("http://127.0.0.1:9", "--plot", str(tmp_path / "x.jpg"))
    assert r.exit_code == 2 and "--plot" in r.stderr and "is not .html, .svg or .png" in r.stderr
    r = run("http://127.0.0.1:9", "--plot", str(tmp_path / "x.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.exit_code == 2 and "pip install 'llmops[plot]'" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    r = CliRunner().invoke(app, ["bench-plot", str(bad), "--out", str(tmp_path / "o.html")])
    assert r.exit_code == 2 and "is not `llmops bench --json` output" in r.stderr


def test_calibrate(mocks: list[MockProcess]) -> None:
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=2)
    doc = bench_json(url, "--calibrate", "--rate", "20", "--duration", "0.5", "--no-monitor")
    cal = doc["calibration"]
    (point,) = cal["points"]
    assert (cal["mock_ttft_ms"], point["rate_rps"], point["errors"]) == (20.0, 20, 0)
    assert point["ttft_overhead_ms_p50"] >= 0 and point["lag_ms_p99"] >= point["lag_ms_p50"] >= 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "--rate '0' is not a list of positive request rates"),
        (["--rate", "x"], "--rate 'x' is not a list of positive request rates"),
        (["--arrival", "burst"], "--arrival 'burst' is not constant or poisson"),
        (["--warmup", "2m"], "--warmup '2m' is neither a request count nor seconds"),
        (["--warmup", "2s"], "--warmup Ts and --cooldown need timed points"),
        (["--sweep", "3"], "--sweep needs --duration"),
        (["--search"], "--search needs --slo"),
        (["--slo", "ttft=1ms"], "--slo term 'ttft=1ms' is not METRIC_STAT=VALUE"),
        (["--rate", "1", "--duration", "2", "--warmup", "1s", "--cooldown", "1"], "leave nothing"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    r = run("http://127.0.0.1:9", *args)
    assert r.exit_code == 2 and message in r.stderr, r.output


@pytest.mark.slow
def test_real_backend_open_loop_with_metrics() -> None:
    from tests.client.servers import KEY, real_backend

    url = real_backend().url
    doc = bench_json(
        url, "--rate", "0.5", "--duration", "4", "--max-tokens", "4", "--api-key", KEY,
        "--slo", "ttft_p99=60s", "--fixed-output",
    )  # fmt: skip
    (lv,) = doc["endpoints"][0]["levels"]
    assert lv["ok"] == lv["requests"] == 2 and lv["token_source"] == "usage"
    assert lv["usage"]["mismatched"] == 0
    assert lv["schedule_lag_ms"]["count"] == 2
    assert lv["slo"]["met"]
    server = lv["server"]["server"]
    assert server["engine"] == "llmops" and server["generated_tokens"] >= lv["output_tokens"]
    assert server["ttft_p99_ms"] is not None  # from the backend's TTFT histogram


def test_png_plot_of_a_saved_run(mocks: list[MockProcess], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
    url = mock(mocks, ttft_ms=2, itl_ms=1, tokens=3)
    saved = tmp_path / "run.json"
    assert run(url, "--rate", "5,10", "--duration", "0.6", "--out", str(saved)).exit_code == 0
    png = tmp_path / "run.png"
    r = CliRunner().invoke(app, ["bench-plot", str(saved), "--out", str(png)])
    assert r.exit_code == 0, r.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
