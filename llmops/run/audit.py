"""The exposure audit's probing: one request per route, without credentials, over httpx.

The table of routes and the judging are pure (``llmops.plan.audit``); this module only sends
the requests. A generating route gets ``POST`` with a minimal body (at most one token), an
administrative one a request that cannot act (``GET``), and no request carries an
``Authorization`` or ``X-Api-Key`` header. Probes run a few at a time so an audit through a
tunnel takes seconds, not a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llmops.errors import UsageError
from llmops.plan import audit as pa

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _client(url: str, timeout_s: float) -> Any:
    import httpx

    host = (urlsplit(url).hostname or "").lower()
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        follow_redirects=False,
        # a proxy from the environment must not stand between us and a loopback port
        trust_env=host not in _LOOPBACK,
        headers={"ngrok-skip-browser-warning": "1", "User-Agent": "llmops-audit"},
    )


def send(client: Any, url: str, route: pa.Route) -> pa.Probe:
    """One probe: the route's answer to a request without credentials."""
    import httpx

    target = url.rstrip("/") + route.path
    try:
        if route.probe == "POST":
            r = client.post(
                target,
                content=(route.body or "{}").encode(),
                headers={"Content-Type": "application/json"},
            )
        else:
            r = client.request(route.probe, target)
        return pa.probe_result(route, int(r.status_code))
    except httpx.TimeoutException:
        return pa.probe_result(route, None, "timed out")
    except (httpx.HTTPError, OSError, ValueError) as e:
        return pa.probe_result(route, None, f"{type(e).__name__}: {e}")


def audit(
    url: str,
    engine: str | None = None,
    *,
    timeout_s: float = 10.0,
    routes: Sequence[pa.Route] | None = None,
    workers: int = 6,
) -> pa.Audit:
    """Probe every route ``engine`` serves (every known engine's when None) at ``url``."""
    base = pa.base_url(url)
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"cannot audit {url!r}: not an http(s) URL",
            "give a URL like http://127.0.0.1:8000, a deployment name or a port",
        )
    try:
        _ = parts.port
    except ValueError as e:
        raise UsageError(f"cannot audit {url!r}: {e}", "ports are 1-65535") from None
    table = tuple(routes) if routes is not None else pa.routes_for(engine)
    with _client(base, timeout_s) as client, ThreadPoolExecutor(max(1, workers)) as pool:
        probes = list(pool.map(lambda r: send(client, base, r), table))
    return pa.judge_audit(base, engine, probes)


@dataclass(frozen=True)
class AuditTarget:
    """What ``llmops audit NAME|PORT|URL`` audits."""

    url: str
    engine: str | None
    deployment: str | None


def resolve(target: str, deployments: Callable[[], Any], engine: str | None) -> AuditTarget:
    """A URL, a local port, or a deployment (its engine from its record)."""
    if "://" in target:
        return AuditTarget(target, engine, None)
    if target.isdigit():
        port = int(target)
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is out of range", "give a port between 1 and 65535")
        return AuditTarget(f"http://127.0.0.1:{port}", engine, None)
    deps = deployments()
    deps.require(target)
    for row in deps.status(probe=False):
        if row.name == target:
            if row.port is None:
                break
            return AuditTarget(f"http://127.0.0.1:{row.port}", engine or row.engine, target)
    raise UsageError(
        f"deployment {target} has no published port", f"see `llmops ps`; `llmops logs {target}`"
    )


__all__ = ["AuditTarget", "audit", "resolve", "send"]
