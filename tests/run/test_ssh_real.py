"""llmops.run.ssh against a real OpenSSH server: exec, host keys, config, jumps, forwards
(local and reverse)."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.errors import (
    HostKeyMismatch,
    SshAuthError,
    SshConnectError,
    SshTimeout,
    UnknownHostKey,
    UsageError,
)
from llmops.run.ssh import ForwardRefused, SshHost, llmops_known_hosts, open_host
from tests.support.sshd import Client, Sshd, free_port, new_key, start_sshd

pytestmark = pytest.mark.sshd


def test_exec_exit_codes_stdout_stderr_and_stdin(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    with open_host(sshd_server.target()) as h:
        r = h.run(["sh", "-c", 'echo "out $1"; echo err >&2; exit 7', "sh", "a b"])
        assert (r.exit_code, r.stdout, r.stderr) == (7, "out a b\n", "err\n")
        assert h.run("id -un").stdout.strip() == "root"
        assert h.run(["cat"], stdin=b"x" * 200_000).stdout == "x" * 200_000
        env = h.run(["sh", "-c", 'printf %s "$FOO"'], env={"FOO": "it's $here"})
        assert env.stdout == "it's $here"


def test_stream_copies_output_as_it_comes(sshd_server: Sshd, ssh_client: Client) -> None:
    import io

    ssh_client.trust(sshd_server)
    out, err = io.StringIO(), io.StringIO()
    with open_host(sshd_server.target()) as h:
        code = h.stream(
            ["sh", "-c", "printf 'é\\n'; echo warn >&2; exit 3"], stdout=out, stderr=err
        )
    assert (code, out.getvalue(), err.getvalue()) == (3, "é\n", "warn\n")


def test_put_bytes_writes_a_file(sshd_server: Sshd, ssh_client: Client, tmp_path: Path) -> None:
    ssh_client.trust(sshd_server)
    dest = tmp_path / "copied.bin"
    data = os.urandom(3 * 2**20)
    with open_host(sshd_server.target()) as h:
        h.put_bytes(data, str(dest), mode=0o640)
    assert dest.read_bytes() == data and (dest.stat().st_mode & 0o777) == 0o640


def test_unknown_host_is_refused_with_its_fingerprint(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    with pytest.raises(UnknownHostKey) as e:
        open_host(sshd_server.target()).connect()
    assert sshd_server.fingerprint in e.value.message
    assert f"127.0.0.1:{sshd_server.port}" in e.value.message
    assert "--trust-new-host" in (e.value.hint or "")
    assert not llmops_known_hosts().exists()


def test_trust_new_host_records_the_key_then_it_is_known(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    with open_host(sshd_server.target(), trust_new_host=True) as h:
        assert h.run("true").ok
        assert h.recorded_new_key == f"ssh-ed25519 {sshd_server.fingerprint}"
    kh = llmops_known_hosts()
    assert kh.read_text().startswith(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 ")
    assert (kh.stat().st_mode & 0o777) == 0o600
    with open_host(sshd_server.target()) as h:  # known now: no trust needed
        assert h.run("true").ok and h.recorded_new_key is None


def test_changed_host_key_is_refused_even_with_trust(
    tmp_path: Path, ssh_client: Client, ssh_user_key: tuple[bytes, str]
) -> None:
    server = start_sshd(tmp_path / "sshd", [ssh_user_key[1]])
    try:
        with open_host(server.target(), trust_new_host=True) as h:
            assert h.run("true").ok
        old = server.fingerprint
        server.new_host_key()
        for trust in (False, True):
            with pytest.raises(HostKeyMismatch) as e:
                open_host(server.target(), trust_new_host=trust).connect()
            assert old in e.value.message and server.fingerprint in e.value.message
            assert "ssh-keygen -R '[127.0.0.1]:" in (e.value.hint or "")
    finally:
        server.stop()


def test_wrong_key_is_an_auth_error_naming_user_and_keys(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    ssh_client.trust(sshd_server)
    priv, pub = new_key()
    ssh_client.key.write_bytes(priv)
    with pytest.raises(SshAuthError) as e:
        open_host(sshd_server.target()).connect()
    assert "rejected authentication as root" in e.value.message
    assert str(ssh_client.key) in e.value.message
    assert "authorized_keys" in (e.value.hint or "")


def test_encrypted_key_prompts_only_when_interactive(
    sshd_server: Sshd, ssh_client: Client, ssh_user_key: tuple[bytes, str]
) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    ssh_client.trust(sshd_server)
    key = ser.load_ssh_private_key(ssh_user_key[0], password=None)
    ssh_client.key.write_bytes(
        key.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.BestAvailableEncryption(b"s3cret")
        )
    )
    with pytest.raises(SshAuthError) as e:
        open_host(sshd_server.target(), interactive=False).connect()
    assert "ssh-add" in (e.value.hint or "")
    asked: list[str] = []
    h = open_host(sshd_server.target(), interactive=True)
    h._prompt = lambda prompt: asked.append(prompt) or "s3cret"  # type: ignore[func-returns-value]
    with h:
        assert h.run("true").ok
    assert asked == [f"Passphrase for {ssh_client.key}: "]


def test_refused_port_is_a_connect_error(ssh_client: Client) -> None:
    port = free_port()
    with pytest.raises(SshConnectError) as e:
        open_host(f"root@127.0.0.1:{port}").connect()
    assert e.value.message == f"root@127.0.0.1:{port} refused the connection on port {port}"
    assert "sshd" in (e.value.hint or "")


def test_silent_port_is_a_timeout_and_paramiko_prints_nothing(
    ssh_client: Client, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        ssh_client.ssh_config(
            f"Host quiet\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 1\n"
        )
        with pytest.raises(SshTimeout) as e:
            open_host("quiet").connect()
    assert "did not complete the SSH handshake within 1 s" in e.value.message
    assert capfd.readouterr().err == ""


def test_ssh_config_alias_hostname_port_user_identityfile(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    ssh_client.trust(sshd_server)
    other = ssh_client.home / "keys" / "gpu"
    other.parent.mkdir()
    ssh_client.key.rename(other)
    ssh_client.ssh_config(
        f"Host gpu-box\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
        f"  IdentityFile ~/keys/gpu\n"
    )
    with open_host("gpu-box") as h:
        assert h.label == f"gpu-box (root@127.0.0.1:{sshd_server.port})"
        assert h.run("echo ok").stdout == "ok\n"


def test_pasted_vast_command_connects(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    cmd = f"ssh -p {sshd_server.port} root@127.0.0.1 -L 8080:localhost:8080"
    with open_host(cmd) as h:
        assert h.run("echo ok").stdout == "ok\n"
        assert h.endpoint.forwards[0].remote_port == 8080


def test_proxy_jump_through_a_second_sshd(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path, ssh_user_key: tuple[bytes, str]
) -> None:
    inner = start_sshd(tmp_path / "inner", [ssh_user_key[1]])
    try:
        ssh_client.trust(sshd_server, inner)
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            f"  ProxyJump jump\n"
        )
        logins = sshd_server.log.count("Accepted publickey")
        with open_host("behind") as h:
            assert h.run("echo via-jump").stdout == "via-jump\n"
            assert [j.endpoint.port for j in h._jumps] == [sshd_server.port]
        assert sshd_server.log.count("Accepted publickey") == logins + 1  # we logged in there
    finally:
        inner.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


def test_forward_carries_http_and_binds_loopback_only(
    sshd_server: Sshd, ssh_client: Client, http_server: int
) -> None:
    ssh_client.trust(sshd_server)
    with open_host(sshd_server.target()) as h, h.forward(http_server) as fwd:
        assert fwd.local_port != http_server
        assert fwd._server.getsockname()[0] == "127.0.0.1"
        for i in range(5):
            with urllib.request.urlopen(f"{fwd.url}/r{i}", timeout=10) as resp:
                assert resp.read() == f"hello /r{i}".encode()
        assert fwd.connections == 5


def test_forward_to_a_closed_port_reports_it(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    closed = free_port()
    with open_host(sshd_server.target()) as h, h.forward(closed) as fwd:
        with pytest.raises(OSError):
            urllib.request.urlopen(fwd.url, timeout=10).read()
        deadline = __import__("time").monotonic() + 5
        while not fwd.errors and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.05)
        assert f"could not reach 127.0.0.1:{closed}" in fwd.errors[0]


def test_forward_on_a_busy_port_is_a_usage_error(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with open_host(sshd_server.target()) as h, pytest.raises(UsageError) as e:
            h.forward(80, local_port=port)
    assert "--local-port" in (e.value.hint or "")


def test_sshhost_is_reusable_after_close(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    h: SshHost = open_host(sshd_server.target())
    with h:
        assert h.run("true").ok
    with h:
        assert h.run("true").ok


def test_reverse_forward_carries_http_back_here_and_stops_on_close(
    sshd_server: Sshd, ssh_client: Client, http_server: int
) -> None:
    ssh_client.trust(sshd_server)
    with open_host(sshd_server.target()) as h:
        with h.reverse_forward(http_server, bind="127.0.0.1") as rf:
            assert rf.remote_port not in (0, http_server)  # the port sshd chose
            assert rf.alive()
            for i in range(3):
                url = f"http://127.0.0.1:{rf.remote_port}/r{i}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.read() == f"hello /r{i}".encode()
            assert rf.connections == 3 and rf.errors == []
        assert not rf.alive()
        deadline = time.monotonic() + 5  # sshd stops listening once the forward is cancelled
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", rf.remote_port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"sshd still listens on {rf.remote_port} after close()")
        assert h.run("true").ok  # the session itself stays usable


def test_reverse_forward_to_a_closed_local_port_reports_it(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    ssh_client.trust(sshd_server)
    closed = free_port()
    with open_host(sshd_server.target()) as h, h.reverse_forward(closed, bind="127.0.0.1") as rf:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{rf.remote_port}/", timeout=10).read()
        deadline = time.monotonic() + 5
        while not rf.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"cannot reach 127.0.0.1:{closed}" in rf.errors[0]


def test_reverse_forward_on_a_taken_remote_port_is_refused(
    sshd_server: Sshd, ssh_client: Client
) -> None:
    ssh_client.trust(sshd_server)
    with open_host(sshd_server.target()) as h, pytest.raises(ForwardRefused) as e:
        h.reverse_forward(80, remote_port=sshd_server.port, bind="127.0.0.1")  # sshd's own
    assert f"refused to forward its port {sshd_server.port}" in e.value.message
    assert "AllowTcpForwarding" in (e.value.hint or "")
    assert isinstance(e.value, SshConnectError)


def test_open_host_takes_a_key_and_known_hosts_file_like_ssh_i_and_o(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path
) -> None:
    key = tmp_path / "elsewhere" / "key"
    key.parent.mkdir()
    ssh_client.key.rename(key)  # no default identity left in ~/.ssh
    kh = tmp_path / "elsewhere" / "known_hosts"
    kh.write_text(sshd_server.known_hosts_line)  # ~/.ssh/known_hosts stays empty
    with pytest.raises(UnknownHostKey):
        open_host(sshd_server.target(), identity_files=[str(key)]).connect()
    with pytest.raises(SshAuthError):
        open_host(sshd_server.target(), known_hosts_files=[str(kh)]).connect()
    with open_host(
        sshd_server.target(), identity_files=[str(key)], known_hosts_files=[str(kh)]
    ) as h:
        assert h.run("true").ok
