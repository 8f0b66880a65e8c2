"""ssh: a reverse forward (``ssh -R``) on a host the user owns, kept open by llmops' own child
program (``python -m llmops.run.tunnels ssh-forward ...``, :mod:`llmops.run.tunnels.forward`),
which reaches the host through :class:`llmops.run.ssh.SshHost` (so ``--ssh-host`` is read as
``--host`` is: ``~/.ssh/config`` aliases, ProxyJump, llmops' host-key policy) and carries each
forwarded connection to the local port (ops.md §3.2)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

from llmops.errors import TunnelStartError, UsageError
from llmops.plan import tunnel as tp
from llmops.run.process import Supervised
from llmops.run.tunnels.forward import SSH_ERROR, SSH_READY, ssh_host
from llmops.run.tunnels.providers.base import Provider, Supervisor
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec

#: a hint for each kind of failure the child reports (``SSH_ERROR KIND: message``)
HINTS = {
    "hostkey": "add the host to known_hosts first (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts` "
    "after checking its fingerprint), or pass `--ssh-known-hosts FILE`",
    "hostkey-changed": "if the host was re-created, remove its old key (`ssh-keygen -R HOST`, "
    "`ssh-keygen -R '[HOST]:PORT'` for another port) and add the new one after checking its "
    "fingerprint; otherwise someone may be intercepting the connection",
    "auth": "pass `--ssh-key ~/.ssh/id_ed25519`, or load the key into ssh-agent",
    "connect": "check the host and port (`ssh -p PORT user@host`)",
    "forward": "the server refused the forward: set `AllowTcpForwarding yes` (and `GatewayPorts "
    "yes` for outside clients) in its sshd_config, or choose another `--remote-port`",
}


class SshReverse(Provider):
    name = "ssh"
    binary = None  # llmops' own child program, under this Python

    def start(self, spec: TunnelSpec, run: Supervisor) -> TunnelRecord:
        if not spec.ssh_host:
            raise UsageError(
                "`--via ssh` needs `--ssh-host [user@]host[:port]`", "a host you own with sshd"
            )
        try:  # read here too: the public URL names the host the config resolves it to
            ep = ssh_host(
                spec.ssh_host, run.env, key=spec.ssh_key, known_hosts=spec.ssh_known_hosts
            ).endpoint
        except UsageError as e:
            raise UsageError(f"bad --ssh-host: {e.message}", e.hint) from e
        argv = [sys.executable, "-m", "llmops.run.tunnels", "ssh-forward"]
        argv += ["--target", spec.ssh_host, "--local-port", str(spec.port)]
        argv += ["--remote-port", str(spec.ssh_remote_port), "--bind", spec.ssh_bind]
        if spec.ssh_key:
            argv += ["--key", spec.ssh_key]
        if spec.ssh_known_hosts:
            argv += ["--known-hosts", spec.ssh_known_hosts]
        child = run.spawn(spec, argv, run.env)
        deadline = time.monotonic() + spec.start_timeout_s
        while True:
            remote_port = _reported_port(spec, child, run)
            if remote_port is not None:
                url = f"http://{tp.url_host(ep.hostname)}:{remote_port}"
                return run.record(spec, child, url, remote=spec.ssh_host)
            if child.proc.poll() is not None:
                raise run.died(spec, child)
            if time.monotonic() > deadline:
                raise run.give_up(spec, child, "the forwarded port")
            time.sleep(0.1)


def _reported_port(spec: TunnelSpec, child: Supervised, run: Supervisor) -> int | None:
    """The remote port the child reports listening on (None: not yet); raises what it reports
    failing."""
    text = ""
    with contextlib.suppress(OSError):
        text = child.log.read_text(errors="replace")
    for line in text.splitlines():
        if line.startswith(SSH_READY):
            return int(line[len(SSH_READY) :].rsplit(":", 1)[1])
        if line.startswith(SSH_ERROR):
            kind, _, msg = line[len(SSH_ERROR) :].partition(": ")
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            run.forget_keep_log(spec.name)
            raise TunnelStartError(
                f"SSH reverse forward to {spec.ssh_host} failed: {msg}", HINTS.get(kind)
            )
    return None
