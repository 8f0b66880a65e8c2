"""`kill` with real processes and real containers, including decoys that must survive.

Discovery always scans the WHOLE host (every process, every running container), and the
assertions say that decoys are not in it; execution is scoped to what each test started, so a
test never stops another session's processes on a shared machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
from llmops.run.deployments import Deployments
from llmops.run.kill import KillSequence, image_repo, match_argv, match_container
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore, install_id
from llmops.run.tunnels import TunnelManager, TunnelSpec, open_tunnel
from llmops.run.up import pick_port, up
from tests.support.tunnel_fakes import install_fake, path_with

SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (
            ["/usr/local/bin/text-generation-launcher", "--model-id", "x"],
            "program text-generation-launcher",
        ),
        (["text-generation-server", "serve", "x"], "program text-generation-server"),
        (["/opt/llama/llama-server", "-m", "m.gguf"], "program llama-server"),
        (["/usr/bin/python3", "/usr/local/bin/vllm", "serve", "m"], "python script vllm"),
        (["python3.11", "-u", "-X", "dev", "/venv/bin/gradio", "app.py"], "python script gradio"),
        (
            ["python", "-m", "vllm.entrypoints.openai.api_server"],
            "python -m vllm.entrypoints.openai.api_server",
        ),
        (
            ["python3", "-mtext_generation_server.cli", "serve"],
            "python -m text_generation_server.cli",
        ),
        (["ngrok", "http", "8000"], "program ngrok"),
        (["/usr/local/bin/cloudflared", "tunnel", "--url", "x"], "program cloudflared"),
    ],
)
def test_matches_programs_precisely(argv: list[str], why: str) -> None:
    assert match_argv(argv) == why


@pytest.mark.parametrize(
    "argv",
    [
        ["sleep", "1000", "#", "vllm"],
        ["sh", "-c", "sleep 1000 # vllm"],
        ["python3", "-c", "import time; time.sleep(9)", "vllm"],
        ["python3", "/home/me/vllm.py"],
        ["python3", "/home/me/not-vllm"],
        ["python3", "-m", "pytest", "tests/run/test_kill.py", "-k", "vllm"],
        ["python3", "-m", "llmops", "kill", "--all"],
        ["/work/.venv/bin/python", "/work/.venv/bin/llmops", "tunnel", "x", "--via", "cloudflared"],
        ["/opt/vllm/bin/sleep", "10"],
        ["grep", "ngrok"],
        ["tail", "-f", "/var/log/text-generation-launcher.log"],
        [],
    ],
)
def test_decoy_command_lines_do_not_match(argv: list[str]) -> None:
    assert match_argv(argv) is None


def test_container_matching_is_by_image_or_process_not_name() -> None:
    assert image_repo("docker.io/vllm/vllm-openai:v0.20.2") == "vllm/vllm-openai"
    assert image_repo("ghcr.io/huggingface/text-generation-inference:3.3.5") == (
        "ghcr.io/huggingface/text-generation-inference"
    )
    assert image_repo("localhost:5000/x/y@sha256:abc") == "localhost:5000/x/y"
    assert (
        match_container(["vllm/vllm-openai:latest"], "sleep", ["1"], {}) == "image vllm/vllm-openai"
    )
    assert match_container(["my/tgi:1"], "text-generation-launcher", ["--port", "80"], {}) == (
        "container process: program text-generation-launcher"
    )
    assert match_container(["busybox"], "sh", ["-c", "sleep 1 # vllm"], {}) is None
    ours = {"llmops.deployment": "d", "llmops.install": "0123456789abcdef"}
    assert match_container(["vllm/vllm-openai"], "vllm", [], ours, "0123456789abcdef") is None
    # a deployment label without this install's id (inherited from an image, another install)
    # makes nothing "ours": the container is matched like any other engine
    assert match_container(["vllm/vllm-openai"], "vllm", [], ours, "fedcba9876543210") == (
        "image vllm/vllm-openai"
    )
    assert match_container(["vllm/vllm-openai"], "vllm", [], {"llmops.deployment": "d"}) == (
        "image vllm/vllm-openai"
    )


def _spawn(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def _alive(p: subprocess.Popen[bytes]) -> bool:
    return p.poll() is None


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Real processes: engines (by program, console script, module, SIGTERM-ignoring) and decoys."""
    b = tmp_path / "bin"
    b.mkdir()
    (tmp_path / "vllm").mkdir()
    for name in ("llama-server", "text-generation-launcher"):
        os.symlink(SLEEP, b / name)
    os.symlink(SLEEP, tmp_path / "vllm" / "sleep")  # a directory named vllm: still `sleep`
    script = b / "vllm"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(1000)\n")
    stubborn = b / "text-generation-server"
    stubborn.write_text(
        f"#!{sys.executable}\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(1000)\n"
    )
    (b / "serve.py").write_text("import time\ntime.sleep(1000)\n")
    for f in (script, stubborn):
        f.chmod(0o755)
    pkg = tmp_path / "pp" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text("import time\ntime.sleep(1000)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "pp")}
    started = {
        "llama-server": _spawn([str(b / "llama-server"), "1000"]),
        "tgi-launcher": _spawn([str(b / "text-generation-launcher"), "1000"]),
        "vllm-script": _spawn([str(script), "serve", "m"]),
        "vllm-module": _spawn(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server"], env=env
        ),
        "stubborn": subprocess.Popen([str(stubborn)], stdout=subprocess.PIPE),
        # decoys
        "d-shell-comment": _spawn(["sh", "-c", "sleep 1000 # vllm; exit 0"]),
        "d-arg": _spawn(
            [sys.executable, "-c", "import time; time.sleep(1000)", "vllm", "cloudflared"]
        ),
        "d-dir": _spawn([str(tmp_path / "vllm" / "sleep"), "1000"]),
        "d-option": _spawn([sys.executable, str(b / "serve.py"), "--engine", "llama-server"]),
        "d-script-py": _spawn(
            [
                sys.executable,
                str(tmp_path / "pp" / "vllm" / "entrypoints" / "openai" / "api_server.py"),
            ]
        ),
    }
    assert started["stubborn"].stdout is not None
    started["stubborn"].stdout.readline()  # its SIGTERM handler is installed
    time.sleep(0.3)  # let the python ones exec
    yield started
    for p in started.values():
        if p.poll() is None:
            p.kill()
            p.wait()


def _pids_of(p: subprocess.Popen[bytes]) -> set[int]:
    out = {p.pid}
    with contextlib.suppress(psutil.NoSuchProcess):
        out |= {c.pid for c in psutil.Process(p.pid).children(recursive=True)}
    return out


def test_kill_all_stops_engines_and_spares_decoys(
    procs: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    mine: set[int] = set()
    for p in procs.values():
        mine |= _pids_of(p)
    store = DeploymentStore(tmp_path / "home")
    tunnels = TunnelManager(store.home)
    deployments = Deployments(store, None, NativeRuntime(store))
    whole_host = KillSequence(tunnels, deployments, None)
    found = {
        int(t.ident): t for t in whole_host.discover(include_foreign=True) if t.kind == "process"
    }
    engines = {k for k in procs if not k.startswith("d-")}
    for key, p in procs.items():
        if key.startswith("d-"):
            assert not _pids_of(p) & set(found), f"decoy {key} matched: {found}"
        else:
            assert p.pid in found, f"{key} not matched"
    assert os.getpid() not in found and not {q.pid for q in psutil.Process().parents()} & set(found)
    assert (
        found[procs["vllm-module"].pid].matched_by == "python -m vllm.entrypoints.openai.api_server"
    )
    assert found[procs["vllm-script"].pid].name == "vllm"

    scoped = KillSequence(tunnels, deployments, None, process_filter=lambda p: p.pid in mine)
    targets = scoped.discover(include_foreign=True)
    assert {int(t.ident) for t in targets} == {procs[k].pid for k in engines}
    results = scoped.execute(targets, grace_s=0.5)
    outcomes = {r.target.ident: r.outcome for r in results}
    assert (
        outcomes[str(procs["stubborn"].pid)] == "killed"
    )  # ignored SIGTERM: SIGKILL after the grace
    assert outcomes[str(procs["llama-server"].pid)] == "stopped"
    time.sleep(0.2)
    for key, p in procs.items():
        p.poll()
        assert (p.returncode is None) == key.startswith("d-"), key
    assert scoped.discover(include_foreign=True) == []  # twice is harmless
    assert scoped.execute([], 0.5) == []


SERVER = """
import http.server, os, sys
port = int(sys.argv[1]); key = os.environ.get("LLMOPS_API_KEY")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path != "/health" and self.headers.get("Authorization") != f"Bearer {key}":
            self.send_response(401); self.end_headers(); return
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"data":[]}')
    do_POST = do_GET
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def native_deployment(tmp_path: Path, store: DeploymentStore, name: str) -> int:
    script = tmp_path / "engine.py"
    script.write_text(SERVER)
    port = pick_port(19400, set())
    opts = LaunchOptions(
        engine="torch", runtime="native", name=name, host_port=port, python=sys.executable
    )
    art = ModelArtifact(
        model="smollm2-135m",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        quant="fp32",
        format="safetensors",
    )
    plan = dataclasses.replace(
        plan_launch(art, opts, None), argv=(sys.executable, str(script), str(port))
    )
    up(
        plan,
        NativeRuntime(store),
        store,
        {"LLMOPS_API_KEY": "sk-k"},
        api_key="sk-k",
        timeout_s=30,
        poll_s=0.1,
    )
    return port


def test_kill_stops_tunnels_then_deployments(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    port = native_deployment(tmp_path, store, "k1")
    install_fake(tmp_path / "bin", "cloudflared")
    tunnels = TunnelManager(store.home, {**os.environ, "PATH": path_with(tmp_path / "bin")})
    rec = open_tunnel(
        tunnels, TunnelSpec("k1", port, "cloudflared", deployment="k1"), "sk-k"
    ).record
    deployments = Deployments(store, None, NativeRuntime(store))
    engine_pid = int(deployments.status(probe=False)[0].ident or 0)
    seq = KillSequence(tunnels, deployments, None)
    targets = seq.discover(include_foreign=True)
    own = [t for t in targets if not t.foreign]
    assert [(t.kind, t.name) for t in own] == [("tunnel", "k1"), ("deployment", "k1")]
    # llmops' own cloudflared and engine are never listed again as "foreign" matches
    assert not {str(rec.pid), str(engine_pid)} & {t.ident for t in targets if t.foreign}
    results = seq.execute(own, 5)
    assert [(r.target.kind, r.outcome) for r in results] == [
        ("tunnel", "stopped"),
        ("deployment", "stopped"),
    ]
    assert (
        not psutil.pid_exists(rec.pid) or psutil.Process(rec.pid).status() == psutil.STATUS_ZOMBIE
    )
    assert (
        not psutil.pid_exists(engine_pid)
        or psutil.Process(engine_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert seq.own_targets() == [] and store.names() == [] and tunnels.records() == []


@pytest.mark.docker
def test_kill_all_containers_by_image_not_by_name(docker_client, busybox_image: str) -> None:  # type: ignore[no-untyped-def]
    run_id = uuid.uuid4().hex[:8]
    label = {"llmops-test.kill": run_id}
    engine_tag = f"llmops-kill-{run_id}"
    docker_client.images.get(busybox_image).tag("vllm/vllm-openai", engine_tag)
    made: list = []  # type: ignore[type-arg]

    def run(image: str, cmd: list[str], **kw: object):  # type: ignore[no-untyped-def]
        c = docker_client.containers.run(image, cmd, detach=True, **kw)
        made.append(c)
        return c

    try:
        engine = run(
            f"vllm/vllm-openai:{engine_tag}",
            ["sleep", "1000"],
            labels=label,
            name=f"inference-{run_id}",
        )
        decoy_name = run(
            busybox_image, ["sleep", "1000"], labels=label, name=f"vllm-openai-{run_id}"
        )
        decoy_cmd = run(
            busybox_image, ["sh", "-c", "sleep 1000 # text-generation-launcher"], labels=label
        )
        store = DeploymentStore()
        owned = run(  # this install's own deployment: handled as one, never a foreign target
            f"vllm/vllm-openai:{engine_tag}",
            ["sleep", "1000"],
            labels={
                **label,
                "llmops.deployment": f"someone-{run_id}",
                "llmops.install": install_id(store.home),
            },
        )
        inherited = run(  # an llmops label without this install's id (from an image): foreign
            f"vllm/vllm-openai:{engine_tag}",
            ["sleep", "1000"],
            labels={**label, "llmops.deployment": f"image-label-{run_id}"},
        )
        nobody = Deployments(store, None, NativeRuntime(store))
        whole = KillSequence(TunnelManager(), nobody, docker_client)
        found = {t.ident: t for t in whole.foreign_containers()}
        assert (
            engine.short_id in found
            and found[engine.short_id].matched_by == "image vllm/vllm-openai"
        )
        assert not {decoy_name.short_id, decoy_cmd.short_id, owned.short_id} & set(found)
        assert found[inherited.short_id].matched_by == "image vllm/vllm-openai"
        scoped = KillSequence(
            TunnelManager(),
            nobody,
            docker_client,
            container_filter=lambda c: (c.labels or {}).get("llmops-test.kill") == run_id,
            process_filter=lambda _p: False,
        )
        targets = scoped.discover(include_foreign=True)
        assert sorted(t.ident for t in targets) == sorted([engine.short_id, inherited.short_id])
        assert all(t.foreign for t in targets)
        results = scoped.execute(targets, grace_s=1)
        assert [r.outcome for r in results] == ["stopped", "stopped"]
        for c in made:
            c.reload()
        assert engine.status == "exited" and inherited.status == "exited"
        assert {decoy_name.status, decoy_cmd.status, owned.status} == {"running"}
        assert scoped.discover(include_foreign=True) == []
    finally:
        for c in made:
            with contextlib.suppress(Exception):
                c.remove(force=True)
        docker_client.images.remove(f"vllm/vllm-openai:{engine_tag}", noprune=True)
