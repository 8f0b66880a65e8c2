"""A real OpenSSH server on a loopback port, for the ``--via ssh`` tunnel tests.

Debian's ``openssh-server`` (``/usr/sbin/sshd``) runs in the foreground with a throwaway host
key, a throwaway user key in its own authorized_keys file, ``AllowTcpForwarding yes`` and
``GatewayPorts yes``; the fixture hands out a known_hosts file that pins its host key. Tests
skip without sshd, and FAIL instead when ``LLMOPS_REQUIRE_SSHD=1`` (CI).
"""

from __future__ import annotations

import getpass
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

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    key: Path  # the user's private key
    known_hosts: Path

    @property
    def spec(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llmops-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session", name="sshd")
def sshd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        require_or_skip("LLMOPS_REQUIRE_SSHD", "openssh-server (/usr/sbin/sshd) is not installed")
    d = tmp_path_factory.mktemp("sshd")
    host_key, user_key = d / "host_ed25519", d / "user_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    auth = d / "authorized_keys"
    auth.write_text((d / "user_ed25519.pub").read_text())
    auth.chmod(0o600)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {d / 'sshd.pid'}",
                f"AuthorizedKeysFile {auth}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                "GatewayPorts yes",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            log.close()
            require_or_skip(
                "LLMOPS_REQUIRE_SSHD",
                f"sshd did not start: {(d / 'sshd.log').read_text(errors='replace')[-500:]}",
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                log.close()
                require_or_skip("LLMOPS_REQUIRE_SSHD", "sshd did not listen within 10 s")
            time.sleep(0.05)
    pub = (d / "host_ed25519.pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    try:
        yield Sshd("127.0.0.1", port, getpass.getuser(), user_key, known)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
