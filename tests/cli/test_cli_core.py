"""The CLI's contract: version, help, lazy imports, the error boundary and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llmops import __version__
from llmops.cli import app, deps
from llmops.errors import DockerError

HEAVY = ("docker", "paramiko", "huggingface_hub", "jinja2", "torch", "transformers", "pynvml")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_version() -> None:
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"llmops {__version__}"


def test_python_dash_m_works() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llmops", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and __version__ in r.stdout


def test_help_imports_no_heavy_sdk() -> None:
    code = (
        "import sys\n"
        "from llmops.cli import app\n"
        "try:\n    app(['--help'], prog_name='llmops')\nexcept SystemExit:\n    pass\n"
        f"print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "doctor" in r.stdout  # help really printed
    assert r.stdout.strip().splitlines()[-1] == "LOADED:", r.stdout.splitlines()[-1]


def test_plan_package_imports_nothing_with_side_effects() -> None:
    code = (
        "import sys, llmops.plan.checks, llmops.hw.facts\n"
        f"print(','.join(m for m in {HEAVY + ('psutil',)!r} if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_unknown_check_is_a_usage_error_with_hint() -> None:
    r = run("doctor", "--check", "gpuz")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == "error: unknown check 'gpuz'"
    assert r.stderr.splitlines()[1].startswith("hint: choose from:")
    assert "Traceback" not in r.output


def test_llmops_error_from_an_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise DockerError("Docker engine at unix:///x refused", "start it with `sudo dockerd`")

    monkeypatch.setattr(deps, "collect_facts", boom)
    r = run("doctor")
    assert r.exit_code == 1
    assert r.stderr == (
        "error: Docker engine at unix:///x refused\nhint: start it with `sudo dockerd`\n"
    )
    assert r.stdout == ""


def test_internal_error_is_70_and_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("unexpected")

    monkeypatch.setattr(deps, "collect_facts", boom)
    r = run("doctor")
    assert r.exit_code == 70
    assert "internal error: RuntimeError: unexpected" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("--debug", "doctor")
    assert r.exit_code == 70 and "Traceback" in r.stderr
    monkeypatch.setenv("LLMOPS_DEBUG", "1")
    assert "Traceback" in run("doctor").stderr


def test_bad_facts_file_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "host.json"
    f.write_text(json.dumps({"schema": 1, "facts": {"collected_at": "x"}}))
    r = run("doctor", "--facts", str(f))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"error: facts file {f} is not valid HostFacts JSON")
    assert "llmops doctor --json" in r.stderr
