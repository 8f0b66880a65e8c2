"""`llmops recommend`: ranked, fitting, CPU-only and multi-GPU."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmops.cli import app

runner = CliRunner()


def recs(*args: str) -> list[dict[str, object]]:
    r = runner.invoke(app, ["recommend", "--json", *args])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1
    return doc["recommendations"]  # type: ignore[no-any-return]


def test_two_gpus_ranked_by_quality_and_all_fit() -> None:
    rows = recs("--hw", "2x24GB", "--limit", "0")
    assert rows and rows[0]["mmlu"] is not None
    scores = [r["quality_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert any(r["gpus_used"] == 2 for r in rows)  # sharding considered
    assert all(r["total_bytes"] <= r["capacity_bytes"] for r in rows)
    assert len({r["model"] for r in rows}) == len(rows)


def test_cpu_only_uses_llamacpp_or_torch() -> None:
    rows = recs("--hw", "cpu:8GB", "--limit", "0")
    assert rows
    assert {r["engine"] for r in rows} <= {"llamacpp", "torch"}
    assert all(r["gpus_used"] == 0 for r in rows)
    assert "smollm2-135m" in {r["model"] for r in rows}


def test_task_code_and_speed() -> None:
    rows = recs("--hw", "1x24GB", "--task", "code", "--prefer", "speed")
    from llmops.catalog.recipes import load_catalog

    cat = load_catalog()
    assert all("code" in cat.get(str(r["model"])).tasks for r in rows)
    assert rows[0]["speed_score"] >= rows[-1]["speed_score"]


def test_table_and_bad_options() -> None:
    r = runner.invoke(app, ["recommend", "--hw", "1x80GB", "--limit", "3"])
    assert r.exit_code == 0 and "why" in r.stdout
    bad = runner.invoke(app, ["recommend", "--hw", "1x80GB", "--task", "poetry"])
    assert bad.exit_code == 2 and "unknown task" in bad.stderr


@pytest.mark.parametrize("hw", ["cpu:256MB"])
def test_nothing_fits_exits_3(hw: str) -> None:
    r = runner.invoke(app, ["recommend", "--hw", hw])
    assert r.exit_code == 3 and "no catalog model fits" in r.stderr
