"""Tunnels with real processes: fake cloudflared/ngrok on PATH, a real sshd, real HTTP through them."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llmops.errors import (
    TunnelExists,
    TunnelStartError,
    TunnelToolMissing,
    TunnelUnprotected,
    TunnelUnreachable,
    UnknownHostKey,
)
from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
from llmops.run.deployments import Deployments
from llmops.run.native import NativeRuntime
from llmops.run.ssh import llmops_known_hosts, open_host
from llmops.run.state import DeploymentStore
from llmops.run.tunnels import TunnelManager, TunnelSpec, open_tunnel, resolve_target
from llmops.run.up import pick_port, up
from tests.support.sshd import new_key
from tests.support.tunnel_fakes import endpoint, free_port, install_fake, path_with, read_records
from tests.support.tunnel_sshd import Sshd, sshd_fixture  # noqa: F401 - the `sshd` fixture

KEY = "sk-llmops-test-key-0123456789"


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, "cloudflared")
    install_fake(bin_dir, "ngrok")
    return {
        **os.environ,
        "PATH": path_with(bin_dir),
        "HOME": str(tmp_path / "user-home"),  # no real ngrok config is read
        "XDG_CONFIG_HOME": str(tmp_path / "user-home" / ".config"),
        "FAKE_TUNNEL_RECORD": str(tmp_path / "calls.jsonl"),
    }


@pytest.fixture
def manager(tmp_path: Path, fake_env: dict[str, str]) -> Iterator[TunnelManager]:
    m = TunnelManager(tmp_path / "home", fake_env)
    yield m
    for rec in m.records():
        m.stop(rec.name, 2)


def get(url: str, key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_cloudflared_quick_tunnel_forwards_and_stops(
    manager: TunnelManager, tmp_path: Path
) -> None:
    with endpoint(KEY) as ep:
        opened = open_tunnel(manager, TunnelSpec("port-x", ep.port, "cloudflared"), KEY)
        rec = opened.record
        assert opened.check.verdict == "ok"
        assert (opened.check.with_key_status, opened.check.without_key_status) == (200, 401)
        assert rec.url and rec.url != ep.url  # the fake's edge, not the endpoint itself
        status, body = get(rec.url + "/v1/models", KEY)
        assert status == 200 and b"smollm2-135m" in body
        assert get(rec.url + "/v1/models")[0] == 401
        assert ("/v1/models", None) in ep.hits and ("/v1/models", f"Bearer {KEY}") in ep.hits
        assert os.getpgid(rec.pid) == rec.pid  # its own session/process group
        (call,) = read_records(tmp_path / "calls.jsonl")
        argv = call["argv"]
        assert isinstance(argv, list)
        assert argv[1:4] == ["tunnel", "--no-autoupdate", "--metrics"]
        assert argv[4].startswith("127.0.0.1:") and argv[5:] == [
            "--url",
            f"http://127.0.0.1:{ep.port}",
        ]
        doc = json.loads((tmp_path / "home" / "tunnels" / "port-x.json").read_text())
        assert doc["pid"] == rec.pid and doc["url"] == rec.url and doc["api_addr"] == argv[4]
        assert "Your quick Tunnel has been created" in Path(rec.log).read_text()
        with pytest.raises(TunnelExists):
            manager.start(TunnelSpec("port-x", ep.port, "cloudflared"))
        assert [s.running for s in manager.status()] == [True]
        assert manager.stop("port-x", 5)
        assert gone(rec.pid)
        assert manager.records() == [] and not manager.stop("port-x")


@pytest.mark.parametrize("mode", ["logonly", "noisy"])
def test_cloudflared_url_from_the_stderr_box(
    manager: TunnelManager, fake_env: dict[str, str], mode: str
) -> None:
    manager.env["FAKE_CLOUDFLARED_MODE"] = mode
    with endpoint(KEY) as ep:
        rec = open_tunnel(manager, TunnelSpec("t", ep.port, "cloudflared"), KEY).record
        assert rec.url and rec.url.startswith("http://127.0.0.1:")
        assert "api.trycloudflare.com" not in rec.url
        assert get(rec.url + "/v1/models", KEY)[0] == 200


def test_cloudflared_failure_shows_its_log(manager: TunnelManager) -> None:
    manager.env["FAKE_CLOUDFLARED_MODE"] = "fail"
    with endpoint(KEY) as ep, pytest.raises(TunnelStartError) as e:
        open_tunnel(manager, TunnelSpec("t", ep.port, "cloudflared"), KEY)
    assert (
        "exited with code 1" in e.value.message
        and "failed to request quick Tunnel" in e.value.message
    )
    assert manager.records() == []


def test_named_cloudflared_tunnel_keeps_the_token_out_of_argv(
    manager: TunnelManager, tmp_path: Path
) -> None:
    public = free_port()
    manager.env["FAKE_CLOUDFLARED_PUBLIC_PORT"] = str(public)
    token = "eyJhIjoiZmFrZS10dW5uZWwtdG9rZW4ifQ"
    with endpoint(KEY) as ep:
        spec = TunnelSpec(
            "named", ep.port, "cloudflared", cf_token=token, cf_hostname=f"127.0.0.1:{public}"
        )
        rec = open_tunnel(manager, spec, KEY).record
        assert rec.url == f"http://127.0.0.1:{public}" and rec.named
        (call,) = read_records(tmp_path / "calls.jsonl")
        assert call["has_token_env"] and not call["token_in_argv"]
        assert token not in Path(rec.log).read_text()
        assert token not in (tmp_path / "home" / "tunnels" / "named.json").read_text()
        assert get(rec.url + "/v1/models", KEY)[0] == 200


@pytest.mark.parametrize("api", ["endpoints", "tunnels"])
def test_ngrok_both_agent_apis(manager: TunnelManager, tmp_path: Path, api: str) -> None:
    manager.env["FAKE_NGROK_API"] = api
    manager.env["NGROK_AUTHTOKEN"] = "2abcTOKENxyz_ngrok"
    with endpoint(KEY) as ep:
        rec = open_tunnel(manager, TunnelSpec("ng", ep.port, "ngrok"), KEY).record
        assert rec.url and get(rec.url + "/v1/models", KEY)[0] == 200
        (call,) = read_records(tmp_path / "calls.jsonl")
        assert call["has_token"] and not call["token_in_argv"]
        assert call["config_modes"] == ["0o600"]
        assert rec.api_addr and rec.api_addr != "127.0.0.1:4040"  # its own port: parallel-safe
        assert manager.stop("ng", 5) and gone(rec.pid)
        assert not (tmp_path / "home" / "tunnels" / "ng.ngrok.yml").exists()


def test_ngrok_reads_the_users_config_and_reports_a_missing_authtoken(
    manager: TunnelManager, tmp_path: Path
) -> None:
    with endpoint(KEY) as ep:
        with pytest.raises(TunnelStartError) as e:
            manager.start(TunnelSpec("ng", ep.port, "ngrok"))
        assert "no authtoken" in e.value.message and "add-authtoken" in (e.value.hint or "")
        cfg = Path(manager.env["XDG_CONFIG_HOME"]) / "ngrok" / "ngrok.yml"
        cfg.parent.mkdir(parents=True)
        cfg.write_text('version: "3"\nagent:\n  region: eu\n')  # a config without a token
        with pytest.raises(TunnelStartError) as e:
            manager.start(TunnelSpec("ng", ep.port, "ngrok"))
        assert "ERR_NGROK_4018" in e.value.message and "add-authtoken" in (e.value.hint or "")
        cfg.write_text('version: "3"\nagent:\n  authtoken: 2abcFROMCONFIG\n')
        rec = open_tunnel(manager, TunnelSpec("ng", ep.port, "ngrok"), KEY).record
        calls = read_records(tmp_path / "calls.jsonl")
        assert calls[-1]["configs"] == [
            str(cfg),
            str(tmp_path / "home" / "tunnels" / "ng.ngrok.yml"),
        ]
        assert rec.url and get(rec.url + "/v1/models", KEY)[0] == 200


def test_refuses_an_endpoint_without_auth(manager: TunnelManager, tmp_path: Path) -> None:
    with endpoint(None) as ep:
        with pytest.raises(TunnelUnprotected) as e:
            open_tunnel(manager, TunnelSpec("open", ep.port, "cloudflared"), None)
        assert "--allow-public-no-auth" in (e.value.hint or "")
        assert (
            manager.records() == [] and read_records(tmp_path / "calls.jsonl") == []
        )  # never started
        with pytest.raises(TunnelUnprotected):  # a key that the endpoint ignores changes nothing
            open_tunnel(manager, TunnelSpec("open", ep.port, "cloudflared"), KEY)
        opened = open_tunnel(
            manager, TunnelSpec("open", ep.port, "cloudflared"), None, allow_public_no_auth=True
        )
        assert opened.check.verdict == "unprotected-allowed"
        assert get(opened.record.url + "/v1/models")[0] == 200


def test_nothing_listening_is_refused_before_starting(manager: TunnelManager) -> None:
    with pytest.raises(TunnelUnreachable):
        open_tunnel(manager, TunnelSpec("none", free_port(), "cloudflared"), KEY)
    assert manager.records() == []


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty"), "NGROK_AUTHTOKEN": "x"}
    m = TunnelManager(tmp_path / "home", env)
    with pytest.raises(TunnelToolMissing) as e:
        m.start(TunnelSpec("t", 1234, "cloudflared"))
    assert "cloudflared is not installed" in e.value.message
    assert "github.com/cloudflare/cloudflared/releases" in (e.value.hint or "")
    with pytest.raises(TunnelToolMissing) as e:
        m.start(TunnelSpec("t", 1234, "ngrok"))
    assert "ngrok.com/download" in (e.value.hint or "")


@pytest.mark.sshd
def test_ssh_reverse_forward_through_a_real_sshd(manager: TunnelManager, sshd: Sshd) -> None:
    with endpoint(KEY) as ep:
        spec = TunnelSpec(
            "s",
            ep.port,
            "ssh",
            ssh_host=sshd.spec,
            ssh_key=str(sshd.key),
            ssh_known_hosts=str(sshd.known_hosts),
        )
        opened = open_tunnel(manager, spec, KEY)
        url = opened.record.url
        assert url and url.startswith("http://127.0.0.1:") and opened.check.verdict == "ok"
        remote_port = int(url.rsplit(":", 1)[1])
        assert remote_port not in (ep.port, sshd.port)
        # the port is sshd's: find its listener
        owners = {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == remote_port and c.status == "LISTEN"
        }
        assert owners and opened.record.pid not in owners
        for _ in range(3):
            status, body = get(url + "/v1/models", KEY)
            assert status == 200 and b"smollm2-135m" in body
        assert get(url + "/v1/models")[0] == 401
        assert manager.stop("s", 5) and gone(opened.record.pid)


def _refused(manager: TunnelManager, sshd: Sshd, known_hosts: Path) -> TunnelStartError:
    """What refuses an SSH tunnel to ``sshd`` verified with ``known_hosts``."""
    with endpoint(KEY) as ep:
        spec = TunnelSpec(
            "s",
            ep.port,
            "ssh",
            ssh_host=sshd.spec,
            ssh_key=str(sshd.key),
            ssh_known_hosts=str(known_hosts),
        )
        with pytest.raises(TunnelStartError) as e:
            open_tunnel(manager, spec, KEY)
    return e.value


@pytest.mark.sshd
def test_ssh_unknown_host_key_is_refused(
    manager: TunnelManager, sshd: Sshd, tmp_path: Path
) -> None:
    """Refused as `--host` refuses it: the same client (SshHost), the same message, nothing
    recorded in llmops' known_hosts."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    direct = open_host(
        sshd.spec,
        config_path=tmp_path / "no-ssh-config",
        identity_files=[str(sshd.key)],
        known_hosts_files=[str(empty)],
    )
    with pytest.raises(UnknownHostKey) as refused:
        direct.connect()
    e = _refused(manager, sshd, empty)
    assert e.message == f"SSH reverse forward to {sshd.spec} failed: {refused.value.message}"
    assert "is not in known_hosts" in e.message and "ssh-keyscan" in (e.hint or "")
    assert manager.records() == []
    assert not llmops_known_hosts(manager.env).exists()


def _ssh_config(env: dict[str, str], text: str) -> None:
    ssh_dir = Path(env["HOME"]) / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "config").write_text(text)


def _logins(sshd: Sshd) -> int:
    return (
        (sshd.known_hosts.parent / "sshd.log")
        .read_text(errors="replace")
        .count("Accepted publickey")
    )


@pytest.mark.sshd
def test_ssh_host_alias_from_ssh_config(manager: TunnelManager, sshd: Sshd) -> None:
    """``--ssh-host`` is read as ``--host`` is: an alias defined only in ~/.ssh/config, with
    its HostName, Port, User, IdentityFile and UserKnownHostsFile, no other option given."""
    _ssh_config(
        manager.env,
        f"Host tunnel-box\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.key}\n  UserKnownHostsFile {sshd.known_hosts}\n",
    )
    with endpoint(KEY) as ep:
        opened = open_tunnel(manager, TunnelSpec("s", ep.port, "ssh", ssh_host="tunnel-box"), KEY)
        url = opened.record.url
        assert url and url.startswith("http://127.0.0.1:") and opened.check.verdict == "ok"
        assert opened.record.remote == "tunnel-box"
        assert get(url + "/v1/models", KEY)[0] == 200
        assert manager.stop("s", 5) and gone(opened.record.pid)


@pytest.mark.sshd
def test_ssh_host_through_a_proxy_jump(manager: TunnelManager, sshd: Sshd) -> None:
    """A ProxyJump in ~/.ssh/config is followed: two logins (the jump host, then the host)."""
    _ssh_config(
        manager.env,
        f"Host *\n  User {sshd.user}\n  IdentityFile {sshd.key}\n"
        f"  UserKnownHostsFile {sshd.known_hosts}\n"
        f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
        f"Host behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jump\n",
    )
    before = _logins(sshd)
    with endpoint(KEY) as ep:
        opened = open_tunnel(manager, TunnelSpec("s", ep.port, "ssh", ssh_host="behind"), KEY)
        assert opened.check.verdict == "ok"
        assert get(f"{opened.record.url}/v1/models", KEY)[0] == 200
        deadline = time.monotonic() + 5
        while _logins(sshd) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _logins(sshd) == before + 2
        assert manager.stop("s", 5)


@pytest.mark.sshd
def test_ssh_changed_host_key_is_refused(
    manager: TunnelManager, sshd: Sshd, tmp_path: Path
) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {new_key()[1]}\n")
    e = _refused(manager, sshd, other)
    assert "CHANGED" in e.message and "ssh-keygen -R" in (e.hint or "")
    assert manager.records() == []


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


def test_a_deployments_tunnel_uses_its_key_and_stops_with_it(
    tmp_path: Path, fake_env: dict[str, str]
) -> None:
    store = DeploymentStore(tmp_path / "home")
    rt = NativeRuntime(store)
    script = tmp_path / "engine.py"
    script.write_text(SERVER)
    port = pick_port(19300, set())
    opts = LaunchOptions(
        engine="torch", runtime="native", name="dep1", host_port=port, python=sys.executable
    )
    artifact = ModelArtifact(
        model="smollm2-135m",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        quant="fp32",
        format="safetensors",
    )
    plan = dataclasses.replace(
        plan_launch(artifact, opts, None), argv=(sys.executable, str(script), str(port))
    )
    up(plan, rt, store, {"LLMOPS_API_KEY": KEY}, api_key=KEY, timeout_s=30, poll_s=0.1)
    d = Deployments(store, None, rt)
    target = resolve_target("dep1", d, {})
    assert (target.name, target.port, target.deployment, target.api_key) == (
        "dep1",
        port,
        "dep1",
        KEY,
    )
    m = TunnelManager(store.home, fake_env)
    rec = open_tunnel(
        m, TunnelSpec(target.name, target.port, "cloudflared", deployment="dep1"), target.api_key
    ).record
    assert rec.url and get(rec.url + "/v1/models", KEY)[0] == 200
    m.env["NGROK_AUTHTOKEN"] = "2abcTOKEN"
    other = open_tunnel(
        m, TunnelSpec(f"port-{port}", port, "ngrok"), KEY
    ).record  # not tied to dep1
    assert d.stop("dep1", 5)  # `llmops down dep1`
    assert gone(rec.pid) and [r.name for r in m.records()] == [f"port-{port}"]
    assert not gone(other.pid)
    assert m.stop(f"port-{port}", 5)
    with pytest.raises(Exception, match="no deployment named"):
        resolve_target("dep1", d, {})
