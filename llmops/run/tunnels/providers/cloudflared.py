"""cloudflared: a quick tunnel (``*.trycloudflare.com``) or a named tunnel run with its token.

- quick tunnel: ``cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:P --url
  http://127.0.0.1:PORT``; the URL from ``GET /quicktunnel`` once ``GET /ready`` reports a
  connection, else from the box cloudflared prints on stderr (ops.md §1.2-1.3).
- named tunnel: ``cloudflared tunnel ... run`` with the token in the child's ``TUNNEL_TOKEN``
  environment variable, never in argv (ops.md §1.5); the URL is the hostname the user routed.
"""

from __future__ import annotations

import contextlib
import time

from llmops.errors import UsageError
from llmops.net import free_port, get_json
from llmops.plan import tunnel as tp
from llmops.run.process import Supervised
from llmops.run.tunnels.providers.base import Provider, Supervisor
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec


class Cloudflared(Provider):
    name = "cloudflared"
    binary = "cloudflared"
    install_hint = (
        "install cloudflared: on Debian/Ubuntu download cloudflared-linux-amd64.deb from "
        "https://github.com/cloudflare/cloudflared/releases/latest and `sudo dpkg -i` it "
        "(other systems: https://developers.cloudflare.com/cloudflare-one/connections/"
        "connect-networks/downloads/), or use `--via ngrok` / `--via ssh`"
    )

    def start(self, spec: TunnelSpec, run: Supervisor) -> TunnelRecord:
        exe = run.which("cloudflared")
        metrics = f"127.0.0.1:{free_port()}"
        target = f"http://127.0.0.1:{spec.port}"
        env = {k: v for k, v in run.env.items() if k not in ("TUNNEL_TOKEN", "TUNNEL_TOKEN_FILE")}
        argv = [exe, "tunnel", "--no-autoupdate", "--metrics", metrics, "--url", target]
        named = bool(spec.cf_token)
        if named:
            if not spec.cf_hostname:
                raise UsageError(
                    "a named cloudflared tunnel needs its public hostname",
                    "pass `--hostname api.example.com` (the hostname you routed to the tunnel)",
                )
            env["TUNNEL_TOKEN"] = spec.cf_token or ""  # cloudflared reads it; never in argv
            argv.append("run")
        child = run.spawn(spec, argv, env)
        deadline = time.monotonic() + spec.start_timeout_s
        url: str | None = tp.quicktunnel_url({"hostname": spec.cf_hostname}) if named else None
        while True:
            if child.proc.poll() is not None:
                raise run.died(spec, child)
            _, ready = get_json(f"http://{metrics}/ready")
            connected = isinstance(ready, dict) and tp.ready_connections(ready) >= 1
            if not named and url is None:
                url = _quick_url(metrics, child)
            if url and connected:
                break
            if time.monotonic() > deadline:
                if url:  # the edge may still be connecting; the check through the URL decides
                    break
                raise run.give_up(spec, child, "a public URL")
            time.sleep(0.2)
        return run.record(spec, child, url, api_addr=metrics, named=named)


def _quick_url(metrics: str, child: Supervised) -> str | None:
    """The quick tunnel's URL from the metrics server's ``/quicktunnel``, else from the log."""
    _, qt = get_json(f"http://{metrics}/quicktunnel")
    url = tp.quicktunnel_url(qt) if isinstance(qt, dict) else None
    if url is None:
        with contextlib.suppress(OSError):
            url = tp.cloudflared_url_from_log(child.log.read_text(errors="replace").splitlines())
    return url
