"""The kinds of tunnel, one module each behind :class:`~.base.Provider`."""

from __future__ import annotations

from llmops.run.tunnels.providers.base import Provider, Supervisor
from llmops.run.tunnels.providers.cloudflared import Cloudflared
from llmops.run.tunnels.providers.ngrok import Ngrok
from llmops.run.tunnels.providers.ssh import SshReverse

#: every provider by its ``--via`` name (the order of ``llmops.plan.tunnel.VIAS``)
PROVIDERS: dict[str, Provider] = {p.name: p for p in (Cloudflared(), Ngrok(), SshReverse())}

#: how to install each program a provider needs
INSTALL_HINTS: dict[str, str] = {
    p.binary: p.install_hint for p in PROVIDERS.values() if p.binary and p.install_hint
}

__all__ = ["INSTALL_HINTS", "PROVIDERS", "Provider", "Supervisor"]
