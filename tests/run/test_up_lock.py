"""Two `up` of one name at once, for real: two processes, one engine, one visible deployment.

Before the per-deployment lock, both recorded the deployment, both started an engine, and the
loser's clean-up deleted the shared state directory (and could stop the winner's engine by its
pid file): a running engine that `ps`, `down` and `kill` could not see.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import LlmopsError
from llmops.run.deployments import Deployments
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentBusy, DeploymentStore
from llmops.run.up import pick_port, up
from tests.support.sentinels import unique

REPO = Path(__file__).resolve().parents[2]

#: A small real server standing in for an engine: slow to get ready, so two `up` overlap.
ENGINE = textwrap.dedent(
    """
    import http.server, sys, time
    port = int(sys.argv[1])
    print("loading", flush=True)
    time.sleep(1.5)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b'{"data":[]}')
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)

#: One `up` in its own process: waits for the start signal, then runs llmops.run.up.up.
RACER = textwrap.dedent(
    """
    import dataclasses, json, os, sys, time
    from llmops.errors import LlmopsError
    from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
    from llmops.run.native import NativeRuntime
    from llmops.run.state import DeploymentStore
    from llmops.run.up import up
    home, name, port, engine, go = sys.argv[1:6]
    art = ModelArtifact(model="smollm2-135m", repo="HuggingFaceTB/SmolLM2-135M-Instruct",
                        quant="fp32", format="safetensors", trained_context=8192)
    opts = LaunchOptions(engine="torch", runtime="native", name=name, host_port=int(port),
                         data_dir=home, python=sys.executable)
    plan = dataclasses.replace(plan_launch(art, opts, None),
                               argv=(sys.executable, engine, port))
    store = DeploymentStore(__import__("pathlib").Path(home))
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        up(plan, NativeRuntime(store), store, {}, api_key=None, timeout_s=30, poll_s=0.1)
    except LlmopsError as e:
        print(json.dumps({"ok": False, "error": e.message, "hint": e.hint}), flush=True)
        sys.exit(1)
    print(json.dumps({"ok": True}), flush=True)
    """
)


def _engines(script: Path) -> list[psutil.Process]:
    """The stand-in engines this test started (matched by their unique script path)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(script) in (p.info.get("cmdline") or []) and p.status() != "zombie":
                out.append(p)
    return out


@pytest.fixture
def engine_script(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / f"engine-{unique('lock')}.py"
    script.write_text(ENGINE)
    yield script
    for p in _engines(script):  # only what this test started
        with contextlib.suppress(psutil.Error):
            p.kill()


def test_two_ups_of_one_name_at_once_leave_one_visible_engine(
    tmp_path: Path, engine_script: Path
) -> None:
    home = tmp_path / "home"
    name = unique("race")
    port = pick_port(19400, set())
    racer = tmp_path / "racer.py"
    racer.write_text(RACER)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLMOPS_HOME": str(home)}
    args = [sys.executable, str(racer), str(home), name, str(port), str(engine_script), str(go)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    time.sleep(1.0)  # both imported and waiting
    go.write_text("")
    outs = [p.communicate(timeout=60) for p in procs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _e in outs]
    assert sorted(r["ok"] for r in results) == [False, True], outs
    (loser,) = [r for r in results if not r["ok"]]
    # the winner writes its pid into the lock file just after taking the lock: a loser that
    # looks in between cannot name it yet
    assert (
        "is being started or stopped by process" in loser["error"]
        or "is being started or stopped by another llmops command" in loser["error"]
        or "is already running" in loser["error"]
    ), loser
    assert "did nothing" in loser["error"]

    time.sleep(0.5)
    assert len(_engines(engine_script)) == 1  # the loser left nothing running
    store = DeploymentStore(home)
    d = Deployments(store, None, NativeRuntime(store))
    (row,) = d.status()
    assert (row.name, row.status, row.health) == (name, "running", "ready")
    assert d.stop(name, 5)
    time.sleep(0.3)
    assert _engines(engine_script) == []
    assert d.names() == []


def test_up_and_down_refuse_while_another_process_holds_the_lock(
    tmp_path: Path, engine_script: Path
) -> None:
    """A real second process holds the lock: `up` does nothing, `down` touches nothing."""
    home = Path(os.environ["LLMOPS_HOME"])
    store = DeploymentStore(home)
    name = unique("held")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from llmops.run.state import DeploymentStore\n"
            f"with DeploymentStore(Path({str(home)!r})).lock({name!r}):\n"
            "    print('held', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DeploymentBusy) as e, store.lock(name):
            pass
        assert f"process {holder.pid}" in e.value.message

        from tests.run.test_launch_native import native_plan

        plan = native_plan(tmp_path, name, "serve")
        with pytest.raises(LlmopsError, match="being started or stopped"):
            up(plan, NativeRuntime(store), store, {}, api_key=None, timeout_s=5, poll_s=0.1)
        assert store.load(name) is None and not store.dir(name).exists()

        # a record exists (as while an `up` is loading): `down` refuses and keeps it
        store.save(
            name, {"engine": "torch", "runtime": "native", "ports": [{"host_port": 1}]}, "", {}
        )
        r = CliRunner().invoke(app, ["down", name])
        assert r.exit_code == 1, r.output
        assert "being started or stopped" in r.stderr and "Traceback" not in r.output
        assert store.load(name) is not None
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone its lock is free (a dead process never holds one)
    r = CliRunner().invoke(app, ["down", name])
    assert r.exit_code == 0, r.output
    assert store.load(name) is None
