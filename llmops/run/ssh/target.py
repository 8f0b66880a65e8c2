"""What the user typed, read without paramiko: ``user@host[:port]``, ``ssh://user@host:port``,
an alias, or a pasted ssh command such as the ones vast.ai and RunPod show
(``ssh -p 41022 root@ssh4.vast.ai -L 8080:localhost:8080``); plus the shell quoting of remote
commands."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmops.errors import UsageError

DEFAULT_PORT = 22


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


@dataclass
class _Flags:
    """The options of a pasted ssh command that llmops uses (the last -p/-l/-J wins, as in ssh)."""

    user: str | None = None
    port: int | None = None
    jump: str | None = None
    idents: list[str] = field(default_factory=list)
    forwards: list[PortForward] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)

    def take(self, flag: str, value: str, text: str) -> None:
        if flag == "p":
            self.port = _port(value, text)
        elif flag == "l":
            self.user = value
        elif flag == "i":
            self.idents.append(value)
        elif flag == "J":
            self.jump = value
        elif flag == "L":
            self.forwards.append(parse_forward_spec(value))
        elif flag == "o":
            key, sep, val = value.partition("=")
            if not sep:
                key, _, val = value.partition(" ")
            self.options.append((key.strip().lower(), val.strip()))


def _scan(words: list[str], text: str) -> tuple[_Flags, str | None]:
    """The flags and the destination of ``ssh [options] [user@]host [command]`` (words[0] is
    ``ssh``); options may follow the destination, as ssh(1) allows."""
    flags = _Flags()
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
            if w[1] in _SSH_ARG_OPTS:
                if len(w) > 2:
                    value = w[2:]
                else:
                    i += 1
                    if i >= len(words):
                        raise _usage(text, f"option {w} needs a value")
                    value = words[i]
                flags.take(w[1], value, text)
            # flags without a value (-A, -N, -T, -v, -4, ...) are skipped
            i += 1
            continue
        if dest is not None:
            break  # the remote command starts here
        dest = w
        i += 1
    return flags, dest


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
    f, dest = _scan(words, text)
    if dest is None:
        raise _usage(text, "no [user@]host in the ssh command")
    d_user, host, d_port = _split_user_host_port(dest, text)
    opts = dict(f.options)
    if "port" in opts and f.port is None:
        f.port = _port(opts["port"], text)
    if "user" in opts and f.user is None:
        f.user = opts["user"]
    if "identityfile" in opts:
        f.idents.append(opts["identityfile"])
    if "proxyjump" in opts and f.jump is None:
        f.jump = opts["proxyjump"]
    return SshTarget(
        host=host,
        user=d_user or f.user,
        port=f.port if f.port is not None else d_port,
        identity_files=tuple(f.idents),
        proxy_jump=f.jump,
        forwards=tuple(f.forwards),
        options=tuple(f.options),
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


def command_line(argv: Sequence[str] | str, env: Mapping[str, str] | None = None) -> str:
    """A POSIX shell command line for ``argv`` (quoted), with ``env NAME=value`` in front."""
    cmd = argv if isinstance(argv, str) else shlex.join(argv)
    if env:
        pre = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        return f"env {pre} {cmd}"
    return cmd
