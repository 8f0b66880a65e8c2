"""Every rendered engine command line is one the pinned engine's own parser accepts.

The accepted options, their value types and choices come from each engine's source at the
pinned version (``tests/fixtures/engines/*.json``, extracted by the scripts beside them). The
same rules run inside the stand-in images (``tests/support/engine_standin.py``), so the Docker tests
also refuse a wrong flag; here they run over a grid without Docker.
"""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from tests.support.engine_standin import check_argv, fixture

ENGINES = ("tgi", "vllm", "llamacpp", "sglang")


def _models() -> list[str]:
    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    return [m["name"] for m in json.loads(r.stdout)["models"]]


def _render(*args: str) -> dict | None:  # type: ignore[type-arg]
    r = CliRunner().invoke(
        app,
        ["render", *args, "--format", "json", "--runtime", "docker"],
        env={"HF_TOKEN": "hf_" + "x" * 20},
    )
    if r.exit_code != 0:
        assert r.exit_code in (1, 2, 3) and "Traceback" not in r.output, r.output
        return None
    return dict(json.loads(r.stdout)["plan"])


def test_fixtures_name_their_source_and_version() -> None:
    for engine, version in (
        ("tgi", "3.3.7"),
        ("vllm", "0.33.0"),
        ("llamacpp", "b11434"),
        ("sglang", "0.5.23"),
    ):
        doc = fixture(engine)
        assert doc["engine"] == engine and doc["version"] == version
        assert doc["source"]["repo"] and doc["source"]["files"]
        assert len(doc["options"]) > 50


@pytest.mark.parametrize(
    ("engine", "argv", "problem"),
    [
        ("llamacpp", ["-hf", "x", "--bogus-flag", "1"], "unknown option '--bogus-flag'"),
        ("llamacpp", ["--rope-scaling", "dynamic"], "--rope-scaling 'dynamic' is not one of"),
        ("llamacpp", ["-c=4096"], "not '-c=VALUE'"),
        ("llamacpp", ["-c", "many"], "not an integer"),
        ("tgi", ["--model-id", "x", "--rope-scaling", "yarn"], "--rope-scaling 'yarn'"),
        ("tgi", ["--port"], "--port needs a value"),
        ("vllm", ["serve", "m", "--rope-scaling", "{}"], "unknown option '--rope-scaling'"),
        ("vllm", ["serve", "m", "--dtype", "bf16"], "--dtype 'bf16' is not one of"),
        ("vllm", ["--model", "m"], "expected 'serve' first"),
        ("vllm", ["serve", "m", "--quantization", "bitsandbytes"], "--quantization 'bitsandbytes'"),
        ("sglang", ["-m", "sglang.launch_server", "--max-model-len", "4"], "unknown option"),
        ("sglang", ["-m", "sglang.launch_server", "--kv-cache-dtype", "fp8"], "is not one of"),
        ("sglang", ["serve", "m"], "expected '-m sglang.launch_server' first"),
    ],
)
def test_the_checker_refuses_what_the_engines_refuse(
    engine: str, argv: list[str], problem: str
) -> None:
    problems = check_argv(engine, argv)
    assert any(problem in p for p in problems), problems


@pytest.mark.slow
def test_every_rendered_command_line_is_accepted() -> None:
    """Catalog models × engines × quants × hardware × (trained, extended) context."""
    checked = 0
    bad: list[str] = []
    grid = itertools.product(
        _models(), ENGINES, ("bf16", "awq", "fp8", "4bit", "q4_k_m"), ("1x24GB", "2x80GB")
    )
    for model, engine, quant, hw in grid:
        for extra in ((), ("--context", "131072")):
            plan = _render(model, "-e", engine, "-q", quant, "--hw", hw, *extra)
            if plan is None:
                continue
            checked += 1
            for p in check_argv(engine, plan["argv"]):
                bad.append(f"{model} {engine} {quant} {hw} {' '.join(extra)}: {p}")
    assert checked >= 150, checked
    assert bad == []
