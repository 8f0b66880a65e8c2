"""The SSH tunnel's child program: ``python -m llmops.run.tunnels ssh-forward ...``.

It connects to the host, asks its sshd to listen on a port (``ssh -R``), prints
``SSH_READY ADDRESS:PORT`` (or ``SSH_ERROR KIND: message``) for the manager to read from its
log, and then pumps each forwarded connection to the local port until SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from typing import Any

SSH_READY = "llmops-ssh-forward: listening on "
SSH_ERROR = "llmops-ssh-forward: error "


def _pump(chan: Any, local_port: int) -> None:
    from llmops.run.ssh import relay

    try:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=10)
    except OSError as e:
        print(f"llmops-ssh-forward: cannot reach 127.0.0.1:{local_port}: {e}", flush=True)
        chan.close()
        return
    sock.settimeout(None)
    relay(sock, chan)


def ssh_forward_main(argv: list[str]) -> int:
    """The supervised child: connect, ask the server to forward a port, pump channels."""
    import argparse

    import paramiko

    ap = argparse.ArgumentParser(prog="llmops.run.tunnels ssh-forward")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=22)
    ap.add_argument("--user", default=None)
    ap.add_argument("--key", default=None)
    ap.add_argument("--known-hosts", default=None)
    ap.add_argument("--local-port", type=int, required=True)
    ap.add_argument("--remote-port", type=int, default=0)
    ap.add_argument("--bind", default="")
    a = ap.parse_args(argv)

    def fail(kind: str, msg: str) -> int:
        print(f"{SSH_ERROR}{kind}: {msg}", flush=True)
        return 1

    client = paramiko.SSHClient()
    try:
        if a.known_hosts:
            client.load_host_keys(a.known_hosts)
        else:
            client.load_system_host_keys()
    except OSError as e:
        return fail("hostkey", f"cannot read known_hosts: {e}")
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            a.host,
            port=a.port,
            username=a.user or os.environ.get("USER") or "root",
            key_filename=a.key,
            timeout=15,
            banner_timeout=15,
            auth_timeout=15,
            allow_agent=True,
            look_for_keys=a.key is None,
        )
    except paramiko.BadHostKeyException as e:
        return fail("hostkey", f"host key of {a.host} does not match known_hosts ({e})")
    except paramiko.AuthenticationException as e:
        return fail("auth", f"authentication to {a.host} failed ({e})")
    except paramiko.SSHException as e:
        kind = "hostkey" if "known_hosts" in str(e) else "connect"
        return fail(kind, f"{a.host}:{a.port}: {e}")
    except OSError as e:
        return fail("connect", f"cannot connect to {a.host}:{a.port}: {e}")
    transport = client.get_transport()
    if transport is None:  # pragma: no cover
        return fail("connect", "no SSH transport")
    transport.set_keepalive(30)
    try:
        port = transport.request_port_forward(a.bind, a.remote_port)
    except paramiko.SSHException as e:
        return fail("forward", f"the server refused to forward port {a.remote_port}: {e}")
    print(f"{SSH_READY}{a.bind or '*'}:{port}", flush=True)

    stop = threading.Event()

    def _term(_sig: int, _frm: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    while not stop.is_set():
        chan = transport.accept(0.5)
        if chan is None:
            if not transport.is_active():
                print("llmops-ssh-forward: SSH connection lost", flush=True)
                return 2
            continue
        threading.Thread(target=_pump, args=(chan, a.local_port), daemon=True).start()
    with contextlib.suppress(Exception):
        transport.cancel_port_forward(a.bind, port)
    client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ssh-forward"]:
        return ssh_forward_main(args[1:])
    print("usage: python -m llmops.run.tunnels ssh-forward ...", file=sys.stderr)
    return 2
