"""Real OpenSSH servers for the tests: Debian's /usr/sbin/sshd on loopback ports.

Each server gets its own directory with a throwaway ed25519 host key, its own ``sshd_config``
(``-f``), runs in the foreground (``-D -e``) and listens on 127.0.0.1 only. Clients get a
throwaway user key (in ``authorized_keys``) and a known_hosts line for the server.

Without sshd (or without root, which sshd needs to log users in), tests skip with the reason,
and FAIL instead when ``LLMOPS_REQUIRE_SSHD=1`` (CI sets it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_or_skip

SSHD = os.environ.get("LLMOPS_TEST_SSHD", "/usr/sbin/sshd")


def require_sshd() -> None:
    """Skip (or fail under LLMOPS_REQUIRE_SSHD=1) when a test sshd cannot run here."""
    if not os.path.exists(SSHD):
        require_or_skip(
            "LLMOPS_REQUIRE_SSHD", f"{SSHD} is missing (apt-get install openssh-server)"
        )
    if os.geteuid() != 0:
        require_or_skip("LLMOPS_REQUIRE_SSHD", "sshd tests need root (sshd logs users in)")


def new_key() -> tuple[bytes, str]:
    """A fresh ed25519 key: (OpenSSH private key PEM, ``ssh-ed25519 AAAA...`` public line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    priv = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = k.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return priv, pub.decode()


def fingerprint(pub_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line."""
    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sshd:
    dir: Path
    port: int
    host_pub: str
    proc: subprocess.Popen[bytes] | None = None

    def target(self, user: str = "root") -> str:
        return f"{user}@127.0.0.1:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_pub}\n"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_pub)

    @property
    def log(self) -> str:
        p = self.dir / "sshd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def new_host_key(self) -> None:
        """Replace the host key (a re-created instance on the same address); restart."""
        self.stop()
        priv, pub = new_key()
        key = self.dir / "ssh_host_ed25519_key"
        key.write_bytes(priv)
        key.chmod(0o600)
        self.host_pub = pub
        self.start()

    def start(self) -> None:
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - lives as long as sshd
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}:\n{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer on port {self.port}:\n{self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def start_sshd(directory: Path, authorized_keys: list[str], *, port: int | None = None) -> Sshd:
    """Start an sshd in ``directory`` accepting ``authorized_keys`` (public key lines) for root
    (and, through ``~/.ssh/authorized_keys``, for any user that has the key there)."""
    require_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    priv, pub = new_key()
    key = directory / "ssh_host_ed25519_key"
    key.write_bytes(priv)
    key.chmod(0o600)
    (directory / "authorized_keys").write_text("".join(k.strip() + "\n" for k in authorized_keys))
    port = port or free_port()
    (directory / "remote-llmops-home").mkdir(exist_ok=True)
    (directory / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {key}
PidFile none
AuthorizedKeysFile .ssh/authorized_keys {directory}/authorized_keys
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
PrintMotd no
LogLevel VERBOSE
SetEnv LLMOPS_HOME={directory}/remote-llmops-home
"""
    )
    server = Sshd(dir=directory, port=port, host_pub=pub)
    server.start()
    return server


@dataclass
class Client:
    """A client identity: a HOME with ~/.ssh/id_ed25519 (and optionally known_hosts)."""

    home: Path
    key: Path
    pub: str

    def trust(self, *servers: Sshd) -> None:
        kh = self.home / ".ssh" / "known_hosts"
        with kh.open("a") as f:
            for s in servers:
                f.write(s.known_hosts_line)

    def ssh_config(self, text: str) -> Path:
        p = self.home / ".ssh" / "config"
        p.write_text(text)
        return p


def make_client(home: Path, priv: bytes, pub: str) -> Client:
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    key = ssh / "id_ed25519"
    key.write_bytes(priv)
    key.chmod(0o600)
    (ssh / "id_ed25519.pub").write_text(pub + "\n")
    return Client(home=home, key=key, pub=pub)


def sshd_available() -> bool:
    return os.path.exists(SSHD) and os.geteuid() == 0 and shutil.which("sh") is not None


# --------------------------------------------------------------------------- fixtures
# Imported by tests/run/conftest.py and by the CLI test modules that need a real sshd; the
# functions have other names than their fixtures so a test's parameters do not shadow them.
SSHD_FIXTURES = ("ssh_user_key_fixture", "sshd_server_fixture", "ssh_client_fixture")


@pytest.fixture(scope="session", name="ssh_user_key")
def ssh_user_key_fixture() -> tuple[bytes, str]:
    """One throwaway client key for the session: (private PEM, public line)."""
    return new_key()


@pytest.fixture(scope="session", name="sshd_server")
def sshd_server_fixture(
    tmp_path_factory: pytest.TempPathFactory, ssh_user_key: tuple[bytes, str]
) -> Iterator[Sshd]:
    """A real sshd on a free loopback port that accepts the session's user key (for root)."""
    require_sshd()
    server = start_sshd(tmp_path_factory.mktemp("sshd"), [ssh_user_key[1]])
    yield server
    server.stop()


@pytest.fixture(name="ssh_client")
def ssh_client_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_user_key: tuple[bytes, str]
) -> Client:
    """HOME with the user key as ~/.ssh/id_ed25519, no agent; known_hosts left empty."""
    home = tmp_path / "home"
    client = make_client(home, *ssh_user_key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("LLMOPS_REMOTE_LLMOPS", raising=False)
    return client
