"""SSH to remote hosts with paramiko: targets, ~/.ssh/config, host keys, exec, port forwards.

This package is the only place in llmops that imports ``paramiko`` (lazily, inside functions;
the tunnel's supervised child in :mod:`llmops.run.tunnels` aside). Its rooms:

- :mod:`~llmops.run.ssh.target` (pure): :func:`parse_target` reads ``user@host[:port]``,
  ``ssh://user@host:port``, an alias, or a pasted ssh command such as the ones vast.ai and
  RunPod show (``ssh -p 41022 root@ssh4.vast.ai -L 8080:localhost:8080``).
- :mod:`~llmops.run.ssh.config`: :func:`resolve` applies an OpenSSH config through paramiko's
  ``SSHConfig``, because paramiko's client does not read the config itself (ops.md §3.4).
- :mod:`~llmops.run.ssh.trust`: known_hosts files; an unknown host is refused with its
  fingerprint unless ``trust_new_host``; a changed key is always refused (ops.md §3.3).
- :mod:`~llmops.run.ssh.auth`: agent keys, then key files (a passphrase is asked for only when
  stdin is a terminal), and what each failure to connect tells the user.
- :mod:`~llmops.run.ssh.host`: :class:`SshHost`, one session: commands with their exit codes
  (captured or streamed, :mod:`~llmops.run.ssh.commands`), files copied over a plain exec
  channel, and forwards.
- :mod:`~llmops.run.ssh.forwards`: :class:`LocalForward` (``-L``, bound to 127.0.0.1 only),
  :class:`RemoteForward` (``-R``) and :func:`relay`.

Every paramiko/socket failure becomes an ``llmops.errors.RemoteError`` subclass naming the host,
with a hint. Import from here (``from llmops.run.ssh import SshHost``): the names below are the
package's surface.
"""

from __future__ import annotations

from llmops.run.ssh.auth import DEFAULT_IDENTITIES
from llmops.run.ssh.commands import ExecResult
from llmops.run.ssh.config import (
    DEFAULT_CONNECT_TIMEOUT_S,
    SshEndpoint,
    load_ssh_config,
    resolve,
    ssh_config_from_text,
    user_ssh_config_path,
)
from llmops.run.ssh.forwards import ForwardRefused, LocalForward, RemoteForward, relay
from llmops.run.ssh.host import SshHost, open_host
from llmops.run.ssh.target import (
    DEFAULT_PORT,
    PortForward,
    SshTarget,
    command_line,
    known_hosts_name,
    parse_forward_spec,
    parse_ssh_command,
    parse_target,
)
from llmops.run.ssh.trust import _TrustPolicy, llmops_known_hosts

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_IDENTITIES",
    "DEFAULT_PORT",
    "ExecResult",
    "ForwardRefused",
    "LocalForward",
    "PortForward",
    "RemoteForward",
    "SshEndpoint",
    "SshHost",
    "SshTarget",
    "_TrustPolicy",
    "command_line",
    "known_hosts_name",
    "llmops_known_hosts",
    "load_ssh_config",
    "open_host",
    "parse_forward_spec",
    "parse_ssh_command",
    "parse_target",
    "relay",
    "resolve",
    "ssh_config_from_text",
    "user_ssh_config_path",
]
