"""Tunnels: the one place llmops starts cloudflared or ngrok, or opens an SSH reverse forward.

A tunnel is a supervised background process in its own session (``llmops.run.process``, like a
native deployment): its record is ``$LLMOPS_HOME/tunnels/NAME.json`` (pid + start time, so a
recycled pid is never mistaken for it), its output goes to ``NAME.log`` next to it, and ``stop``
signals its whole process group (SIGTERM, a grace period, SIGKILL). ``NAME`` is the deployment's
name, or ``port-PORT`` for a bare port; the record names the deployment so ``llmops down`` stops
it too.

The rooms:

- :mod:`.records`: what a tunnel is (:class:`TunnelSpec`, :class:`TunnelRecord`, its status).
- :mod:`.manager`: :class:`TunnelManager` keeps the records and starts, lists and stops tunnels.
- :mod:`.providers`: one :class:`~.providers.base.Provider` per kind, each knowing the program it
  needs and how to get a public URL out of it: ``cloudflared`` (quick or named tunnel),
  ``ngrok``, ``ssh`` (a reverse forward through :class:`llmops.run.ssh.SshHost`, the one SSH
  client: ``--ssh-host`` is read as ``--host`` is).
- :mod:`.forward`: the SSH forward's child program, run as
  ``python -m llmops.run.tunnels ssh-forward ...``.
- :mod:`.exposure`: the audit before a tunnel starts and through its public URL
  (:func:`open_tunnel`); any generating or administrative route that answers without the key
  refuses the tunnel, and a started one is stopped again.
- :mod:`.targets`: what ``llmops tunnel NAME|PORT`` means (a deployment's port and key).
"""

from __future__ import annotations

from llmops.errors import LlmopsError, TunnelError
from llmops.run.tunnels.exposure import OpenedTunnel, audit_local, check_exposure, open_tunnel
from llmops.run.tunnels.manager import TunnelManager
from llmops.run.tunnels.providers import INSTALL_HINTS
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec, TunnelStatus
from llmops.run.tunnels.targets import Target, resolve_target, running_deployments

__all__ = [
    "INSTALL_HINTS",
    "LlmopsError",
    "OpenedTunnel",
    "Target",
    "TunnelError",
    "TunnelManager",
    "TunnelRecord",
    "TunnelSpec",
    "TunnelStatus",
    "audit_local",
    "check_exposure",
    "open_tunnel",
    "resolve_target",
    "running_deployments",
]
