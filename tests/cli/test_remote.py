"""`llmops --host H ...`, `llmops forward` and `llmops remote bootstrap` against a real sshd.

The remote is this machine: the repository's venv plays "llmops installed there" (through
LLMOPS_REMOTE_LLMOPS), and root's login without it plays "no llmops" (shell-probe fallback).
"""

from __future__ import annotations

import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import typer.main
from typer.testing import CliRunner

from llmops.cli import app
from llmops.cli.remote import FACTS_ONLY, LOCAL_COMMANDS
from llmops.schemas import load
from tests.support.sshd import (  # noqa: F401  (pytest fixtures)
    Client,
    Sshd,
    ssh_client_fixture,
    ssh_user_key_fixture,
    sshd_server_fixture,
    start_sshd,
)
from tests.support.tmux import terminal

pytestmark = pytest.mark.sshd

SCHEMA = load("doctor")
REPO_LLMOPS = str(Path(sys.executable).parent / "llmops")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def _root_has_llmops() -> bool:
    return (
        bool(shutil.which("llmops", path="/usr/local/bin:/usr/bin:/bin"))
        or Path("/root/.llmops/venv/bin/llmops").exists()
    )


def test_doctor_runs_the_remote_llmops_and_returns_its_json_and_exit_code(
    sshd_server: Sshd, ssh_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssh_client.trust(sshd_server)
    monkeypatch.setenv("LLMOPS_REMOTE_LLMOPS", REPO_LLMOPS)
    r = run("--host", sshd_server.target(), "doctor", "--json", "--offline")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["facts"]["source"] == f"ssh:root@127.0.0.1:{sshd_server.port}"
    assert doc["facts"]["system"]["hostname"] == socket.gethostname()
    # the remote ran with sshd's environment (SetEnv LLMOPS_HOME in the test sshd_config)
    state = next(d for d in doc["facts"]["system"]["disks"] if d["purpose"] == "state")
    assert state["path"] == str(sshd_server.dir / "remote-llmops-home")
    statuses = {c["status"] for c in doc["checks"]}
    assert r.exit_code == (1 if "fail" in statuses else 0)
    assert "not installed" not in r.stderr


def test_remote_exit_code_and_stderr_pass_through(
    sshd_server: Sshd, ssh_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssh_client.trust(sshd_server)
    monkeypatch.setenv("LLMOPS_REMOTE_LLMOPS", REPO_LLMOPS)
    r = run("--host", sshd_server.target(), "doctor", "--check", "gpuz")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == "error: unknown check 'gpuz'"
    assert r.stdout == ""


def test_doctor_without_llmops_probes_with_shell_commands(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    if _root_has_llmops():
        pytest.skip("root has an llmops on its login PATH here, so the fallback is not taken")
    ssh_client.trust(sshd_server)
    r = run("--host", sshd_server.target(), "doctor", "--json", "--offline")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert "llmops is not installed on root@127.0.0.1" in r.stderr
    facts = doc["facts"]
    assert facts["source"] == f"ssh:root@127.0.0.1:{sshd_server.port}"
    assert facts["system"]["hostname"] == socket.gethostname()
    assert facts["system"]["is_root"] is True
    state = next(d for d in facts["system"]["disks"] if d["purpose"] == "state")
    assert state["path"] == str(sshd_server.dir / "remote-llmops-home")
    # The same checks as the local doctor, judged on the remote facts.
    local = json.loads(run("doctor", "--json", "--offline").stdout)
    assert {c["name"] for c in doc["checks"]} == {c["name"] for c in local["checks"]}
    assert facts["nvidia"]["error_kind"] == local["facts"]["nvidia"]["error_kind"]
    assert facts["platform"]["kind"] == local["facts"]["platform"]["kind"]
    assert abs(facts["system"]["ram_total_mib"] - local["facts"]["system"]["ram_total_mib"]) < 64
    assert r.exit_code == (1 if any(c["status"] == "fail" for c in doc["checks"]) else 0)


def test_fit_without_llmops_judges_the_remote_facts_here(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    if _root_has_llmops():
        pytest.skip("root has an llmops on its login PATH here")
    ssh_client.trust(sshd_server)
    r = run("--host", sshd_server.target(), "fit", "smollm2", "--json")
    assert r.exit_code == 0, r.output
    remote = json.loads(r.stdout)
    local = json.loads(run("fit", "smollm2", "--json").stdout)
    assert remote["model"] == local["model"] and remote["engine"] == local["engine"]
    (cpu,) = remote["per_gpu"]
    assert cpu["device"] == "cpu" and cpu["fits"] is True
    assert cpu["name"] == local["per_gpu"][0]["name"]  # the CPU model read over SSH


def test_command_that_needs_llmops_there_says_how_to_install_it(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    if _root_has_llmops():
        pytest.skip("root has an llmops on its login PATH here")
    ssh_client.trust(sshd_server)
    names = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    cmd = next(n for n in sorted(names) if n not in LOCAL_COMMANDS | FACTS_ONLY)
    r = run("--host", sshd_server.target(), cmd)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == (
        f"error: llmops is not installed on root@127.0.0.1:{sshd_server.port}, and `{cmd}` "
        "has to run there"
    )
    assert f"llmops remote bootstrap root@127.0.0.1:{sshd_server.port}" in r.stderr


def test_unknown_host_refused_then_trusted_then_changed_key_refused(
    tmp_path: Path, ssh_client: Client, ssh_user_key: tuple[bytes, str]
) -> None:
    server = start_sshd(tmp_path / "sshd", [ssh_user_key[1]])
    try:
        r = run("--host", server.target(), "doctor", "--check", "system", "--json")
        assert r.exit_code == 1
        assert r.stderr.splitlines()[0] == (
            f"error: root@127.0.0.1:{server.port} is not in known_hosts; it presents "
            f"ssh-ed25519 key {server.fingerprint}"
        )
        assert "--trust-new-host" in r.stderr.splitlines()[1]
        r = run("--host", server.target(), "--trust-new-host", "doctor", "--check", "system")
        assert r.exit_code == 0, r.output
        assert f"trusted new host key of root@127.0.0.1:{server.port}" in r.stderr
        server.new_host_key()
        r = run("--host", server.target(), "--trust-new-host", "doctor", "--check", "system")
        assert r.exit_code == 1
        assert "CHANGED" in r.stderr.splitlines()[0] and server.fingerprint in r.stderr
        assert r.stdout == ""
    finally:
        server.stop()


def test_refused_connection_is_one_line_with_a_hint(ssh_client: Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run("--host", f"root@127.0.0.1:{port}", "doctor")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"error: root@127.0.0.1:{port} refused the connection on port {port}",
        r.stderr.splitlines()[1],
    ]
    assert r.stderr.splitlines()[1].startswith("hint: check that sshd runs there")


def test_bad_host_text_is_a_usage_error() -> None:
    r = run("--host", "root@box:notaport", "doctor")
    assert r.exit_code == 2 and "cannot read SSH host" in r.stderr


# --------------------------------------------------------------------------- forward


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


_FORWARDS: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_forward_left_behind() -> Iterator[None]:
    """Whatever happens in a test, its `llmops forward` processes do not outlive it."""
    yield
    while _FORWARDS:
        proc = _FORWARDS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _forward(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `llmops ... forward` and read the URL it prints (generous: CI machines are busy)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal: a suite started in the background (`cmd &` in a script, as CI
        # runners do) inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _FORWARDS.append(proc)
    assert proc.stdout is not None
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=120)
    url = proc.stdout.readline().strip() if ready else ""
    if not url:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"forward printed no URL: {err}")
    return proc, url


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, str]:
    """Ctrl-C (or ``sig``), then wait: closing the SSH session can take seconds on a loaded
    machine."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"forward did not stop within 60 s of signal {sig}: {err}") from None
    return proc.returncode, err


def test_forward_port_carries_http_requests(
    sshd_server: Sshd, ssh_client: Client, http_port: int
) -> None:
    ssh_client.trust(sshd_server)
    proc, url = _forward(
        "forward", str(http_port), "--host", sshd_server.target(), "--local-port", "0"
    )
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(f":{http_port}")
        for i in range(3):
            with urllib.request.urlopen(f"{url}/v1/models?i={i}", timeout=60) as resp:
                assert json.loads(resp.read()) == {"path": f"/v1/models?i={i}"}
        # loopback only: the forward's port is not bound on other addresses
        port = int(url.rsplit(":", 1)[1])
        listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        if listeners:
            bound = [
                ln.split()[3] for ln in listeners.splitlines() if ln.split()[3].endswith(f":{port}")
            ]
            assert bound == [f"127.0.0.1:{port}"]
    finally:
        code, err = _stop(proc)
    assert code == 0, err
    assert "forward closed after 3 connection(s)" in err


def test_forward_by_deployment_name_reads_its_port_there(
    sshd_server: Sshd, ssh_client: Client, http_port: int
) -> None:
    ssh_client.trust(sshd_server)
    name = f"smol-{uuid.uuid4().hex[:6]}"
    d = sshd_server.dir / "remote-llmops-home" / "deployments" / name
    d.mkdir(parents=True)
    (d / "deployment.json").write_text(
        json.dumps({"name": name, "created_at": "t", "plan": {"ports": [{"host_port": http_port}]}})
    )
    proc, url = _forward("--host", sshd_server.target(), "forward", name, "--local-port", "0")
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=60) as resp:
            assert json.loads(resp.read()) == {"path": "/health"}
    finally:
        code, err = _stop(proc, signal.SIGTERM)  # as `kill PID` or a service manager stops it
    assert code == 0 and f"deployment {name} (port {http_port})" in err
    assert "forward closed after 1 connection(s)" in err
    r = run("forward", "nope", "--host", sshd_server.target())
    assert r.exit_code == 1 and "no deployment 'nope'" in r.stderr


# --------------------------------------------------------------------------- bootstrap


@pytest.fixture
def fresh_user(ssh_user_key: tuple[bytes, str]) -> Iterator[str]:
    """A throwaway Unix account (useradd) whose authorized_keys holds the test key."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a Unix account needs root and useradd")
    name = f"llmt{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name], check=True
    )
    try:
        pw = pwd.getpwnam(name)
        ssh = Path(pw.pw_dir) / ".ssh"
        ssh.mkdir(mode=0o700)
        (ssh / "authorized_keys").write_text(ssh_user_key[1] + "\n")
        for p in (ssh, ssh / "authorized_keys"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        yield name
    finally:
        # sshd's session process may outlive the test by a moment: retry, then force.
        for attempt in range(20):
            force = ["--force"] if attempt == 19 else []
            if subprocess.run(
                ["userdel", *force, "--remove", name], capture_output=True
            ).returncode in (0, 6):
                break
            time.sleep(0.1)


def test_bootstrap_into_a_fresh_account_then_commands_run_there(
    sshd_server: Sshd, ssh_client: Client, fresh_user: str
) -> None:
    ssh_client.trust(sshd_server)
    target = sshd_server.target(fresh_user)
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no system python3 for the fresh account")
    r = run("remote", "bootstrap", target, "--python", "/usr/bin/python3", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["bootstrap"]
    home = pwd.getpwnam(fresh_user).pw_dir
    from llmops import __version__

    assert rep["llmops_path"] == f"{home}/.llmops/venv/bin/llmops"
    assert rep["llmops_version"] == __version__
    assert rep["deps_from"] == "local-environment" and rep["wheels_sent"] > 10
    assert rep["runtime"] in ("docker", "native") and rep["runtime_reason"]
    assert Path(rep["llmops_path"]).stat().st_uid == pwd.getpwnam(fresh_user).pw_uid
    assert "copied" in r.stderr and "runtime:" in r.stderr
    # now `--host` finds it there, without LLMOPS_REMOTE_LLMOPS
    r = run("--host", target, "doctor", "--json", "--offline", "--check", "system")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["facts"]["system"]["is_root"] is False
    assert doc["facts"]["source"] == f"ssh:{fresh_user}@127.0.0.1:{sshd_server.port}"
    assert "not installed" not in r.stderr
    # the human report of a second bootstrap (venv reused, llmops reinstalled)
    r = run("remote", "bootstrap", target, "--python", "/usr/bin/python3")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"llmops {__version__} installed on {target}")
    assert "runtime" in r.stdout


def test_bootstrap_with_a_missing_python_names_it(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    r = run("remote", "bootstrap", sshd_server.target(), "--python", "python9.9")
    assert r.exit_code == 1
    assert f"error: root@127.0.0.1:{sshd_server.port} has no python9.9\n" in r.stderr
    assert "python3-venv" in r.stderr


def test_top_with_host_is_live_here_with_frames_from_there(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path
) -> None:
    """`llmops --host H top`: drawn in this terminal (tmux), refreshed from H's own llmops."""
    ssh_client.trust(sshd_server)
    env = f"env HOME={ssh_client.home} LLMOPS_REMOTE_LLMOPS={REPO_LLMOPS}"
    command = f"{env} {REPO_LLMOPS} --host {sshd_server.target()} top --interval 0.5"
    with terminal(command, tmp_path, "rtop", (160, 30)) as t:
        where = f"127.0.0.1:{sshd_server.port}"
        text = t.wait_for(lambda s: "q quits" in s, 90)
        head = next(ln for ln in text.splitlines() if "llmops top ·" in ln)
        assert where in head, text
        # a frame from there: its deployments table (sshd's LLMOPS_HOME: other tests of this
        # session may have left records) or "no deployments", and its GPU line
        assert "could not read a frame" not in text, text
        assert "GPUs" in text or "GPU " in text, text
        assert "no deployments" in text or "deployment" in text, text

        def redrawn(screen: str) -> bool:
            now = [ln for ln in screen.splitlines() if "llmops top ·" in ln]
            return bool(now) and now[0] != head

        later = t.wait_for(redrawn, 30)
        assert later.count("llmops top ·") == 1 and redrawn(later)  # redrawn in place
        t.press("q")
        assert t.exit_code(30) == "0"
