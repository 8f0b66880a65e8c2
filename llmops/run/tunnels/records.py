"""What a tunnel is: the request (:class:`TunnelSpec`), the record kept while it runs
(:class:`TunnelRecord`, ``$LLMOPS_HOME/tunnels/NAME.json``) and what ``tunnel ls`` shows."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TunnelSpec:
    """What to expose and how. Secret values (tokens) are passed to the child, never stored."""

    name: str
    port: int
    via: str
    deployment: str | None = None
    cf_token: str | None = None  # named cloudflared tunnel
    cf_hostname: str | None = None  # the public hostname routed to that named tunnel
    ssh_host: str | None = None  # as --host: [user@]host[:port], an ssh_config alias
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    ssh_remote_port: int = 0  # 0: the server picks
    ssh_bind: str = ""  # "" = all interfaces (needs GatewayPorts on the server)
    start_timeout_s: float = 45.0


@dataclass(frozen=True)
class TunnelRecord:
    name: str
    via: str
    port: int
    deployment: str | None
    pid: int
    create_time: float | None
    url: str | None
    started_at: str
    log: str
    api_addr: str | None = None  # cloudflared metrics / ngrok agent API
    remote: str | None = None  # ssh host
    named: bool = False  # cloudflared named tunnel


@dataclass(frozen=True)
class TunnelStatus:
    name: str
    via: str
    port: int
    deployment: str | None
    url: str | None
    pid: int
    running: bool
    started_at: str
    uptime_s: int | None


def now() -> str:
    """The current UTC time as ISO-8601 (``started_at``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
