"""A target combined with an OpenSSH config (HostName, User, Port, IdentityFile, IdentitiesOnly,
ProxyJump, ProxyCommand, UserKnownHostsFile, ConnectTimeout) through paramiko's ``SSHConfig``,
because paramiko's client does not read the config itself (ops.md §3.4). No network."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import UsageError
from llmops.run.ssh.target import DEFAULT_PORT, PortForward, SshTarget, _usage, known_hosts_name

DEFAULT_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshEndpoint:
    """A target combined with ~/.ssh/config: everything needed to connect."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: str | None = None
    proxy_command: str | None = None
    known_hosts_files: tuple[str, ...] = ()
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    forwards: tuple[PortForward, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def label(self) -> str:
        """How messages name the host: the alias, with the address when they differ."""
        if self.alias in (self.hostname, self.address, f"{self.user}@{self.hostname}"):
            return self.address
        return f"{self.alias} ({self.address})"

    @property
    def known_hosts_name(self) -> str:
        return known_hosts_name(self.hostname, self.port)


def user_ssh_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".ssh" / "config"


def load_ssh_config(path: Path | None = None) -> Any | None:
    """paramiko ``SSHConfig`` of ``path`` (default ~/.ssh/config); None when there is none."""
    import paramiko

    path = path or user_ssh_config_path()
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as e:  # paramiko raises ConfigParseError and friends
        raise UsageError(
            f"cannot parse {path}: {e}", "fix the line it names, or check with `ssh -G host`"
        ) from e


def ssh_config_from_text(text: str) -> Any:
    import paramiko

    return paramiko.SSHConfig.from_text(text)


def _expand(path: str, home: str) -> str:
    return home + path[1:] if path.startswith("~") else path


def resolve(
    target: SshTarget,
    config: Any | None = None,
    *,
    default_user: str | None = None,
    home: str | None = None,
) -> SshEndpoint:
    """Apply an OpenSSH config to a target. What the target says explicitly wins (as with ssh).

    Args:
        target: from :func:`parse_target`.
        config: a paramiko ``SSHConfig`` (``load_ssh_config()``), or None.
        default_user: the user when neither target nor config names one (default: local user).
        home: for ``~`` in paths (default: $HOME).
    """
    home = home or os.environ.get("HOME") or os.path.expanduser("~")
    o: Mapping[str, Any] = config.lookup(target.host) if config is not None else {}
    opts = dict(target.options)

    def pick(key: str) -> Any:
        return opts.get(key) if key in opts else o.get(key)

    hostname = opts.get("hostname") or o.get("hostname") or target.host
    port_s = target.port or pick("port") or DEFAULT_PORT
    try:
        port = int(port_s)
    except (TypeError, ValueError):
        raise _usage(target.text or target.host, f"port {port_s!r} in ~/.ssh/config") from None
    user = target.user or pick("user") or default_user or getpass.getuser()
    idents = [*target.identity_files]
    cfg_idents = o.get("identityfile") or []
    if isinstance(cfg_idents, str):
        cfg_idents = [cfg_idents]
    idents += [i for i in cfg_idents if i not in idents]
    jump = target.proxy_jump or pick("proxyjump")
    if jump and jump.lower() == "none":
        jump = None
    proxy_cmd = pick("proxycommand")
    if proxy_cmd and proxy_cmd.lower() == "none":
        proxy_cmd = None
    khf = pick("userknownhostsfile")
    kh_files = tuple(_expand(p, home) for p in str(khf).split()) if khf else ()
    timeout_s = DEFAULT_CONNECT_TIMEOUT_S
    ct = pick("connecttimeout")
    if ct and str(ct).isdigit():
        timeout_s = float(ct)
    only = str(pick("identitiesonly") or "no").lower() == "yes"
    return SshEndpoint(
        alias=target.text or target.host,
        hostname=str(hostname),
        port=port,
        user=str(user),
        identity_files=tuple(_expand(p, home) for p in idents),
        identities_only=only,
        proxy_jump=jump,
        proxy_command=proxy_cmd,
        known_hosts_files=kh_files,
        connect_timeout_s=timeout_s,
        forwards=target.forwards,
    )
