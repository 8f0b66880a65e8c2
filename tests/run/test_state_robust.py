"""State that cannot hurt: one damaged record never breaks the other deployments, and a pid
is signalled only when its start time and command line match the record.

Each damaged record is one a crash, a full disk or a hand edit leaves: a truncated
deployment.json, ``"plan": []``, an engine.pid of ``{"pid": -1}``, one without
``create_time``, and one whose pid now belongs to another program. A real healthy deployment
(a real process) runs next to them, and a real decoy process stands where a stale pid points.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import UsageError
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from llmops.run.up import up
from tests.run.test_launch_native import native_plan
from tests.support.sentinels import unique

GOOD_PLAN = {"engine": "torch", "runtime": "native", "ports": [{"host_port": 19999}]}


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def decoy() -> Iterator[psutil.Process]:
    """A process llmops did not start, in its own session (a stale pid record points at it)."""
    p = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    time.sleep(0.2)
    yield psutil.Process(p.pid)
    with contextlib.suppress(OSError):
        p.kill()
    p.wait()


def _write(store: DeploymentStore, name: str, deployment: str | None, pid: object = None) -> None:
    d = store.dir(name)
    d.mkdir(parents=True, exist_ok=True)
    if deployment is not None:
        (d / "deployment.json").write_text(deployment)
    if pid is not None:
        (d / "engine.pid").write_text(pid if isinstance(pid, str) else json.dumps(pid))


@pytest.fixture
def host(tmp_path: Path, decoy: psutil.Process) -> Iterator[dict[str, object]]:
    store = DeploymentStore(Path(os.environ["LLMOPS_HOME"]))
    good = unique("good")
    plan = native_plan(tmp_path, good, "serve")
    up(plan, NativeRuntime(store), store, {"LLMOPS_API_KEY": "sk-x"}, api_key="sk-x",
       timeout_s=30, poll_s=0.2)  # fmt: skip
    engine = psutil.Process(int(NativeRuntime(store).state(good).ident or 0))
    good_doc = json.dumps({"name": "x", "created_at": "", "plan": GOOD_PLAN})
    broken = {
        "truncated": ('{"name": "truncated", "plan": {"engine": "vl', None),
        "plan-list": ('{"name": "plan-list", "created_at": "", "plan": []}', None),
        "pid-minus-one": (good_doc, {"pid": -1}),
        "no-create-time": (good_doc, {"pid": decoy.pid, "argv": decoy.cmdline()}),
        "reused-pid": (
            good_doc,
            {"pid": decoy.pid, "create_time": decoy.create_time(), "argv": ["llama-server"]},
        ),
    }
    for name, (doc, pid) in broken.items():
        _write(store, name, doc, pid)
    yield {"store": store, "good": good, "engine": engine, "broken": sorted(broken)}
    if engine.is_running():  # only what this test started
        with contextlib.suppress(psutil.Error):
            os.killpg(engine.pid, 9)


def test_ps_shows_broken_records_and_the_good_one(host: dict, decoy: psutil.Process) -> None:  # type: ignore[type-arg]
    r = cli("ps", "--json")
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.stdout)["deployments"]}
    assert rows[host["good"]]["status"] == "running"
    assert rows[host["good"]]["health"] == "ready"
    for name in ("truncated", "plan-list", "pid-minus-one", "no-create-time"):
        assert rows[name]["status"] == "broken", rows[name]
        assert f"llmops down {name} --force" in rows[name]["problem"]
    # a well-formed record whose pid now runs another program: not ours, so not running
    assert rows["reused-pid"]["status"] == "exited"

    r = cli("ps")
    assert r.exit_code == 0, r.output
    assert "broken" in r.stdout and host["good"] in r.stdout
    assert "down truncated --force" in r.stderr and "Traceback" not in r.output
    assert decoy.is_running()


def test_down_all_and_kill_carry_on_and_never_signal_an_unverified_pid(
    host: dict,  # type: ignore[type-arg]
    decoy: psutil.Process,
) -> None:
    store: DeploymentStore = host["store"]  # type: ignore[assignment]
    # `down NAME` of a damaged record refuses with the fix, and touches nothing
    for name in ("truncated", "plan-list", "pid-minus-one", "no-create-time"):
        r = cli("down", name)
        assert r.exit_code == 1, (name, r.output)
        assert f"llmops down {name} --force" in r.stderr and "Traceback" not in r.output
    # the stale pid (right start time, another program's command line) is never signalled
    r = cli("down", "reused-pid")
    assert r.exit_code == 0, r.output
    assert decoy.is_running() and decoy.status() != psutil.STATUS_ZOMBIE

    r = cli("kill", "--grace", "3")
    assert r.exit_code == 0, r.output
    assert "left alone" in r.stderr and "Traceback" not in r.output
    time.sleep(0.3)
    assert not host["engine"].is_running() or host["engine"].status() == psutil.STATUS_ZOMBIE

    r = cli("down", "--all")
    assert r.exit_code == 1, r.output  # it went through every one, then says what it left
    assert "Traceback" not in r.output and "internal error" not in r.output
    assert "llmops down NAME --force" in r.stderr
    assert decoy.is_running()

    for name in ("truncated", "plan-list", "pid-minus-one", "no-create-time"):
        r = cli("down", name, "--force")
        assert r.exit_code == 0, (name, r.output)
        assert not store.dir(name).exists()
    assert decoy.is_running() and decoy.status() != psutil.STATUS_ZOMBIE
    assert cli("ps", "--json").exit_code == 0
    assert store.names() == []


def test_store_skips_damaged_records_and_keeps_secrets_private(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.save("ok", GOOD_PLAN, "now", {"LLMOPS_API_KEY": "sk-good"})
    _write(store, "bad", "{")
    assert [d.name for d in store.all()] == ["ok"]
    assert set(store.broken()) == {"bad"}
    for f in ("secrets.env", "deployment.json"):
        assert stat.S_IMODE((store.dir("ok") / f).stat().st_mode) == 0o600
    # rewriting secrets is atomic and stays 0600; no temp files are left
    store.write_secrets("ok", {"LLMOPS_API_KEY": "sk-new"})
    assert stat.S_IMODE(store.secrets_path("ok").stat().st_mode) == 0o600
    assert sorted(p.name for p in store.dir("ok").iterdir()) == ["deployment.json", "secrets.env"]


@pytest.mark.parametrize("token", ["hf_abc\nEVIL=1", "hf_abc\r", "hf_\x00abc", "hf_é"])
def test_a_bad_secret_leaves_nothing_behind_and_is_never_echoed(tmp_path: Path, token: str) -> None:
    store = DeploymentStore(tmp_path / "home")
    name = unique("secret")
    plan = native_plan(tmp_path, name, "serve")
    with pytest.raises(UsageError) as e:
        up(plan, NativeRuntime(store), store, {"HF_TOKEN": token}, api_key=None, timeout_s=5)
    assert "HF_TOKEN" in e.value.message
    assert "abc" not in e.value.message + (e.value.hint or "")
    assert not store.dir(name).exists()  # no deployment.json, no partial secrets.env
    with pytest.raises(UsageError):
        store.save(name, GOOD_PLAN, "", {"HF_TOKEN": token})
    assert not store.dir(name).exists()


def test_native_start_passes_secrets_as_environment_not_a_sourced_file(tmp_path: Path) -> None:
    """The engine gets its secrets in its environment; secrets.env is data (never run by a
    shell): a value with shell syntax arrives verbatim and runs nothing."""
    store = DeploymentStore(tmp_path / "home")
    name = unique("env")
    plan = native_plan(tmp_path, name, "serve")
    marker = tmp_path / "pwned"
    key = f"sk-$(touch${{IFS}}{marker})`touch${{IFS}}{marker}`"
    res = up(plan, NativeRuntime(store), store, {"LLMOPS_API_KEY": key}, api_key=key,
             timeout_s=30, poll_s=0.2)  # fmt: skip
    try:
        assert res.ready  # the stand-in engine answers only with exactly this key
        assert store.read_secrets(name) == {"LLMOPS_API_KEY": key}
        assert store.api_key(name) == key
        assert not marker.exists()
    finally:
        NativeRuntime(store).stop(name, 5)
