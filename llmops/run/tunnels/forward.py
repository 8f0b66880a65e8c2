"""The SSH tunnel's child program: ``python -m llmops.run.tunnels ssh-forward ...``.

It reaches ``--ssh-host`` through :class:`llmops.run.ssh.SshHost`, exactly as ``--host`` does
(``~/.ssh/config`` with its aliases, IdentityFile, ProxyJump and UserKnownHostsFile; the user's
and llmops' known_hosts; an unknown or changed host key refused), asks its sshd to listen on a
port (``ssh -R``, :meth:`SshHost.reverse_forward`), prints ``SSH_READY ADDRESS:PORT`` (or
``SSH_ERROR KIND: message``) for the manager to read from its log, and then carries each
forwarded connection to the local port until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops.run.ssh import SshHost

SSH_READY = "llmops-ssh-forward: listening on "
SSH_ERROR = "llmops-ssh-forward: error "


def ssh_host(
    text: str,
    env: Mapping[str, str],
    *,
    key: str | None = None,
    known_hosts: str | None = None,
) -> SshHost:
    """``--ssh-host`` read as ``--host`` reads a host (``~/.ssh/config`` of ``env``'s HOME),
    not yet connected and never asking for a passphrase (the child has no terminal).

    ``key`` (``--ssh-key``) is offered first, as ``ssh -i``; ``known_hosts``
    (``--ssh-known-hosts``) is read instead of the user's known_hosts (llmops' own counts too).

    Raises:
        UsageError: the text or the ssh_config cannot be read.
    """
    from llmops.run.ssh import open_host, user_ssh_config_path

    return open_host(
        text,
        config_path=user_ssh_config_path(env),
        interactive=False,
        identity_files=(key,) if key else (),
        known_hosts_files=(known_hosts,) if known_hosts else (),
    )


def _error_kind(e: BaseException) -> str:
    """The manager's name for a failure (it picks the hint by it)."""
    from llmops.errors import HostKeyMismatch, SshAuthError, UnknownHostKey
    from llmops.run.ssh import ForwardRefused

    if isinstance(e, HostKeyMismatch):
        return "hostkey-changed"
    if isinstance(e, UnknownHostKey):
        return "hostkey"
    if isinstance(e, SshAuthError):
        return "auth"
    if isinstance(e, ForwardRefused):
        return "forward"
    return "connect"


def ssh_forward_main(argv: list[str]) -> int:
    """The supervised child: connect, ask the server to forward a port, carry connections."""
    from llmops.errors import LlmopsError

    ap = argparse.ArgumentParser(prog="llmops.run.tunnels ssh-forward")
    ap.add_argument("--target", required=True)
    ap.add_argument("--key", default=None)
    ap.add_argument("--known-hosts", default=None)
    ap.add_argument("--local-port", type=int, required=True)
    ap.add_argument("--remote-port", type=int, default=0)
    ap.add_argument("--bind", default="")
    a = ap.parse_args(argv)

    host: SshHost | None = None
    try:
        host = ssh_host(a.target, os.environ, key=a.key, known_hosts=a.known_hosts)
        fwd = host.reverse_forward(a.local_port, remote_port=a.remote_port, bind=a.bind)
    except LlmopsError as e:
        print(f"{SSH_ERROR}{_error_kind(e)}: {e.message}", flush=True)
        if host is not None:
            host.close()
        return 1
    print(f"{SSH_READY}{a.bind or '*'}:{fwd.remote_port}", flush=True)
    stop = threading.Event()

    def _term(_sig: int, _frm: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    reported = 0
    code = 0
    while not stop.wait(0.5):
        for line in fwd.errors[reported:]:  # a connection the local port did not take
            print(f"llmops-ssh-forward: {line}", flush=True)
        reported = len(fwd.errors)
        if not fwd.alive():
            print("llmops-ssh-forward: SSH connection lost", flush=True)
            code = 2
            break
    fwd.close()
    host.close()
    return code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ssh-forward"]:
        return ssh_forward_main(args[1:])
    print("usage: python -m llmops.run.tunnels ssh-forward ...", file=sys.stderr)
    return 2
