"""Tests with real processes, HTTP servers and sshd that kill mutants which survived the suite.

Each test's docstring names the planted bug it kills.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from llmops.errors import TunnelUnprotected, UnknownHostKey
from llmops.plan.launch import HealthProbe
from llmops.run.docker import RuntimeState
from llmops.run.kill import KillResult, KillSequence, KillTarget
from llmops.run.ready import wait_ready
from llmops.run.ssh import llmops_known_hosts, open_host
from llmops.run.tunnels import TunnelManager, TunnelSpec, open_tunnel
from tests.client.servers import Handler, ScriptedServer, models_route
from tests.support.sshd import Client, Sshd, start_sshd
from tests.support.tunnel_fakes import endpoint, install_fake, path_with, read_records

KEY = "sk-llmops-planted-0123456789"


# ------------------------------------------------------------------ 8, 9. readiness


def _running() -> RuntimeState:
    return RuntimeState(name="d", exists=True, running=True, status="running", ident="1")


def _health_ok(h: Handler, body: bytes) -> None:
    h.reply(200, {"status": "ok"})


def _models_loading(h: Handler, body: bytes) -> None:
    h.reply(503, {"error": {"message": "Loading model", "type": "unavailable_error"}})


@pytest.fixture
def loading_server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer({("GET", "/health"): _health_ok, ("GET", "/v1/models"): _models_loading})
    yield srv
    srv.close()


@pytest.fixture
def keyed_server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer({("GET", "/health"): _health_ok, ("GET", "/v1/models"): models_route}, KEY)
    yield srv
    srv.close()


def _wait(url: str, key: str | None, timeout_s: float = 0.6) -> Any:
    phases: list[str] = []
    r = wait_ready(
        url,
        HealthProbe(),
        api_key=key,
        state=_running,
        logs=lambda: "",
        timeout_s=timeout_s,
        on_phase=phases.append,
        poll_s=0.05,
    )
    return r, phases


def test_health_200_but_models_503_is_not_ready(loading_server: ScriptedServer) -> None:
    """Kills: "ready as soon as `/health` answers" (run/ready.py wait_ready)."""
    r, phases = _wait(loading_server.url, KEY)
    assert (r.ready, r.reason, r.phase) == (False, "timeout", "loading")
    assert phases == ["loading"]
    paths = [p for _m, p, _h, _b in loading_server.requests]
    assert "/health" in paths and "/v1/models" in paths


def test_models_401_without_the_key_is_not_ready(keyed_server: ScriptedServer) -> None:
    """Kills: "a 401 on `/v1/models` counts as ready" (run/ready.py wait_ready): no key, or a
    wrong key, gets 401 from /v1/models and must never count as ready."""
    for key in (None, "sk-wrong"):
        r, _ = _wait(keyed_server.url, key)
        assert (r.ready, r.reason, r.phase) == (False, "timeout", "loading"), key
    statuses = [
        h.get("Authorization") for _m, p, h, _b in keyed_server.requests if p == "/v1/models"
    ]
    assert None in statuses and "Bearer sk-wrong" in statuses


def test_models_200_with_the_key_is_ready(keyed_server: ScriptedServer) -> None:
    """The other side of mutants 8 and 9: /health 200 and /v1/models 200 with the key -> ready."""
    r, _ = _wait(keyed_server.url, KEY, timeout_s=10)
    assert (r.ready, r.reason, r.phase) == (True, "ready", "ready")
    sent = [h.get("Authorization") for _m, p, h, _b in keyed_server.requests if p == "/v1/models"]
    assert sent == [f"Bearer {KEY}"]


# ------------------------------------------------------------------ 1, 2. tunnel exposure


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[TunnelManager]:
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, "cloudflared")
    env = {
        **os.environ,
        "PATH": path_with(bin_dir),
        "HOME": str(tmp_path / "user-home"),
        "FAKE_TUNNEL_RECORD": str(tmp_path / "calls.jsonl"),
    }
    m = TunnelManager(tmp_path / "home", env)
    yield m
    for rec in m.records():
        m.stop(rec.name, 2)


def test_a_404_without_the_key_is_refused_before_the_tunnel_starts(
    manager: TunnelManager, tmp_path: Path
) -> None:
    """Kills: "any no-key status other than 200 counts as protected": an endpoint that answers
    200 with the key and 404 (not 401) without it is not protected; nothing is started."""

    def models(h: Handler, body: bytes) -> None:
        if h.headers.get("Authorization") == f"Bearer {KEY}":
            h.reply(200, {"object": "list", "data": []})
        else:
            h.reply(404, {"detail": "Not Found"})

    srv = ScriptedServer({("GET", "/v1/models"): models})
    try:
        with pytest.raises(TunnelUnprotected) as e:
            open_tunnel(manager, TunnelSpec("odd", srv.server_address[1], "cloudflared"), KEY)
        assert "answered 404, not 401" in e.value.message
    finally:
        srv.close()
    assert manager.records() == [] and read_records(tmp_path / "calls.jsonl") == []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_public_url_serving_without_auth_is_refused_and_stopped(
    manager: TunnelManager, tmp_path: Path
) -> None:
    """Kills: "the auth check after the tunnel starts removed" (run/tunnels.py open_tunnel).

    The local endpoint is protected (401 without the key), but the named tunnel's public
    hostname is routed to an endpoint that serves without auth: the check through the public
    URL must refuse it and stop the tunnel it started."""
    with endpoint(KEY) as local, endpoint(None) as open_origin:
        spec = TunnelSpec(
            "named",
            local.port,
            "cloudflared",
            cf_token="eyJ-planted-token",
            cf_hostname=f"127.0.0.1:{open_origin.port}",
        )
        with pytest.raises(TunnelUnprotected) as e:
            open_tunnel(manager, spec, KEY, verify_timeout_s=5)
        assert "refusing to keep the tunnel" in e.value.message
        assert "it was stopped" in e.value.message
        assert f"http://127.0.0.1:{open_origin.port}/v1/models" in e.value.message
        assert ("/v1/models", None) in open_origin.hits  # checked through the public URL
    (call,) = read_records(tmp_path / "calls.jsonl")  # it was started once ...
    assert call["has_token_env"] is True
    assert manager.records() == []  # ... and stopped: no fake cloudflared of this test runs
    exe = str(tmp_path / "bin" / "cloudflared")
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if exe in (p.info.get("cmdline") or []) and not _gone(p.pid):
            left.append(p.pid)
    assert left == []


# ------------------------------------------------------------------ 3, 4. kill


class _Tunnels:
    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def records(self) -> list[Any]:
        return [SimpleNamespace(pid=p, name=f"t{p}", via="cloudflared") for p in self.pids]

    def status(self) -> list[Any]:
        return []


class _Deployments:
    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def status(self, probe: bool = False) -> list[Any]:
        return [
            SimpleNamespace(name=f"d{p}", runtime="native", ident=str(p), status="running")
            for p in self.pids
        ]


def _engine_bin(tmp_path: Path) -> Path:
    b = tmp_path / "bin"
    b.mkdir(exist_ok=True)
    link = b / "llama-server"
    if not link.exists():
        os.symlink("/bin/sleep" if os.path.exists("/bin/sleep") else "/usr/bin/sleep", link)
    return link


def _children(pid: int, timeout_s: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kids = psutil.Process(pid).children(recursive=True)
        if kids and all(k.cmdline() and k.cmdline()[0].endswith("llama-server") for k in kids):
            return kids
        time.sleep(0.02)
    raise AssertionError(f"no llama-server child under {pid}")


def test_children_of_owned_processes_are_never_foreign_targets(tmp_path: Path) -> None:
    """Kills: "children of an owned process not protected from kill" (run/kill.py
    _protected_pids): an engine-looking worker under an llmops native deployment or tunnel is
    llmops' own, never a foreign `kill --all` target; the same program elsewhere is."""
    engine = _engine_bin(tmp_path)
    # a shell that stays the parent (`& wait`): the owned process, with an engine child
    wrapper = ["sh", "-c", '"$0" 1000 & wait', str(engine)]
    spawned = [
        subprocess.Popen(wrapper, start_new_session=True),  # an owned native deployment
        subprocess.Popen(wrapper, start_new_session=True),  # an owned tunnel
        subprocess.Popen([str(engine), "1000"], start_new_session=True),  # foreign
    ]
    try:
        dep_child = _children(spawned[0].pid)
        tun_child = _children(spawned[1].pid)
        mine = {p.pid for p in spawned} | {c.pid for c in dep_child + tun_child}
        seq = KillSequence(
            _Tunnels([spawned[1].pid]),
            _Deployments([spawned[0].pid]),
            None,
            process_filter=lambda p: p.pid in mine,
        )
        found = {int(t.ident): t.matched_by for t in seq.foreign_processes()}
        assert found == {spawned[2].pid: "program llama-server"}
    finally:
        for p in spawned:
            with_kids = [p.pid] + [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
            for pid in with_kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            p.wait(5)


_SELF_SCRIPT = r"""
import json, os, sys
from llmops.run.kill import KillSequence

class Empty:
    def records(self): return []
    def status(self, probe=False): return []

sibling = int(sys.argv[1])
scope = {os.getpid(), os.getppid(), sibling}
seq = KillSequence(Empty(), Empty(), None, process_filter=lambda p: p.pid in scope)
print(json.dumps({"self": os.getpid(), "parent": os.getppid(),
                  "found": {t.ident: t.matched_by for t in seq.foreign_processes()}}))
"""

_PARENT_SCRIPT = r"""
import subprocess, sys
engine, child = sys.argv[1], sys.argv[2]
sib = subprocess.Popen([engine, "1000"])
try:
    r = subprocess.run([child, str(sib.pid)], capture_output=True, text=True, timeout=60)
    sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)
finally:
    sib.kill(); sib.wait()
"""


def test_llmops_itself_and_its_parents_are_never_targets(tmp_path: Path) -> None:
    """Kills: "llmops itself not protected from kill" (run/kill.py _protected_pids).

    llmops runs as a script named `vllm` under a parent named `text-generation-launcher`
    (both match the engine rule by their program): neither is a target, while the parent's
    other child (an engine sibling) still is."""
    engine = _engine_bin(tmp_path)
    b = engine.parent
    child = b / "vllm"
    child.write_text(f"#!{sys.executable}\n{_SELF_SCRIPT}")
    parent = b / "text-generation-launcher"
    parent.write_text(f"#!{sys.executable}\n{_PARENT_SCRIPT}")
    for f in (child, parent):
        f.chmod(0o755)
    r = subprocess.run(
        [str(parent), str(engine), str(child)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    found = doc["found"]
    assert str(doc["self"]) not in found
    assert str(doc["parent"]) not in found
    assert list(found.values()) == ["program llama-server"]  # the sibling, and only it


def test_a_reused_pid_is_reported_gone_and_not_signalled() -> None:
    """Kills: "PID-reuse check removed" (run/kill.py _stop_processes): a target whose pid now
    belongs to a process started at another time is "gone" and never signalled."""
    p = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        created = psutil.Process(p.pid).create_time()
        stale = KillTarget("process", "vllm", str(p.pid), "program vllm", True, created - 120.0)
        results = KillSequence._stop_processes([stale], grace_s=0.5)
        assert results == [KillResult(stale, "gone", "pid reused by another process")]
        time.sleep(0.1)
        assert p.poll() is None  # still running: not signalled
        same = KillTarget("process", "vllm", str(p.pid), "program vllm", True, created)
        assert [r.outcome for r in KillSequence._stop_processes([same], grace_s=5)] == ["stopped"]
        p.wait(5)  # it exits (psutil already reaped it, so its return code is lost)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ------------------------------------------------------------------ 5. ProxyJump host keys


@pytest.mark.sshd
def test_unknown_jump_host_key_is_refused_without_trust(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path, ssh_user_key: tuple[bytes, str]
) -> None:
    """Kills: "ProxyJump hops trust new host keys" (run/ssh/host.py _proxy_sock): the target is in
    known_hosts, the jump host is not: without --trust-new-host the hop is refused with its
    fingerprint and nothing is recorded; with it, the hop's key is recorded."""
    inner = start_sshd(tmp_path / "inner", [ssh_user_key[1]])
    try:
        ssh_client.trust(inner)  # only the target
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            f"  ProxyJump jump\n"
        )
        logins = sshd_server.log.count("Accepted publickey")
        with pytest.raises(UnknownHostKey) as e:
            open_host("behind").connect()
        assert sshd_server.fingerprint in e.value.message
        assert f"127.0.0.1:{sshd_server.port}" in e.value.message
        assert "--trust-new-host" in (e.value.hint or "")
        assert not llmops_known_hosts().exists()
        assert sshd_server.log.count("Accepted publickey") == logins  # never logged in there
        # asked for: the hop's key is recorded, and the target is reached through it
        with open_host("behind", trust_new_host=True) as h:
            assert h.run("echo via-jump").stdout == "via-jump\n"
        assert (
            llmops_known_hosts()
            .read_text()
            .startswith(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 ")
        )
    finally:
        inner.stop()
