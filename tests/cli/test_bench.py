"""`llmops bench` through the CLI: JSON and table output, --compare, --out, errors counted by kind
while the rest is still measured, and a run against the real SmolLM2 backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from tests.client.servers import (
    KEY,
    ScriptedServer,
    free_port,
    healthy_openai,
    openai_chunk,
    openai_server,
    openai_stream,
    sse,
    stream_route,
)


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["bench", *args])


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def test_json_report(servers: list[ScriptedServer]) -> None:
    s = healthy_openai(key=KEY)
    servers.append(s)
    r = run(s.url, "-c", "1,3", "-n", "6", "--max-tokens", "9", "--json", "--api-key", KEY)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1
    assert doc["settings"]["concurrency"] == [1, 3] and doc["settings"]["max_tokens"] == 9
    (ep,) = doc["endpoints"]
    assert (ep["url"], ep["protocol"], ep["model"], ep["error"]) == (
        s.url,
        "openai",
        "test-model",
        None,
    )
    for lv, c in zip(ep["levels"], [1, 3], strict=True):
        assert (lv["concurrency"], lv["requests"], lv["ok"], lv["failed"], lv["errors"]) == (
            c,
            6,
            6,
            0,
            {},
        )
        assert (lv["output_tokens"], lv["prompt_tokens"], lv["token_source"]) == (24, 30, "usage")
        assert set(lv["ttft_ms"]) == {
            "count",
            "mean",
            "p50",
            "p90",
            "p95",
            "p99",
            "p999",
            "min",
            "max",
        }
        assert lv["itl_ms"]["count"] == 6 * 3  # 4 tokens per request: 3 gaps
        assert lv["ttft_ms"]["p50"] <= lv["latency_ms"]["p50"]
    posts = [q for q in s.requests if q[0] == "POST"]
    assert len(posts) == 1 + 12  # warm-up + 2 levels
    assert json.loads(posts[-1][3])["max_tokens"] == 9
    assert KEY not in r.output


def test_table_and_token_fallback(servers: list[ScriptedServer]) -> None:
    s = openai_server(stream_route(lambda n, b: openai_stream(["a", "b", "c"], usage=False)))
    servers.append(s)
    r = run(s.url, "-c", "2", "-n", "4", "--transport", "httpx")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert f"{s.url} (openai API, model test-model, tokens from events)" in out
    for col in ("point", "ok/n", "req/s", "out tok/s", "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99"):
        assert col in out
    row = next(line for line in out.splitlines() if line.strip().startswith("c=2 "))
    assert row.split()[:2] == ["c=2", "4/4"]


def test_compare_side_by_side(servers: list[ScriptedServer], tmp_path: Path) -> None:
    a, b = healthy_openai(), healthy_openai(["x"])
    servers += [a, b]
    out = tmp_path / "bench.json"
    r = run(a.url, "--compare", b.url, "-c", "1,2", "-n", "2", "--out", str(out))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"A: {a.url}") and lines[1].startswith(f"B: {b.url}")
    rows = [line.split()[:3] for line in lines if line.strip()[:2] in ("A ", "B ")]
    assert rows == [
        ["A", "c=1", "2/2"],
        ["B", "c=1", "2/2"],
        ["A", "c=2", "2/2"],
        ["B", "c=2", "2/2"],
    ]
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and [e["url"] for e in doc["endpoints"]] == [a.url, b.url]
    assert [lv["output_tokens"] for lv in doc["endpoints"][1]["levels"]] == [2, 2]


def test_errors_are_counted_by_kind_and_the_rest_measured(servers: list[ScriptedServer]) -> None:
    def events(n: int, body: bytes) -> list[bytes] | None:
        if n % 4 == 2:
            return [sse(openai_chunk("x")), sse({"error": {"message": "engine crashed"}})]
        if n % 4 == 3:
            return [b"data: {broken\n\n"]
        return openai_stream(["a", "b"])

    s = openai_server(stream_route(events))
    servers.append(s)
    r = run(s.url, "-c", "2", "-n", "8", "--warmup", "0", "--json")
    assert r.exit_code == 0, r.output
    (lv,) = json.loads(r.stdout)["endpoints"][0]["levels"]
    assert (lv["ok"], lv["failed"]) == (4, 4)
    assert lv["errors"] == {"malformed_sse": 2, "stream_error": 2}
    assert "engine crashed" in lv["error_examples"]["stream_error"]
    assert lv["output_tokens"] == 8 and lv["ttft_ms"]["count"] == 4


def test_errors_in_the_table(servers: list[ScriptedServer]) -> None:
    s = openai_server(stream_route(lambda n, b: None if n % 2 else openai_stream(["a"])))
    servers.append(s)
    r = run(s.url, "-c", "1", "-n", "4", "--warmup", "0")
    assert r.exit_code == 0, r.output
    assert "stream_error 2" in r.stdout
    assert f"stream_error: {s.url} closed the connection" in r.stdout


def test_all_failing_endpoint_exits_1_but_reports(servers: list[ScriptedServer]) -> None:
    s = openai_server(lambda h, b: h.reply(503, {"error": "overloaded"}))
    servers.append(s)
    r = run(s.url, "-c", "1,2", "-n", "3", "--json")
    assert r.exit_code == 1
    levels = json.loads(r.stdout)["endpoints"][0]["levels"]
    assert [lv["errors"] for lv in levels] == [{"http_5xx": 3}, {"http_5xx": 3}]
    assert "every request failed" in r.stderr


def test_server_down_and_compare_still_reports_the_other(servers: list[ScriptedServer]) -> None:
    a = healthy_openai()
    servers.append(a)
    down = f"http://127.0.0.1:{free_port()}"
    r = run(a.url, "--compare", down, "-c", "1", "-n", "2", "--json")
    assert r.exit_code == 1
    eps = json.loads(r.stdout)["endpoints"]
    assert eps[0]["levels"][0]["ok"] == 2
    assert eps[1]["levels"] == [] and eps[1]["error"].startswith(f"cannot connect to {down}")
    assert f"error: {down} could not be measured: cannot connect" in r.stderr


def test_401_is_reported_without_the_key(servers: list[ScriptedServer]) -> None:
    s = healthy_openai(key=KEY)
    servers.append(s)
    r = run(s.url, "-n", "1", "-c", "1", "--api-key", "sk-bad-777")
    assert r.exit_code == 1
    assert "HTTP 401" in r.output and "sk-bad-777" not in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "1,x"], "--concurrency '1,x' is not a list of positive integers"),
        (["-c", "0"], "--concurrency '0' is not a list of positive integers"),
        (["--transport", "curl"], "--transport 'curl' is not raw or httpx"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    r = run("http://127.0.0.1:9", *args)
    assert r.exit_code == 2 and message in r.stderr


@pytest.mark.slow
def test_real_backend(tmp_path: Path) -> None:
    from tests.client.servers import real_backend

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hello.\nName a colour.\n")
    url = real_backend().url
    r = run(
        url,
        "-c",
        "1,2",
        "-n",
        "2",
        "--max-tokens",
        "4",
        "--prompts",
        str(prompts),
        "--api-key",
        KEY,
        "--json",
    )
    assert r.exit_code == 0, r.output
    (ep,) = json.loads(r.stdout)["endpoints"]
    assert ep["model"] == "SmolLM2-135M-Instruct"
    for lv in ep["levels"]:
        assert (lv["ok"], lv["token_source"]) == (2, "usage")
        assert 2 <= lv["output_tokens"] <= 8
