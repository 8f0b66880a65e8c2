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
from tests.support.tunnel_fakes import endpoint, free_port, install_fake, path_with, read_records

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


# ------------------------------------------------------------------ issue 14: audit, bare tunnel

KEYED_ENGINE = """
import http.server, os, sys
port = int(sys.argv[1]); key = os.environ.get("LLMOPS_API_KEY")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _go(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        if self.path != "/health" and self.headers.get("Authorization") != f"Bearer {key}":
            self.send_response(401); self.end_headers(); return
        known = self.path in ("/health", "/v1/models", "/v1/chat/completions")
        self.send_response(200 if known else 404); self.end_headers()
        self.wfile.write(b'{"data":[]}')
    do_GET = do_POST = _go
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def start_deployment(tmp_path: Path, name: str, engine: str = "torch") -> int:
    """A real native deployment (llmops up) of a small keyed server, recorded as ``engine``."""
    import dataclasses
    import sys

    from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
    from llmops.run.up import pick_port, up

    store = DeploymentStore()
    script = tmp_path / f"{name}.py"
    script.write_text(KEYED_ENGINE)
    port = pick_port(19400 + len(store.names()) * 7, set())
    opts = LaunchOptions(
        engine="torch", runtime="native", name=name, host_port=port, python=sys.executable
    )
    artifact = ModelArtifact(
        model="smollm2-135m",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        quant="fp32",
        format="safetensors",
    )
    plan = dataclasses.replace(
        plan_launch(artifact, opts, None),
        argv=(sys.executable, str(script), str(port)),
        engine=engine,
    )
    up(
        plan,
        NativeRuntime(store),
        store,
        {"LLMOPS_API_KEY": KEY},
        api_key=KEY,
        timeout_s=30,
        poll_s=0.1,
    )
    return port


@pytest.fixture
def stop_deployments() -> Iterator[None]:
    yield
    d = Deployments(DeploymentStore(), None, NativeRuntime(DeploymentStore()))
    for name in d.names():
        d.stop(name, 5)


def test_bare_tunnel_with_no_deployment_says_how_to_start_one() -> None:
    r = run("tunnel")
    assert r.exit_code == 2, r.output
    assert "no deployment is running" in r.stderr and "llmops up MODEL" in r.stderr
    assert "Usage:" not in r.output
    r = run("tunnel", "--via", "ngrok")
    assert r.exit_code == 2 and "no deployment is running" in r.stderr


def test_bare_tunnel_exposes_the_one_running_deployment(
    tmp_path: Path, stop_deployments: None
) -> None:
    port = start_deployment(tmp_path, "only1")
    r = run("tunnel")
    assert r.exit_code == 0, r.output
    url = r.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert "exposing deployment only1" in r.stderr and "auditing deployment only1" in r.stderr
    (t,) = json.loads(run("tunnel", "ls", "--json").stdout)["tunnels"]
    assert (t["name"], t["deployment"], t["port"], t["via"]) == (
        "only1",
        "only1",
        port,
        "cloudflared",
    )
    assert KEY not in r.output


def test_bare_tunnel_with_several_lists_them_and_says_how_to_choose(
    tmp_path: Path, stop_deployments: None
) -> None:
    start_deployment(tmp_path, "alpha")
    start_deployment(tmp_path, "beta", engine="tgi")
    r = run("tunnel")
    assert r.exit_code == 2, r.output
    assert "2 deployments are running" in r.stderr
    assert "alpha (torch" in r.stderr and "beta (tgi" in r.stderr
    assert "llmops tunnel alpha" in r.stderr
    assert json.loads(run("tunnel", "ls", "--json").stdout)["tunnels"] == []


def test_audit_names_the_open_routes_and_exits_1() -> None:
    with endpoint(KEY, open_paths=("/v1/chat/completions",)) as ep:
        r = run("audit", ep.url + "/v1")
        assert r.exit_code == 1, r.output
        assert "POST /v1/chat/completions" in r.stdout and "OPEN" in r.stdout
        assert "exposed" in r.stderr and "POST /v1/chat/completions (200)" in r.stderr
        j = run("audit", ep.url, "--json")
        assert j.exit_code == 1
        doc = json.loads(j.stdout)
        assert doc["schema"] == 1 and doc["audit"]["verdict"] == "exposed"
        assert doc["audit"]["open_routes"] == ["POST /v1/chat/completions (200)"]
        rows = {p["method"] + " " + p["path"]: p for p in doc["audit"]["probes"]}
        assert rows["GET /v1/models"]["status"] == 401 and rows["GET /v1/models"]["source"]
        # and the tunnel refuses it (the old /v1/models-only check let it through)
        t = run("tunnel", str(ep.port))
        assert t.exit_code == 1 and "POST /v1/chat/completions (200)" in t.stderr
        assert json.loads(run("tunnel", "ls", "--json").stdout)["tunnels"] == []


def test_audit_passes_a_keyed_endpoint_and_checks_its_input() -> None:
    with endpoint(KEY) as ep:
        r = run("audit", str(ep.port), "--engine", "torch")
        assert r.exit_code == 0, r.output
        assert "protected" in r.stderr and "needs the key" in r.stdout
    assert run("audit", "8000", "--engine", "nope").exit_code == 2
    assert run("audit", "ftp://x").exit_code == 2
    assert run("audit", "70000").exit_code == 2
    r = run("audit", "no-such-deployment")
    assert r.exit_code == 1 and "no deployment named" in r.stderr


def test_tgi_deployments_say_the_key_shows_in_ps(tmp_path: Path, stop_deployments: None) -> None:
    start_deployment(tmp_path, "tgi1", engine="tgi")
    r = run("audit", "tgi1")
    assert r.exit_code == 0, r.output
    assert "auditing deployment tgi1 (tgi routes)" in r.stderr
    assert "POST /generate_stream" in r.stdout and "GET /info" in r.stdout
    said = " ".join(r.stderr.split())
    assert "text-generation-router" in said and "`ps`" in said and "127.0.0.1" in said
    t = run("tunnel", "tgi1", "--json")
    assert t.exit_code == 0, t.output
    doc = json.loads(t.stdout)
    assert doc["audit"]["public"]["verdict"] == "protected"
    assert doc["audit"]["local"]["engine"] == "tgi"
    assert any("text-generation-router" in c for c in doc["caveats"])


@pytest.mark.slow
def test_tunnel_on_the_real_bundled_backend_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 done-when: llmops' own backend with its key goes through the fake cloudflared
    without --allow-public-no-auth (its /v1/models is open, its generating routes are not)."""
    from tests.client.servers import KEY as BACKEND_KEY
    from tests.client.servers import real_backend

    backend = real_backend()
    monkeypatch.setenv("LLMOPS_API_KEY", BACKEND_KEY)
    port = backend.url.rsplit(":", 1)[1]
    r = run("tunnel", port)
    assert r.exit_code == 0, r.output
    assert (
        "exposed anyway" not in r.stderr and "/v1/models: 200 with the key, 200 without" in r.stderr
    )
    a = run("audit", port, "--engine", "torch")
    assert a.exit_code == 0, a.output
