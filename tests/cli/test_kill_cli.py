"""`llmops kill` through the CLI: dry run, asking, --yes, JSON, twice; real processes, scoped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.run.deployments import Deployments
from llmops.run.kill import KillSequence
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from llmops.run.tunnels import TunnelManager, TunnelSpec, open_tunnel
from tests.support.tunnel_fakes import endpoint, install_fake, path_with

KEY = "sk-kill-cli"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """An llmops tunnel, a foreign engine and a decoy; `kill` scoped to this test's processes."""
    install_fake(tmp_path / "bin", "cloudflared")
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    os.symlink(shutil.which("sleep") or "/bin/sleep", tmp_path / "bin" / "llama-server")
    engine = subprocess.Popen([str(tmp_path / "bin" / "llama-server"), "1000"])
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(1000)", "llama-server"]
    )
    mine = {engine.pid, decoy.pid}
    with endpoint(KEY) as ep:
        tunnels = TunnelManager()
        rec = open_tunnel(
            tunnels, TunnelSpec(f"port-{ep.port}", ep.port, "cloudflared"), KEY
        ).record

        def sequence() -> KillSequence:
            store = DeploymentStore()
            return KillSequence(
                TunnelManager(),
                Deployments(store, None, NativeRuntime(store)),
                None,
                process_filter=lambda p: p.pid in mine,
            )

        monkeypatch.setattr("llmops.cli.deps.kill_sequence", sequence)
        yield {"engine": engine, "decoy": decoy, "tunnel": rec, "tunnels": tunnels}
        for rec_ in tunnels.records():
            tunnels.stop(rec_.name, 2)
    for p in (engine, decoy):
        if p.poll() is None:
            p.kill()
        p.wait()


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["kill", *args], input=input)


def test_dry_run_lists_in_order_and_touches_nothing(host) -> None:  # type: ignore[no-untyped-def]
    r = run("--all", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1 and doc["dry_run"] is True and doc["results"] == []
    kinds = [(t["kind"], t["foreign"]) for t in doc["targets"]]
    assert kinds == [("tunnel", False), ("process", True)]
    assert doc["targets"][1]["ident"] == str(host["engine"].pid)
    assert doc["targets"][1]["matched_by"] == "program llama-server"
    human = run("--all", "--dry-run")
    assert (
        "would stop tunnel" in human.stderr
        and "would stop process    llama-server  (pid" in human.stderr
    )
    assert host["engine"].poll() is None and host["tunnels"].running(host["tunnel"])


def test_asks_before_foreign_ones_then_yes_then_twice(host) -> None:  # type: ignore[no-untyped-def]
    r = run("--all", "--grace", "2", input="n\n")
    assert r.exit_code == 0, r.output
    assert "did not start?" in r.stderr and "left the ones llmops did not start alone" in r.stderr
    assert "stopped  tunnel" in r.stdout
    assert host["engine"].poll() is None  # refused: still running
    assert not host["tunnels"].records()
    r = run("--all", "--yes", "--json", "--grace", "2")
    doc = json.loads(r.stdout)
    assert [(x["target"]["kind"], x["outcome"]) for x in doc["results"]] == [("process", "stopped")]
    host["engine"].wait(timeout=5)
    assert host["decoy"].poll() is None  # "llama-server" only as an argument: untouched
    again = run("--all", "--yes")
    assert again.exit_code == 0 and "nothing to stop" in again.stderr


def test_without_all_only_llmops_own(host) -> None:  # type: ignore[no-untyped-def]
    r = run("--json")
    doc = json.loads(r.stdout)
    assert [(x["target"]["kind"], x["outcome"]) for x in doc["results"]] == [("tunnel", "stopped")]
    assert host["engine"].poll() is None
    assert "add --all" in run().stderr
