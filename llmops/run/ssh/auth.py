"""Authentication (agent keys, then key files; a passphrase is asked for only when stdin is a
terminal) and what a failed connection tells the user: every paramiko/socket failure becomes an
``llmops.errors.RemoteError`` subclass naming the host, with a hint."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from llmops.errors import SshAuthError, SshConnectError, SshTimeout

if TYPE_CHECKING:
    from llmops.run.ssh.config import SshEndpoint
    from llmops.run.ssh.host import SshHost

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")


@dataclass
class _KeyAttempt:
    description: str
    outcome: str = "rejected"


@dataclass
class _AuthPlan:
    """Keys to offer: agent first, then files (encrypted ones only when interactive)."""

    agent: bool = True
    files: list[str] = field(default_factory=list)
    tried: list[_KeyAttempt] = field(default_factory=list)
    skipped_encrypted: list[str] = field(default_factory=list)


def _is_interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def auth_plan(endpoint: SshEndpoint) -> _AuthPlan:
    """The keys to offer, as ssh does: IdentityFile entries that exist, then the default
    identities (unless IdentitiesOnly and some IdentityFile exists), and the agent unless
    IdentitiesOnly."""
    ep = endpoint
    # IdentityFile entries that do not exist are skipped, as ssh does.
    files = [f for f in ep.identity_files if os.path.isfile(f)]
    if not ep.identities_only or not files:
        home = os.environ.get("HOME") or os.path.expanduser("~")
        for name in DEFAULT_IDENTITIES:
            p = os.path.join(home, ".ssh", name)
            if os.path.isfile(p) and p not in files:
                files.append(p)
    return _AuthPlan(agent=not ep.identities_only, files=files)


class _Strategy:
    """paramiko AuthStrategy (duck-typed, paramiko ≥ 3.2): agent keys, then key files; an
    encrypted file is decrypted with a prompted passphrase only when interactive."""

    def __init__(self, host: SshHost, plan: _AuthPlan) -> None:
        from paramiko.auth_strategy import AuthStrategy

        outer = self

        class Strategy(AuthStrategy):
            def get_sources(self) -> Iterator[Any]:
                return outer._sources()

        self._impl = Strategy(ssh_config=cast(Any, None))
        self.host = host
        self.plan = plan

    def authenticate(self, transport: Any) -> Any:
        return self._impl.authenticate(transport)

    def _sources(self) -> Iterator[Any]:
        import paramiko
        from paramiko.auth_strategy import InMemoryPrivateKey, OnDiskPrivateKey

        user = self.host.endpoint.user
        if self.plan.agent:
            try:
                keys = paramiko.Agent().get_keys()
            except Exception:
                keys = ()
            for k in keys:
                self.plan.tried.append(_KeyAttempt(f"agent {k.get_name()} {k.fingerprint}"))
                yield InMemoryPrivateKey(user, k)
        for path in self.plan.files:
            try:
                pkey = paramiko.PKey.from_path(path)
            except (paramiko.PasswordRequiredException, TypeError) as e:
                # OpenSSH-format keys surface cryptography's "Key is password-protected"
                # TypeError through PKey.from_path; PEM keys raise PasswordRequiredException.
                if isinstance(e, TypeError) and "password" not in str(e).lower():
                    continue
                if not self.host.interactive:
                    self.plan.skipped_encrypted.append(path)
                    continue
                decrypted = self._decrypt(path)
                if decrypted is None:
                    continue
                pkey = decrypted
            except Exception:  # not a key, unsupported type, unreadable: ssh skips those too
                continue
            self.plan.tried.append(_KeyAttempt(path))
            yield OnDiskPrivateKey(user, "ssh-config", Path(path), pkey)

    def _decrypt(self, path: str) -> Any | None:
        import paramiko

        for _ in range(3):
            phrase = self.host._prompt(f"Passphrase for {path}: ")
            try:
                # typeshed says str; cryptography (OpenSSH-format keys) needs bytes
                return paramiko.PKey.from_path(path, phrase.encode())  # type: ignore[arg-type]
            except (paramiko.SSHException, ValueError, TypeError):
                continue
        return None


def _auth_error(ep: SshEndpoint, plan: _AuthPlan) -> SshAuthError:
    tried = ", ".join(a.description for a in plan.tried) or "no keys (none found)"
    hint = (
        f"add your public key to ~{ep.user}/.ssh/authorized_keys on the host (vast.ai: "
        "`vastai attach ssh`; RunPod: the account's SSH keys), or name the key with "
        "`-i` / IdentityFile in ~/.ssh/config"
    )
    if plan.skipped_encrypted:
        hint = (
            f"{', '.join(plan.skipped_encrypted)} need a passphrase and there is no "
            f"terminal to ask it on: load them into your agent with `ssh-add`"
        )
    return SshAuthError(f"{ep.label} rejected authentication as {ep.user} (tried: {tried})", hint)


def _ssh_protocol_error(ep: SshEndpoint, e: BaseException) -> SshConnectError:
    msg = str(e)
    # "Error reading SSH protocol banner" (the transport's banner timeout) or, when
    # start_client's own wait ran out first, "No existing session".
    if "banner" in msg.lower() or "no existing session" in msg.lower():
        return SshTimeout(
            f"{ep.label} accepted the connection on port {ep.port} but did not complete "
            f"the SSH handshake within {ep.connect_timeout_s:g} s",
            "the instance may still be starting (try again in a minute), or the port "
            "belongs to another service: check it (vast.ai: `vastai ssh-url ID`)",
        )
    return SshConnectError(f"SSH to {ep.label} failed: {msg}", "run again with --debug for details")


def connect_error(
    ep: SshEndpoint, e: BaseException, plan: _AuthPlan, mismatch: Callable[[Any], Exception]
) -> Exception:
    """The RemoteError for a failed connection to ``ep`` (``mismatch`` builds a changed host
    key's refusal)."""
    import paramiko

    if isinstance(e, paramiko.BadHostKeyException):
        return mismatch(e)
    if isinstance(e, paramiko.AuthenticationException):
        return _auth_error(ep, plan)
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        return SshConnectError(
            f"{ep.label} refused the connection on port {ep.port}",
            "check that sshd runs there and that the port is right (vast.ai: `vastai ssh-url "
            "ID`; RunPod: the 'SSH over exposed TCP' port)",
        )
    if isinstance(e, ConnectionRefusedError):
        return SshConnectError(
            f"{ep.label} refused the connection on port {ep.port}",
            "check that sshd runs there and that the port is right",
        )
    if isinstance(e, (socket.timeout, TimeoutError)) or "timed out" in str(e).lower():
        return SshTimeout(
            f"{ep.label} did not answer on port {ep.port} within {ep.connect_timeout_s:g} s",
            "check the address and that the instance is running (a stopped vast.ai/RunPod "
            "instance keeps its address but answers nothing); set ConnectTimeout in "
            "~/.ssh/config for slow links",
        )
    if isinstance(e, socket.gaierror):
        return SshConnectError(
            f"cannot resolve the host name {ep.hostname} ({ep.label})",
            "check the spelling, or define the alias in ~/.ssh/config",
        )
    if isinstance(e, paramiko.SSHException):
        return _ssh_protocol_error(ep, e)
    if isinstance(e, OSError):
        return SshConnectError(
            f"cannot connect to {ep.label}: {e.strerror or e}",
            "check the address and your network",
        )
    if isinstance(e, (SshConnectError, SshAuthError)):
        return e
    return SshConnectError(f"SSH to {ep.label} failed: {type(e).__name__}: {e}", None)
