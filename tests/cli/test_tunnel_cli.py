"""`llmops tunnel` end to end through the CLI boundary, with the fake binaries on PATH."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app, deps
from llmops.run.deployments import Deployments
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from tests.tunnel_fakes import endpoint, free_port, install_fake, path_with, read_records

KEY = "sk-llmops-cli-tunnel-key-42"


@pytest.fixture(autouse=True)
def fakes_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, "cloudflared")
    install_fake(bin_dir, "ngrok")
    monkeypatch.setenv("PATH", path_with(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-home" / ".config"))
    monkeypatch.setenv("FAKE_TUNNEL_RECORD", str(tmp_path / "calls.jsonl"))
    for var in ("LLMOPS_API_KEY", "TUNNEL_TOKEN", "CF_TUNNEL_TOKEN", "NGROK_AUTHTOKEN"):
        monkeypatch.delenv(var, raising=False)
    # no Docker here: other sessions' containers on a shared engine are none of these tests' business
    monkeypatch.setattr(
        deps,
        "deployments",
        lambda: Deployments(DeploymentStore(), None, NativeRuntime(DeploymentStore())),
    )
    yield
    CliRunner().invoke(app, ["tunnel", "stop", "--all"])


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_quick_tunnel_prints_url_and_limits_then_ls_and_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    with endpoint(KEY) as ep:
        r = run("tunnel", str(ep.port), "--via", "cloudflared")
        assert r.exit_code == 0, r.output
        url = r.stdout.strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {KEY}"})
        assert urllib.request.urlopen(req, timeout=5).status == 200
        assert "no SLA" in r.stderr and "200 in-flight" in r.stderr and "SSE" in r.stderr
        assert "401 without" in r.stderr and KEY not in r.output
        ls = run("tunnel", "ls", "--json")
        doc = json.loads(ls.stdout)
        assert doc["schema"] == 1
        (t,) = doc["tunnels"]
        assert (t["name"], t["via"], t["port"], t["running"]) == (
            f"port-{ep.port}",
            "cloudflared",
            ep.port,
            True,
        )
        human = run("tunnel", "ls")
        assert f"port-{ep.port}" in human.stdout and "running" in human.stdout
        again = run("tunnel", str(ep.port))
        assert again.exit_code == 1 and "already running" in again.stderr
        stop = run("tunnel", "stop", f"port-{ep.port}", "--json")
        assert json.loads(stop.stdout)["stopped"] == [
            {"name": f"port-{ep.port}", "was_running": True}
        ]
        assert json.loads(run("tunnel", "ls", "--json").stdout)["tunnels"] == []


def test_open_subcommand_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "2abcSECRETtoken")
    with endpoint(KEY) as ep:
        r = run("tunnel", "open", str(ep.port), "--via", "ngrok", "--json")
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["schema"] == 1 and doc["check"]["verdict"] == "ok"
        assert doc["tunnel"]["via"] == "ngrok" and doc["limits"] and "20,000" in doc["limits"][0]
        assert "2abcSECRETtoken" not in r.output and KEY not in r.output


def test_refuses_an_open_endpoint_unless_told() -> None:
    with endpoint(None) as ep:
        r = run("tunnel", str(ep.port))
        assert r.exit_code == 1
        assert "refusing to expose port" in r.stderr and "--allow-public-no-auth" in r.stderr
        assert json.loads(run("tunnel", "ls", "--json").stdout)["tunnels"] == []
        ok = run("tunnel", str(ep.port), "--allow-public-no-auth")
        assert ok.exit_code == 0, ok.output
        assert "exposed anyway" in ok.stderr


def test_named_cloudflared_tunnel_token_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    public = free_port()
    monkeypatch.setenv("FAKE_CLOUDFLARED_PUBLIC_PORT", str(public))
    token_file = tmp_path / "cf.token"
    token_file.write_text("eyJTOKENvalue\n")
    with endpoint(KEY) as ep:
        r = run(
            "tunnel",
            str(ep.port),
            "--hostname",
            f"127.0.0.1:{public}",
            "--cf-token-file",
            str(token_file),
        )
        assert r.exit_code == 0, r.output
        assert r.stdout.strip() == f"http://127.0.0.1:{public}/v1"
        assert "eyJTOKENvalue" not in r.output and "no SLA" not in r.stderr  # not a quick tunnel
        (call,) = read_records(tmp_path / "calls.jsonl")
        assert call["has_token_env"] and not call["token_in_argv"]
    bad = run("tunnel", "8000", "--cf-token-file", str(token_file))
    assert bad.exit_code == 2 and "--hostname" in bad.stderr


def test_usage_and_missing_binary_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r = run("tunnel", "8000", "--via", "carrier-pigeon")
    assert r.exit_code == 2 and "unknown --via" in r.stderr
    r = run("tunnel", "8000", "--via", "ssh")
    assert r.exit_code == 2 and "--ssh-host" in r.stderr
    r = run("tunnel", "no-such-deployment")
    assert r.exit_code == 1 and "no deployment named 'no-such-deployment'" in r.stderr
    r = run("tunnel", "stop", "nope")
    assert r.exit_code == 2 and "no tunnel named 'nope'" in r.stderr
    r = run("tunnel", "stop")
    assert r.exit_code == 2
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    with endpoint(KEY) as ep:
        r = run("tunnel", str(ep.port))
    assert r.exit_code == 1
    assert "error: cloudflared is not installed" in r.stderr and "hint:" in r.stderr
