"""SSH to remote hosts with paramiko: targets, ~/.ssh/config, host keys, exec, port forwards.

This is the only module in llmops that imports ``paramiko`` (lazily, inside functions). It has
two halves:

- **Pure parsing** (no paramiko needed): :func:`parse_target` reads ``user@host[:port]``,
  ``ssh://user@host:port``, an alias, or a pasted ssh command such as the ones vast.ai and RunPod
  show (``ssh -p 41022 root@ssh4.vast.ai -L 8080:localhost:8080``); :func:`resolve` applies an
  OpenSSH config (HostName, User, Port, IdentityFile, ProxyJump, ProxyCommand,
  UserKnownHostsFile, ConnectTimeout) through paramiko's ``SSHConfig``, because paramiko's client
  does not read the config itself (ops.md §3.4).
- **Sessions** (:class:`SshHost`): connect with keys from the agent or files (a passphrase is
  asked for only when stdin is a terminal), check the host key against known_hosts (an unknown
  host is refused with its fingerprint unless ``trust_new_host``; a changed key is always
  refused, ops.md §3.3), run commands with their exit codes (captured or streamed), copy files
  over a plain exec channel (works where SFTP does not), and forward a local port bound to
  127.0.0.1 only (paramiko's ``demos/forward.py`` binds every interface; we do not).

Every paramiko/socket failure becomes an ``llmops.errors.RemoteError`` subclass naming the host,
with a hint.
"""

from __future__ import annotations

import codecs
import contextlib
import getpass
import os
import re
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

from llmops.errors import (
    HostKeyMismatch,
    RemoteCommandError,
    SshAuthError,
    SshConnectError,
    SshTimeout,
    UnknownHostKey,
    UsageError,
)

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")

# --------------------------------------------------------------------------- pure: targets


@dataclass(frozen=True)
class PortForward:
    """A ``-L [bind:]port:host:hostport`` request: local ``port`` → ``host:hostport`` remotely."""

    local_port: int
    remote_host: str
    remote_port: int


@dataclass(frozen=True)
class SshTarget:
    """What the user typed, parsed; not yet combined with ~/.ssh/config."""

    host: str
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    forwards: tuple[PortForward, ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # -o Key=Value, keys lower-cased
    text: str = ""

    def option(self, key: str) -> str | None:
        return next((v for k, v in self.options if k == key.lower()), None)


def _usage(text: str, why: str) -> UsageError:
    return UsageError(
        f"cannot read SSH host {text!r}: {why}",
        "write user@host[:port], an alias from ~/.ssh/config, or paste the ssh command in "
        "quotes, e.g. 'ssh -p 41022 root@ssh4.vast.ai'",
    )


def _port(value: str, text: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise _usage(text, f"{value!r} is not a port number")
    return int(value)


def parse_forward_spec(spec: str) -> PortForward:
    """``[bind:]port:host:hostport`` (ssh -L) → PortForward; the bind address is ignored
    because llmops binds forwards to 127.0.0.1 only.

    Raises:
        UsageError: for anything else.
    """
    parts = re.findall(r"\[[^\]]*\]|[^:]+", spec)
    if len(parts) == 4:
        parts = parts[1:]
    if len(parts) != 3:
        raise _usage(spec, "a -L forward is [bind:]port:host:hostport")
    lport, host, rport = parts
    return PortForward(_port(lport, spec), host.strip("[]"), _port(rport, spec))


def _split_user_host_port(spec: str, text: str) -> tuple[str | None, str, int | None]:
    spec = spec.strip()
    if spec.startswith("ssh://"):
        spec = spec[len("ssh://") :].rstrip("/")
    user: str | None = None
    if "@" in spec:
        user, _, spec = spec.rpartition("@")
        user = user or None
    port: int | None = None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", spec)  # [v6] or [v6]:port
    if m:
        host = m.group(1)
        port = _port(m.group(2), text) if m.group(2) else None
    elif spec.count(":") == 1:
        host, _, p = spec.partition(":")
        port = _port(p, text)
    else:
        host = spec  # a bare name, or an IPv6 address without brackets
    if not host or any(c.isspace() for c in host):
        raise _usage(text, "no host name")
    return user, host, port


# ssh(1) options that take an argument; the ones we use are handled, others are skipped.
_SSH_ARG_OPTS = set("BbcDEeFIiJLlmOoPpQRSWw")


def parse_ssh_command(text: str) -> SshTarget:
    """A pasted ``ssh [options] [user@]host [command]`` line → SshTarget.

    Understood: ``-p PORT``, ``-l USER``, ``-i FILE``, ``-J JUMP``, ``-L SPEC`` (repeatable) and
    ``-o Key=Value`` (Port, User, IdentityFile, ProxyJump; the rest are kept in ``options``).
    A remote command after the host is ignored.
    """
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise _usage(text, str(e)) from None
    if not words or os.path.basename(words[0]) != "ssh":
        raise _usage(text, "not an ssh command")
    user = port = jump = None
    idents: list[str] = []
    forwards: list[PortForward] = []
    options: list[tuple[str, str]] = []
    dest: str | None = None
    i = 1
    while i < len(words):
        w = words[i]
        if w == "--":
            i += 1
            if i < len(words):
                dest = words[i]
            break
        if w.startswith("-") and len(w) > 1:
            flag = w[1]
            if flag in _SSH_ARG_OPTS:
                if len(w) > 2:
                    value = w[2:]
                else:
                    i += 1
                    if i >= len(words):
                        raise _usage(text, f"option {w} needs a value")
                    value = words[i]
                if flag == "p":
                    port = _port(value, text)
                elif flag == "l":
                    user = value
                elif flag == "i":
                    idents.append(value)
                elif flag == "J":
                    jump = value
                elif flag == "L":
                    forwards.append(parse_forward_spec(value))
                elif flag == "o":
                    key, sep, val = value.partition("=")
                    if not sep:
                        key, _, val = value.partition(" ")
                    options.append((key.strip().lower(), val.strip()))
            # flags without a value (-A, -N, -T, -v, -4, ...) are skipped
            i += 1
            continue
        if dest is not None:
            break  # the remote command starts here
        dest = w  # options may follow the destination, as ssh(1) allows
        i += 1
    if dest is None:
        raise _usage(text, "no [user@]host in the ssh command")
    d_user, host, d_port = _split_user_host_port(dest, text)
    opts = dict(options)
    if "port" in opts and port is None:
        port = _port(opts["port"], text)
    if "user" in opts and user is None:
        user = opts["user"]
    if "identityfile" in opts:
        idents.append(opts["identityfile"])
    if "proxyjump" in opts and jump is None:
        jump = opts["proxyjump"]
    return SshTarget(
        host=host,
        user=d_user or user,
        port=port if port is not None else d_port,
        identity_files=tuple(idents),
        proxy_jump=jump,
        forwards=tuple(forwards),
        options=tuple(options),
        text=text.strip(),
    )


def parse_target(text: str) -> SshTarget:
    """``user@host[:port]``, ``ssh://user@host:port``, an alias, or a pasted ssh command.

    Raises:
        UsageError: naming what could not be read.
    """
    text = text.strip()
    if not text:
        raise _usage(text, "empty")
    first = text.split(None, 1)[0]
    if os.path.basename(first) == "ssh" and " " in text:
        return parse_ssh_command(text)
    if any(c.isspace() for c in text):
        raise _usage(text, "spaces are only allowed in a pasted ssh command")
    user, host, port = _split_user_host_port(text, text)
    return SshTarget(host=host, user=user, port=port, text=text)


def known_hosts_name(host: str, port: int) -> str:
    """The name known_hosts files use: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


# --------------------------------------------------------------------------- pure-ish: config


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


def llmops_known_hosts(env: Mapping[str, str] | None = None) -> Path:
    """llmops' own known_hosts, where ``--trust-new-host`` records keys (ops.md §3.3: rented
    hosts come and go and reuse addresses, so keep them out of ~/.ssh/known_hosts)."""
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "llmops"
    )
    return Path(base) / "known_hosts"


def command_line(argv: Sequence[str] | str, env: Mapping[str, str] | None = None) -> str:
    """A POSIX shell command line for ``argv`` (quoted), with ``env NAME=value`` in front."""
    cmd = argv if isinstance(argv, str) else shlex.join(argv)
    if env:
        pre = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        return f"env {pre} {cmd}"
    return cmd


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class ExecResult:
    """A finished remote command."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


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


class SshHost:
    """One SSH session to one host (and its jump hosts). Use as a context manager.

    Args:
        endpoint: from :func:`resolve`.
        trust_new_host: record an unknown host key in llmops' known_hosts instead of refusing.
        known_hosts: llmops' own known_hosts (default ``$LLMOPS_HOME/known_hosts``).
        config: the SSHConfig used for jump hosts' aliases.
        interactive: may we prompt for a key passphrase (default: stdin is a terminal).
        passphrase_prompt: how to ask (default ``getpass.getpass``).
        via: reach this host through a TCP channel of that (already connected) host.
    """

    def __init__(
        self,
        endpoint: SshEndpoint,
        *,
        trust_new_host: bool = False,
        known_hosts: Path | None = None,
        config: Any | None = None,
        interactive: bool | None = None,
        passphrase_prompt: Callable[[str], str] | None = None,
        via: SshHost | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.via = via
        self.trust_new_host = trust_new_host
        self.known_hosts = known_hosts or llmops_known_hosts()
        self.config = config
        self.interactive = _is_interactive() if interactive is None else interactive
        self._prompt = passphrase_prompt or getpass.getpass
        self._client: Any | None = None
        self._jumps: list[SshHost] = []
        self.recorded_new_key: str | None = None  # fingerprint recorded by trust_new_host

    # ---- lifecycle

    @property
    def label(self) -> str:
        return self.endpoint.label

    def __enter__(self) -> SshHost:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        for j in reversed(self._jumps):
            j.close()
        self._jumps = []

    @property
    def transport(self) -> Any:
        if self._client is None:
            self.connect()
        assert self._client is not None
        t = self._client.get_transport()
        if t is None or not t.is_active():
            raise SshConnectError(
                f"the SSH session to {self.label} is closed", "run the command again"
            )
        return t

    def connect(self) -> SshHost:
        """Open the session (idempotent). Raises a RemoteError subclass on any failure."""
        if self._client is not None:
            return self
        import paramiko

        _quiet_paramiko_logs()

        ep = self.endpoint
        sock = self._proxy_sock()
        client = paramiko.SSHClient()
        for f in self._read_known_hosts_files():
            with contextlib.suppress(OSError, paramiko.SSHException):
                client.load_system_host_keys(f)
        own = self.known_hosts
        if own.exists():
            try:
                client.load_host_keys(str(own))
            except (OSError, paramiko.SSHException) as e:
                raise SshConnectError(
                    f"cannot read llmops' known_hosts {own}: {e}",
                    f"fix or remove the bad line in {own}",
                ) from e
        client.set_missing_host_key_policy(cast(Any, _TrustPolicy(self)))
        plan = self._auth_plan()
        try:
            client.connect(
                ep.hostname,
                port=ep.port,
                username=ep.user,
                timeout=ep.connect_timeout_s,
                banner_timeout=ep.connect_timeout_s,
                auth_timeout=ep.connect_timeout_s,
                channel_timeout=ep.connect_timeout_s,
                sock=sock,
                auth_strategy=cast(Any, _Strategy(self, plan)),
            )
        except (UnknownHostKey, HostKeyMismatch, UsageError):
            client.close()
            self.close()
            raise
        except Exception as e:
            client.close()
            self.close()
            raise self._translate(e, plan) from e
        t = client.get_transport()
        if t is not None:
            t.set_keepalive(30)
        self._client = client
        return self

    def _read_known_hosts_files(self) -> list[str]:
        files = list(self.endpoint.known_hosts_files)
        if not files:
            home = os.environ.get("HOME") or os.path.expanduser("~")
            files = [os.path.join(home, ".ssh", "known_hosts")]
        return [f for f in files if os.path.isfile(f)]

    def _proxy_sock(self) -> Any | None:
        ep = self.endpoint
        if ep.proxy_jump:
            hops = [h.strip() for h in ep.proxy_jump.split(",") if h.strip()]
            prev: SshHost | None = None
            for i, hop_text in enumerate(hops):
                hop_ep = resolve(parse_target(hop_text), self.config)
                if i > 0:
                    hop_ep = replace(hop_ep, proxy_jump=None, proxy_command=None)
                hop = SshHost(
                    hop_ep,
                    trust_new_host=self.trust_new_host,
                    known_hosts=self.known_hosts,
                    config=self.config,
                    interactive=self.interactive,
                    passphrase_prompt=self._prompt,
                    via=prev,
                )
                hop.connect()
                self._jumps.append(hop)
                prev = hop
            assert prev is not None
            return prev.open_tcp(ep.hostname, ep.port)
        if self.via is not None:
            return self.via.open_tcp(ep.hostname, ep.port)
        if ep.proxy_command:
            import paramiko

            cmd = ep.proxy_command.replace("%h", ep.hostname).replace("%p", str(ep.port))
            cmd = cmd.replace("%r", ep.user).replace("%%", "%")
            return paramiko.ProxyCommand(cmd)
        return None

    def open_tcp(self, host: str, port: int) -> Any:
        """A ``direct-tcpip`` channel from this host to ``host:port`` (for jumps and forwards)."""
        try:
            return self.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=10
            )
        except Exception as e:
            raise SshConnectError(
                f"{self.label} could not open a TCP connection to {host}:{port}: {e}",
                f"check that something listens on {host}:{port} as seen from {self.label}, and "
                "that its sshd allows TCP forwarding (AllowTcpForwarding)",
            ) from e

    def _auth_plan(self) -> _AuthPlan:
        ep = self.endpoint
        # IdentityFile entries that do not exist are skipped, as ssh does.
        files = [f for f in ep.identity_files if os.path.isfile(f)]
        if not ep.identities_only or not files:
            home = os.environ.get("HOME") or os.path.expanduser("~")
            for name in DEFAULT_IDENTITIES:
                p = os.path.join(home, ".ssh", name)
                if os.path.isfile(p) and p not in files:
                    files.append(p)
        return _AuthPlan(agent=not ep.identities_only, files=files)

    def _translate(self, e: BaseException, plan: _AuthPlan) -> Exception:
        import paramiko

        ep = self.endpoint
        if isinstance(e, paramiko.BadHostKeyException):
            return self._mismatch(e)
        if isinstance(e, paramiko.AuthenticationException):
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
            return SshAuthError(
                f"{ep.label} rejected authentication as {ep.user} (tried: {tried})", hint
            )
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
            return SshConnectError(
                f"SSH to {ep.label} failed: {msg}", "run again with --debug for details"
            )
        if isinstance(e, OSError):
            return SshConnectError(
                f"cannot connect to {ep.label}: {e.strerror or e}",
                "check the address and your network",
            )
        if isinstance(e, (SshConnectError, SshAuthError)):
            return e
        return SshConnectError(f"SSH to {ep.label} failed: {type(e).__name__}: {e}", None)

    def _files_holding(self, name: str) -> list[str]:
        import paramiko

        out = []
        for f in [*self._read_known_hosts_files(), str(self.known_hosts)]:
            with contextlib.suppress(Exception):
                if os.path.isfile(f) and paramiko.HostKeys(f).lookup(name) is not None:
                    out.append(f)
        return out

    def _mismatch(self, e: Any) -> HostKeyMismatch:
        ep = self.endpoint
        name = ep.known_hosts_name
        files = self._files_holding(name) or [str(self.known_hosts)]
        fix = " && ".join(f"ssh-keygen -R '{name}' -f {f}" for f in files)
        return HostKeyMismatch(
            f"host key of {ep.label} CHANGED: known_hosts has {e.expected_key.get_name()} "
            f"{e.expected_key.fingerprint}, the host now presents {e.key.get_name()} "
            f"{e.key.fingerprint}; refusing to connect",
            f"if the host was re-created (vast.ai and RunPod reuse addresses), remove the old "
            f"key with `{fix}`, then connect with --trust-new-host; otherwise someone may be "
            f"intercepting the connection",
        )

    # ---- exec

    def _open_session(self, cmd: str) -> Any:
        try:
            chan = self.transport.open_session(timeout=self.endpoint.connect_timeout_s)
            chan.exec_command(cmd)
        except (SshConnectError, SshAuthError):
            raise
        except Exception as e:
            raise SshConnectError(
                f"{self.label} refused to run a command: {e}",
                "the account may be limited to an interactive shell (RunPod's basic proxy "
                "ssh.runpod.io is): use the host's public IP and port instead",
            ) from e
        return chan

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = 120.0,
    ) -> ExecResult:
        """Run a command, wait for it, and return its exit code and output."""
        cmd = command_line(argv, env)
        chan = self._open_session(cmd)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            code = self._pump(chan, out.append, err.append, timeout_s, cmd)
        finally:
            chan.close()
        return ExecResult(
            code,
            b"".join(out).decode("utf-8", "replace"),
            b"".join(err).decode("utf-8", "replace"),
        )

    def stream(
        self,
        argv: Sequence[str] | str,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Run a command, copying its stdout/stderr to ours as it comes; return its exit code.

        Ctrl-C closes the channel (the remote command gets SIGPIPE/EOF) and re-raises.
        """
        cmd = command_line(argv, env)
        chan = self._open_session(cmd)
        dec_out = codecs.getincrementaldecoder("utf-8")("replace")
        dec_err = codecs.getincrementaldecoder("utf-8")("replace")

        def to(target: str, dec: Any) -> Callable[[bytes], None]:
            def write(data: bytes) -> None:
                f = (stdout or sys.stdout) if target == "out" else (stderr or sys.stderr)
                f.write(dec.decode(data))
                f.flush()

            return write

        try:
            chan.shutdown_write()
            return self._pump(chan, to("out", dec_out), to("err", dec_err), timeout_s, cmd)
        finally:
            chan.close()

    def _pump(
        self,
        chan: Any,
        on_out: Callable[[bytes], None],
        on_err: Callable[[bytes], None],
        timeout_s: float | None,
        cmd: str,
    ) -> int:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            progressed = False
            while chan.recv_ready():
                on_out(chan.recv(65536))
                progressed = True
            while chan.recv_stderr_ready():
                on_err(chan.recv_stderr(65536))
                progressed = True
            # sshd may send the exit status before the last output (it reports the child's exit
            # while the pipe still drains), so finish on EOF or close, not on the status alone.
            drained = not chan.recv_ready() and not chan.recv_stderr_ready()
            if drained and chan.exit_status_ready() and (chan.eof_received or chan.closed):
                break
            if chan.closed and not progressed and drained:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RemoteCommandError(
                    f"`{_short(cmd)}` on {self.label} did not finish within {timeout_s:g} s",
                    "the host may be overloaded; run it by hand with `ssh` to see",
                )
            if not progressed:
                with contextlib.suppress(ValueError, OSError):
                    select.select([chan], [], [], 0.2)
        # drain anything left after the exit status
        while chan.recv_ready():
            on_out(chan.recv(65536))
        while chan.recv_stderr_ready():
            on_err(chan.recv_stderr(65536))
        code = chan.recv_exit_status()
        return 255 if code == -1 else int(code)

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``remote_path`` through ``cat`` on a plain exec channel (no SFTP:
        RunPod's proxy and some images have none)."""
        q = shlex.quote(remote_path)
        r = self.run(
            f"umask 077 && cat > {q}.part && chmod {mode:o} {q}.part && mv -f {q}.part {q}",
            stdin=data,
            timeout_s=600,
        )
        if not r.ok:
            raise RemoteCommandError(
                f"cannot write {remote_path} on {self.label}: {r.stderr.strip() or r.exit_code}",
                "check free space and permissions there (`df -h`, `ls -ld DIR`)",
            )

    def put_file(self, local_path: Path, remote_path: str, *, mode: int = 0o644) -> None:
        self.put_bytes(Path(local_path).read_bytes(), remote_path, mode=mode)

    # ---- forwards

    def forward(
        self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1"
    ) -> LocalForward:
        """Listen on 127.0.0.1:``local_port`` (0: any free port) and carry each connection to
        ``remote_host:remote_port`` as seen from the remote host."""
        return LocalForward(self, remote_host, remote_port, local_port)


def _quiet_paramiko_logs() -> None:
    """paramiko's transport thread logs failures (with tracebacks) that Python's last-resort
    handler would print to stderr; we report them ourselves, once, as RemoteErrors."""
    import logging

    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())


def _short(cmd: str, n: int = 80) -> str:
    return cmd if len(cmd) <= n else cmd[: n - 1] + "…"


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


class _TrustPolicy:
    """Unknown host: refuse with its fingerprint, or (trust_new_host) record it in llmops'
    known_hosts. A changed key never gets here: paramiko raises BadHostKeyException first."""

    def __init__(self, host: SshHost) -> None:
        self.host = host

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        import paramiko

        h = self.host
        if not h.trust_new_host:
            raise UnknownHostKey(
                f"{h.label} is not in known_hosts; it presents {key.get_name()} key "
                f"{key.fingerprint}",
                f"check that fingerprint (vast.ai/RunPod show it in the instance's log), then "
                f"run again with --trust-new-host to record it in {h.known_hosts}",
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = h.known_hosts
        path.parent.mkdir(parents=True, exist_ok=True)
        line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line() or ""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)
        h.recorded_new_key = f"{key.get_name()} {key.fingerprint}"
        sys.stderr.write(
            f"llmops: trusted new host key of {h.label}: {key.get_name()} {key.fingerprint} "
            f"(recorded in {path})\n"
        )


class LocalForward:
    """A local port forward: 127.0.0.1:local_port → remote_host:remote_port via the SSH host.

    Runs its accept loop in a daemon thread; ``close()`` stops it and every open connection.
    """

    def __init__(self, host: SshHost, remote_host: str, remote_port: int, local_port: int) -> None:
        self.host = host
        self.remote_host = remote_host
        self.remote_port = remote_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._server.bind(("127.0.0.1", local_port))
        except OSError as e:
            self._server.close()
            raise UsageError(
                f"cannot listen on 127.0.0.1:{local_port}: {e.strerror or e}",
                "choose another port with --local-port (0 picks a free one)",
            ) from e
        self._server.listen(64)
        self.local_port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self.errors: list[str] = []
        self.connections = 0
        host.transport  # fail now, not on the first connection  # noqa: B018
        t = threading.Thread(target=self._accept_loop, name="llmops-forward", daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def __enter__(self) -> LocalForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._server], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                conn, peer = self._server.accept()
            except OSError:
                return
            try:
                chan = self.host.transport.open_channel(
                    "direct-tcpip", (self.remote_host, self.remote_port), peer, timeout=10
                )
            except Exception as e:
                self.errors.append(
                    f"{self.host.label} could not reach {self.remote_host}:{self.remote_port}: {e}"
                )
                conn.close()
                continue
            self.connections += 1
            t = threading.Thread(target=self._pipe, args=(conn, chan), daemon=True)
            t.start()

    def _pipe(self, conn: socket.socket, chan: Any) -> None:
        with self._lock:
            self._open.update((conn, chan))
        try:
            relay(conn, chan, self._stop)
        finally:
            with self._lock:
                self._open.discard(conn)
                self._open.discard(chan)

    def alive(self) -> bool:
        t = self.host._client.get_transport() if self.host._client is not None else None
        return not self._stop.is_set() and t is not None and t.is_active()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(Exception):
                    s.close()
        for t in self._threads:
            t.join(timeout=2)


def open_host(
    text: str,
    *,
    trust_new_host: bool = False,
    config_path: Path | None = None,
    interactive: bool | None = None,
) -> SshHost:
    """Parse ``text``, apply ~/.ssh/config, and return a (not yet connected) SshHost."""
    config = load_ssh_config(config_path)
    ep = resolve(parse_target(text), config)
    return SshHost(ep, trust_new_host=trust_new_host, config=config, interactive=interactive)


__all__ = [
    "DEFAULT_PORT",
    "ExecResult",
    "LocalForward",
    "PortForward",
    "SshEndpoint",
    "SshHost",
    "SshTarget",
    "command_line",
    "known_hosts_name",
    "llmops_known_hosts",
    "load_ssh_config",
    "open_host",
    "parse_forward_spec",
    "parse_ssh_command",
    "parse_target",
    "resolve",
    "ssh_config_from_text",
]


def relay(sock: socket.socket, chan: Any, stop: threading.Event | None = None) -> None:
    """Copy bytes both ways between a socket and an SSH channel until either side closes
    (or ``stop`` is set); both are closed on return."""
    try:
        while stop is None or not stop.is_set():
            r, _, _ = select.select([sock, chan], [], [], 0.5)
            if sock in r:
                data = sock.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in r:
                data = chan.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        with contextlib.suppress(Exception):
            chan.close()
        with contextlib.suppress(Exception):
            sock.close()
