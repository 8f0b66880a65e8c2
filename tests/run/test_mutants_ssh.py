"""SSH trust, pinned where the mutation benchmark found no test (benchmarks/MUTATION.md): how a
target and ~/.ssh/config become an endpoint (what wins, ``none``, ``~``), which known_hosts
files are read, what an unknown key does with and without ``--trust-new-host``, and what a
changed key's refusal tells the user.

Real paramiko objects and real files; real ed25519 keys (tests/support/sshd.py). The connection itself
is covered against a real sshd in tests/run/test_ssh_real.py.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import threading
import time
from pathlib import Path

import paramiko
import psutil
import pytest

from llmops.errors import SshAuthError, SshConnectError, UnknownHostKey, UsageError
from llmops.run.ssh import (
    SshEndpoint,
    SshHost,
    SshTarget,
    _TrustPolicy,
    llmops_known_hosts,
    open_host,
    parse_target,
    resolve,
    ssh_config_from_text,
)
from tests.support.sshd import Client, Sshd, fingerprint, free_port, new_key, start_sshd


def _key() -> tuple[paramiko.PKey, str]:
    priv, pub = new_key()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(priv.decode())), pub


# ------------------------------------------------------------------ target + config -> endpoint


def test_proxy_jump_and_proxy_command_none_mean_none() -> None:
    cfg = ssh_config_from_text(
        "Host a\n  ProxyJump none\n  ProxyCommand none\nHost *\n  ProxyJump bastion\n"
    )
    ep = resolve(parse_target("a"), cfg, default_user="u", home="/h")
    assert ep.proxy_jump is None and ep.proxy_command is None
    ep2 = resolve(parse_target("b"), cfg, default_user="u", home="/h")
    assert ep2.proxy_jump == "bastion"


def test_proxy_command_is_kept() -> None:
    cfg = ssh_config_from_text("Host c\n  ProxyCommand nc -X 5 -x proxy:1080 %h %p\n")
    ep = resolve(parse_target("c"), cfg, default_user="u", home="/h")
    assert ep.proxy_command == "nc -X 5 -x proxy:1080 c 22"  # paramiko expands %h %p
    assert ep.proxy_jump is None


def test_a_proxy_command_runs_with_host_port_and_user_substituted() -> None:
    ep = SshEndpoint("g", "10.0.0.9", 2222, "root", proxy_command="echo %r@%h:%p 100%%")
    sock = SshHost(ep, known_hosts=Path("/nonexistent/kh"))._proxy_sock()
    try:
        assert isinstance(sock, paramiko.ProxyCommand)
        sock.settimeout(10.0)
        want = b"root@10.0.0.9:2222 100%\n"
        assert sock.recv(len(want)) == want  # what the command printed
    finally:
        sock.close()


def test_no_proxy_means_a_direct_connection() -> None:
    ep = SshEndpoint("g", "10.0.0.9", 2222, "root")
    assert SshHost(ep, known_hosts=Path("/nonexistent/kh"))._proxy_sock() is None


def test_command_line_options_win_over_the_config() -> None:
    cfg = ssh_config_from_text(
        "Host box\n  HostName 10.1.1.1\n  Port 2200\n  User cfg\n  ConnectTimeout 7\n"
        "  UserKnownHostsFile ~/.ssh/a ~/.ssh/b\n"
    )
    t = parse_target(
        "ssh -o HostName=10.9.9.9 -o Port=2300 -o User=opt -o ConnectTimeout=3 "
        "-o UserKnownHostsFile=/k1 box"
    )
    ep = resolve(t, cfg, home="/home/me")
    assert (ep.hostname, ep.port, ep.user) == ("10.9.9.9", 2300, "opt")
    assert ep.connect_timeout_s == 3.0
    assert ep.known_hosts_files == ("/k1",)
    ep2 = resolve(parse_target("box"), cfg, home="/home/me")
    assert ep2.known_hosts_files == ("/home/me/.ssh/a", "/home/me/.ssh/b")
    assert ep2.connect_timeout_s == 7.0 and ep2.port == 2200 and ep2.user == "cfg"


def test_a_proxy_jump_from_the_target_wins() -> None:
    cfg = ssh_config_from_text("Host *\n  ProxyJump cfgjump\n")
    ep = resolve(parse_target("ssh -J me@hop:2222 host"), cfg, default_user="u", home="/h")
    assert ep.proxy_jump == "me@hop:2222"


def test_a_bad_port_in_the_config_is_a_usage_error() -> None:
    cfg = ssh_config_from_text("Host p\n  Port twenty-two\n")
    with pytest.raises(UsageError) as e:
        resolve(parse_target("p"), cfg, default_user="u", home="/h")
    assert e.value.message == "cannot read SSH host 'p': port 'twenty-two' in ~/.ssh/config"
    with pytest.raises(UsageError) as e:  # a target built without its text names the host
        resolve(SshTarget(host="p"), cfg, default_user="u", home="/h")
    assert "cannot read SSH host 'p':" in e.value.message


def test_a_proxy_jump_of_none_on_the_command_line_means_direct() -> None:
    cfg = ssh_config_from_text("Host *\n  ProxyJump bastion\n")
    ep = resolve(parse_target("ssh -J none host"), cfg, default_user="u", home="/h")
    assert ep.proxy_jump is None
    ep2 = resolve(parse_target("ssh -J NONE host"), cfg, default_user="u", home="/h")
    assert ep2.proxy_jump is None
    pc = ssh_config_from_text("Host *\n  ProxyCommand nc %h %p\n")
    ep3 = resolve(parse_target("ssh -o ProxyCommand=none host"), pc, default_user="u", home="/h")
    assert ep3.proxy_command is None


def test_tilde_paths_expand_to_home_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ssh_config_from_text("Host k\n  UserKnownHostsFile ~/.ssh/kh\n")
    monkeypatch.setenv("HOME", "/home/envhome")
    ep = resolve(parse_target("k"), cfg, default_user="u")
    assert ep.known_hosts_files == ("/home/envhome/.ssh/kh",)
    monkeypatch.delenv("HOME")
    ep2 = resolve(parse_target("k"), cfg, default_user="u")
    home = os.path.expanduser("~")
    assert home != "~" and ep2.known_hosts_files == (f"{home}/.ssh/kh",)


def test_a_connect_timeout_that_is_not_a_number_keeps_the_default() -> None:
    cfg = ssh_config_from_text("Host t\n  ConnectTimeout 5s\n")
    ep = resolve(parse_target("t"), cfg, default_user="u", home="/h")
    assert ep.connect_timeout_s == 10.0


def test_identities_only_and_identity_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    cfg = ssh_config_from_text(
        "Host i\n  IdentitiesOnly yes\n  IdentityFile ~/.ssh/cfg_key\n  IdentityFile /abs/key\n"
    )
    ep = resolve(
        parse_target("ssh -i ~/.ssh/mine -i /abs/key i"), cfg, default_user="u", home="/home/me"
    )
    assert ep.identities_only is True
    # the command line's keys first, each once, ~ expanded
    assert ep.identity_files == ("/home/me/.ssh/mine", "/abs/key", "/home/me/.ssh/cfg_key")
    ep2 = resolve(
        parse_target("j"),
        ssh_config_from_text("Host j\n  IdentitiesOnly no\n"),
        home="/h",
        default_user="u",
    )
    assert ep2.identities_only is False and ep2.identity_files == ()


def test_label_names_the_alias_only_when_it_differs() -> None:
    ep = SshEndpoint(alias="root@h", hostname="h", port=22, user="root")
    assert ep.label == "root@h:22"
    assert SshEndpoint(alias="h", hostname="h", port=2, user="u").label == "u@h:2"
    assert SshEndpoint(alias="u@h:2", hostname="h", port=2, user="u").label == "u@h:2"
    assert SshEndpoint(alias="gpu", hostname="h", port=2, user="u").label == "gpu (u@h:2)"


def test_llmops_known_hosts_lives_in_llmops_state() -> None:
    assert llmops_known_hosts({"LLMOPS_HOME": "/srv/llm"}) == Path("/srv/llm/known_hosts")
    assert llmops_known_hosts({"XDG_STATE_HOME": "/st"}) == Path("/st/llmops/known_hosts")
    p = llmops_known_hosts({})
    assert p == Path(os.path.expanduser("~")) / ".local" / "state" / "llmops" / "known_hosts"


# ------------------------------------------------------------------ which known_hosts are read


def test_known_hosts_files_named_in_the_config_replace_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    a = tmp_path / "a"
    a.write_text("")
    ep = SshEndpoint("h", "h", 22, "u", known_hosts_files=(str(a), str(tmp_path / "missing")))
    assert SshHost(ep, known_hosts=tmp_path / "own")._read_known_hosts_files() == [str(a)]
    ep0 = SshEndpoint("h", "h", 22, "u")
    got = SshHost(ep0, known_hosts=tmp_path / "own")._read_known_hosts_files()
    assert got == [str(home / ".ssh" / "known_hosts")]
    (home / ".ssh" / "known_hosts").unlink()
    assert SshHost(ep0, known_hosts=tmp_path / "own")._read_known_hosts_files() == []


# ------------------------------------------------------------------ an unknown host key


def test_an_unknown_key_is_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    key, pub = _key()
    own = tmp_path / "state" / "known_hosts"
    host = SshHost(SshEndpoint("gpu", "10.0.0.9", 2222, "root"), known_hosts=own)
    client = paramiko.SSHClient()
    with pytest.raises(UnknownHostKey) as e:
        _TrustPolicy(host).missing_host_key(client, "[10.0.0.9]:2222", key)
    assert fingerprint(pub) in e.value.message and "gpu (root@10.0.0.9:2222)" in e.value.message
    assert "--trust-new-host" in (e.value.hint or "") and str(own) in (e.value.hint or "")
    assert not own.exists()
    assert client.get_host_keys().lookup("[10.0.0.9]:2222") is None
    assert host.recorded_new_key is None


def test_trust_new_host_records_the_key_in_llmops_known_hosts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = _key()
    key2, pub2 = _key()
    own = tmp_path / "state" / "known_hosts"
    host = SshHost(
        SshEndpoint("gpu", "10.0.0.9", 2222, "root"), known_hosts=own, trust_new_host=True
    )
    client = paramiko.SSHClient()
    _TrustPolicy(host).missing_host_key(client, "[10.0.0.9]:2222", key)
    _TrustPolicy(host).missing_host_key(client, "[10.0.0.8]:22", key2)
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o600
    lines = own.read_text().splitlines()
    assert lines == [
        f"[10.0.0.9]:2222 {pub.split()[0]} {pub.split()[1]}",
        f"[10.0.0.8]:22 {pub2.split()[0]} {pub2.split()[1]}",
    ]
    assert paramiko.HostKeys(str(own)).lookup("[10.0.0.9]:2222") is not None
    assert client.get_host_keys().lookup("[10.0.0.9]:2222") is not None  # this session too
    assert host.recorded_new_key == f"ssh-ed25519 {fingerprint(pub2)}"
    err = capsys.readouterr().err
    assert (
        f"trusted new host key of gpu (root@10.0.0.9:2222): ssh-ed25519 {fingerprint(pub)}" in err
    )
    assert str(own) in err


# ------------------------------------------------------------------ a changed host key


def test_a_changed_key_names_both_fingerprints_and_every_file_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, old_pub = _key()
    new, new_pub = _key()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    entry = f"[10.0.0.9]:2222 {old_pub}\n"
    (home / ".ssh" / "known_hosts").write_text(entry)
    own = tmp_path / "own_known_hosts"
    own.write_text(entry)
    other = tmp_path / "unrelated_known_hosts"
    other.write_text(f"[10.0.0.7]:2222 {old_pub}\n")
    ep = SshEndpoint("gpu", "10.0.0.9", 2222, "root")
    host = SshHost(ep, known_hosts=own)
    err = host._mismatch(paramiko.BadHostKeyException("[10.0.0.9]:2222", new, old))
    assert fingerprint(old_pub) in err.message and fingerprint(new_pub) in err.message
    assert "CHANGED" in err.message and "gpu (root@10.0.0.9:2222)" in err.message
    hint = err.hint or ""
    assert f"ssh-keygen -R '[10.0.0.9]:2222' -f {home / '.ssh' / 'known_hosts'}" in hint
    assert f"ssh-keygen -R '[10.0.0.9]:2222' -f {own}" in hint
    assert str(other) not in hint
    assert "--trust-new-host" in hint
    # llmops' own file, present but without this host, is not named
    own.write_text(f"[10.0.0.7]:2222 {old_pub}\n")
    hint2 = host._mismatch(paramiko.BadHostKeyException("[10.0.0.9]:2222", new, old)).hint or ""
    assert str(own) not in hint2 and str(home / ".ssh" / "known_hosts") in hint2


def test_a_changed_key_known_nowhere_points_at_llmops_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, _ = _key()
    new, _ = _key()
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    own = tmp_path / "own_known_hosts"
    host = SshHost(SshEndpoint("h", "h", 22, "u"), known_hosts=own)
    err = host._mismatch(paramiko.BadHostKeyException("h", new, old))
    assert f"ssh-keygen -R 'h' -f {own}`" in (err.hint or "")


# ------------------------------------------------------------------ against a real sshd


@pytest.mark.sshd
def test_connecting_quiets_paramikos_own_logger(
    ssh_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paramiko's transport thread logs its failures with tracebacks, which Python's last-resort
    handler prints to stderr: llmops gives its logger a handler before the first connection."""
    log = logging.getLogger("paramiko")
    monkeypatch.setattr(log, "handlers", [])
    with pytest.raises(SshConnectError):
        open_host(f"root@127.0.0.1:{free_port()}").connect()
    assert any(isinstance(h, logging.NullHandler) for h in log.handlers)


@pytest.mark.sshd
def test_a_failed_login_behind_a_jump_closes_the_jump(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path
) -> None:
    """The target behind the jump refuses this key (another user's): the jump's session is
    closed and forgotten, not left open behind the error."""
    _priv, other_pub = new_key()
    inner = start_sshd(tmp_path / "inner", [other_pub])
    try:
        ssh_client.trust(sshd_server, inner)
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            "  ProxyJump jump\n"
        )
        h = open_host("behind")
        with pytest.raises(SshAuthError):
            h.connect()
        assert h._jumps == [] and h._client is None
    finally:
        inner.stop()


@pytest.mark.sshd
def test_an_unknown_key_behind_a_jump_closes_the_jump(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path, ssh_user_key: tuple[bytes, str]
) -> None:
    inner = start_sshd(tmp_path / "inner", [ssh_user_key[1]])
    try:
        ssh_client.trust(sshd_server)  # the jump only
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            "  ProxyJump jump\n"
        )
        h = open_host("behind")
        with pytest.raises(UnknownHostKey):
            h.connect()
        assert h._jumps == [] and h._client is None
    finally:
        inner.stop()


@pytest.mark.sshd
def test_two_jumps_in_a_row_ignore_the_second_hops_own_proxy_settings(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path, ssh_user_key: tuple[bytes, str]
) -> None:
    """``ProxyJump jump, mid``: the second hop is reached through the first, whatever its own
    config says (a ProxyJump of its own, here to nowhere, would make the chain fail)."""
    mid = start_sshd(tmp_path / "mid", [ssh_user_key[1]])
    inner = start_sshd(tmp_path / "inner", [ssh_user_key[1]])
    try:
        ssh_client.trust(sshd_server, mid, inner)
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host mid\n  HostName 127.0.0.1\n  Port {mid.port}\n  User root\n"
            f"  ProxyJump root@127.0.0.1:{free_port()}\n"
            f"  ProxyCommand false\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            "  ProxyJump jump , mid\n"
        )
        mid_logins = mid.log.count("Accepted publickey")
        with open_host("behind") as h:
            assert h.run("echo two-hops").stdout == "two-hops\n"
            assert [j.endpoint.port for j in h._jumps] == [sshd_server.port, mid.port]
            assert h._jumps[1].via is h._jumps[0]
            # each session runs inside a direct-tcpip channel of the hop before it
            mid_sock = h._jumps[1].transport.sock
            assert isinstance(mid_sock, paramiko.Channel)
            assert mid_sock.get_transport() is h._jumps[0].transport
            own_sock = h.transport.sock
            assert isinstance(own_sock, paramiko.Channel)
            assert own_sock.get_transport() is h._jumps[1].transport
        assert mid.log.count("Accepted publickey") == mid_logins + 1
    finally:
        inner.stop()
        mid.stop()


@pytest.mark.sshd
def test_the_first_hop_keeps_its_own_proxy_jump(
    sshd_server: Sshd, ssh_client: Client, tmp_path: Path, ssh_user_key: tuple[bytes, str]
) -> None:
    """``ProxyJump mid`` where mid's own config says ``ProxyJump jump``: as with ssh, the first
    hop is reached the way its config says, so we log in at jump too."""
    mid = start_sshd(tmp_path / "mid", [ssh_user_key[1]])
    inner = start_sshd(tmp_path / "inner", [ssh_user_key[1]])
    try:
        ssh_client.trust(sshd_server, mid, inner)
        ssh_client.ssh_config(
            f"Host jump\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
            f"Host mid\n  HostName 127.0.0.1\n  Port {mid.port}\n  User root\n"
            "  ProxyJump jump\n"
            f"Host behind\n  HostName 127.0.0.1\n  Port {inner.port}\n  User root\n"
            "  ProxyJump mid\n"
        )
        jump_logins = sshd_server.log.count("Accepted publickey")
        with open_host("behind") as h:
            assert h.run("echo nested").stdout == "nested\n"
            (first,) = h._jumps
            assert [j.endpoint.port for j in first._jumps] == [sshd_server.port]
        assert sshd_server.log.count("Accepted publickey") == jump_logins + 1
    finally:
        inner.stop()
        mid.stop()


def test_a_key_recorded_into_a_new_state_directory_creates_it(tmp_path: Path) -> None:
    key, pub = _key()
    own = tmp_path / "fresh" / "state" / "ssh" / "known_hosts"  # none of it exists yet
    host = SshHost(
        SshEndpoint("gpu", "10.0.0.9", 2222, "root"), known_hosts=own, trust_new_host=True
    )
    _TrustPolicy(host).missing_host_key(paramiko.SSHClient(), "[10.0.0.9]:2222", key)
    assert own.read_text().split() == ["[10.0.0.9]:2222", *pub.split()[:2]]


def test_a_changed_key_in_two_files_gives_one_command_line_for_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, old_pub = _key()
    new, _ = _key()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    entry = f"[10.0.0.9]:2222 {old_pub}\n"
    (home / ".ssh" / "known_hosts").write_text(entry)
    own = tmp_path / "own_known_hosts"
    own.write_text(entry)
    host = SshHost(SshEndpoint("gpu", "10.0.0.9", 2222, "root"), known_hosts=own)
    err = host._mismatch(paramiko.BadHostKeyException("[10.0.0.9]:2222", new, old))
    user = home / ".ssh" / "known_hosts"
    assert (
        f"ssh-keygen -R '[10.0.0.9]:2222' -f {user} && ssh-keygen -R '[10.0.0.9]:2222' -f {own}"
        in (err.hint or "")
    )


@pytest.mark.sshd
def test_connect_is_idempotent(sshd_server: Sshd, ssh_client: Client) -> None:
    ssh_client.trust(sshd_server)
    logins = sshd_server.log.count("Accepted publickey")
    with open_host(sshd_server.target()) as h:
        assert h.connect() is h
        session = h._client
        assert h.connect() is h and h._client is session  # the same session, no new login
        assert h.run("echo once").stdout == "once\n"
    assert sshd_server.log.count("Accepted publickey") == logins + 1


def test_an_unreadable_llmops_known_hosts_is_a_connect_error_naming_it(tmp_path: Path) -> None:
    own = tmp_path / "known_hosts"
    own.mkdir()  # present but not a file: it cannot be read
    host = SshHost(SshEndpoint("gpu", "127.0.0.1", free_port(), "root"), known_hosts=own)
    with pytest.raises(SshConnectError) as e:
        host.connect()
    assert e.value.message.startswith(f"cannot read llmops' known_hosts {own}: ")
    assert e.value.hint == f"fix or remove the bad line in {own}"


def _live_transports() -> set[paramiko.Transport]:
    return {t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()}


def _connections_to(port: int) -> list[object]:
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    ]


def _left_open(before: set[paramiko.Transport], port: int, wait_s: float = 5.0) -> list[object]:
    """Transports started since ``before`` and connections to ``port`` still open after up to
    ``wait_s`` (paramiko's close() stops the thread without waiting for it to end)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = [*(_live_transports() - before), *_connections_to(port)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.sshd
def test_a_failed_connect_closes_its_session_at_once(sshd_server: Sshd, ssh_client: Client) -> None:
    """The ``client.close()`` after a failed connect (host.py, ``connect``): an unknown host key
    (refused by the trust policy) or a rejected login ends paramiko's transport thread and its
    TCP connection then, not when sshd gives up on the login (LoginGraceTime, 2 minutes): a
    running thread is never collected, so nothing else would close it."""
    before = _live_transports()
    with pytest.raises(UnknownHostKey):
        open_host(sshd_server.target()).connect()
    assert _left_open(before, sshd_server.port) == []

    ssh_client.trust(sshd_server)
    other_priv, other_pub = new_key()  # a key sshd does not accept, in place of the user's
    ssh_client.key.write_bytes(other_priv)
    (ssh_client.key.parent / "id_ed25519.pub").write_text(other_pub + "\n")
    with pytest.raises(SshAuthError):
        open_host(sshd_server.target()).connect()
    assert _left_open(before, sshd_server.port) == []
