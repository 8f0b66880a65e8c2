"""The native runtime with real processes: own session, pid/log files, group stop, crash."""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
from llmops.run.deployments import Deployments
from llmops.run.docker import LaunchError
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from llmops.run.up import StartupFailed, pick_port, up

SMOL = ModelArtifact(
    model="smollm2-135m",
    repo="HuggingFaceTB/SmolLM2-135M-Instruct",
    quant="fp32",
    format="safetensors",
    trained_context=8192,
)

SERVER = textwrap.dedent(
    """
    import http.server, os, subprocess, sys, time
    port = int(sys.argv[1]); mode = sys.argv[2]
    print("Loading model", flush=True)
    if mode == "crash":
        print("CUDA out of memory. Tried to allocate 20.00 MiB", flush=True); sys.exit(3)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open("child.pid", "w").write(str(child.pid))
    time.sleep(0.5)
    key = os.environ.get("LLMOPS_API_KEY")
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/v1/models" and self.headers.get("Authorization") != f"Bearer {key}":
                self.send_response(401); self.end_headers(); return
            self.send_response(200); self.end_headers(); self.wfile.write(b'{"data":[]}')
        def log_message(self, *a): print("request", self.path, flush=True)
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


def native_plan(tmp_path: Path, name: str, mode: str):  # type: ignore[no-untyped-def]
    script = tmp_path / "engine.py"
    script.write_text(SERVER)
    port = pick_port(19100, set())
    opts = LaunchOptions(
        engine="torch",
        runtime="native",
        name=name,
        host_port=port,
        data_dir=str(tmp_path),
        python=sys.executable,
    )
    plan = plan_launch(SMOL, opts, None)
    assert plan.argv[:3] == (sys.executable, "-m", "llmops") and str(port) in plan.argv
    # the real backend is exercised elsewhere; here a small real server stands in for it
    return dataclasses.replace(plan, argv=(sys.executable, str(script), str(port), mode))


def test_native_cycle_with_a_real_process(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    rt = NativeRuntime(store)
    plan = native_plan(tmp_path, "n-cycle", "serve")
    res = up(
        plan,
        rt,
        store,
        {"LLMOPS_API_KEY": "sk-native"},
        api_key="sk-native",
        timeout_s=30,
        poll_s=0.2,
    )
    assert res.ready
    pid = int(rt.state("n-cycle").ident or 0)
    assert os.getpgid(pid) == pid  # its own session / process group
    assert oct(store.secrets_path("n-cycle").stat().st_mode & 0o777) == "0o600"
    req = urllib.request.Request(
        f"http://127.0.0.1:{plan.host_port}/v1/models",
        headers={"Authorization": "Bearer sk-native"},
    )
    assert urllib.request.urlopen(req, timeout=5).status == 200
    d = Deployments(store, None, rt)
    (row,) = d.status()
    assert (row.name, row.runtime, row.status, row.health) == (
        "n-cycle",
        "native",
        "running",
        "ready",
    )
    # a fresh runtime object (as after an llmops restart) still finds it from the pid file
    assert NativeRuntime(store).state("n-cycle").running
    assert "Loading model" in d.logs("n-cycle", None)
    child = int((store.dir("n-cycle") / "child.pid").read_text())
    assert d.stop("n-cycle", 5)
    time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert d.names() == []


def test_native_crash_is_reported_with_its_exit_code(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    plan = native_plan(tmp_path, "n-crash", "crash")
    with pytest.raises(StartupFailed) as e:
        up(plan, NativeRuntime(store), store, {}, api_key=None, timeout_s=30, poll_s=0.2)
    assert "exited with code 3" in e.value.message and "out of memory" in e.value.message
    assert store.load("n-crash") is None


def test_missing_engine_binary(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    plan = dataclasses.replace(
        native_plan(tmp_path, "n-missing", "serve"), argv=("llama-server-not-here",)
    )
    plan = dataclasses.replace(plan, engine="llamacpp")
    with pytest.raises(LaunchError) as e:
        up(plan, NativeRuntime(store), store, {}, api_key=None, timeout_s=5)
    assert "not installed" in e.value.message and "llama-server" in (e.value.hint or "")
    assert store.load("n-missing") is None


def test_follow_streams_new_lines_until_the_process_ends(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    rt = NativeRuntime(store)
    plan = native_plan(tmp_path, "n-follow", "serve")
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second', flush=True)\n"
    plan = dataclasses.replace(plan, argv=(sys.executable, "-c", code))
    from llmops.plan.render import plan_json

    store.save("n-follow", plan_json(plan), "t", {})
    rt.start(plan, {})
    chunks = list(Deployments(store, None, rt).follow("n-follow", 10))
    text = "".join(chunks)
    assert "first" in text and "second" in text
    assert text.index("first") < text.index("second")
