"""Tunnels as pure data: parsing what cloudflared and ngrok say, and judging the exposure check.

Nothing here starts a process or opens a socket (``llmops.run.tunnels`` does); every function
takes the text or JSON it judges. Facts about the tools are from
``/work/shared/reference/ops.md`` §1 (cloudflared) and §2 (ngrok).

URL handling, so that the same code accepts a real quick tunnel and a local stand-in:

- cloudflared prints its quick-tunnel URL inside an ASCII box, one INFO log line per box row,
  on stderr (ops.md §1.2). :func:`cloudflared_url_from_log` takes the URL *inside that box*
  whatever its host, and otherwise any ``https://<sub>.trycloudflare.com`` in the log, never
  ``api.trycloudflare.com`` (the quick-tunnel service itself, which appears in error text).
- ``GET /quicktunnel`` on the metrics server returns a bare hostname (ops.md §1.3):
  :func:`quicktunnel_url` makes it ``https://HOST``; only a loopback host (never issued by
  Cloudflare's edge, only by a local stand-in) gets ``http://``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

VIAS = ("cloudflared", "ngrok", "ssh")

#: Said whenever a cloudflared quick tunnel is used (ops.md §1.4).
CLOUDFLARED_QUICK_LIMITS = (
    "cloudflared quick tunnels are for testing: no SLA or uptime guarantee, and the URL "
    "changes on every restart",
    "at most 200 in-flight requests; above that Cloudflare answers HTTP 429",
    "Cloudflare documents that quick tunnels do not support server-sent events (SSE): "
    "streamed chat completions (POST) usually stream, but it is best effort; use a named "
    "tunnel (--cf-token-file) or ngrok for anything real",
)

#: Said whenever ngrok is used (ops.md §2.3, free plan).
NGROK_LIMITS = (
    "ngrok's free plan allows 1 GB/month out and 20,000 HTTP requests/month: small for an "
    "LLM endpoint",
)

_TRYCLOUDFLARE = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com\b")
_BOX_ROW = re.compile(r"\|\s*(.*?)\s*\|\s*$")
_BOX_EDGE = re.compile(r"\+-{10,}\+\s*$")
_URL = re.compile(r"https?://[^\s|]+")
_CREATED = "quick Tunnel has been created"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_QUICK_SERVICE_HOST = "api.trycloudflare.com"


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _usable(url: str) -> bool:
    return _host(url) not in ("", _QUICK_SERVICE_HOST)


def cloudflared_url_from_log(lines: Iterable[str]) -> str | None:
    """The quick-tunnel URL from cloudflared's stderr, or None if it has not appeared yet.

    Prefers the URL in the row after "Your quick Tunnel has been created!" inside the ASCII
    box; falls back to the first ``https://*.trycloudflare.com`` anywhere, skipping
    ``api.trycloudflare.com``.
    """
    seen_created = False
    fallback: str | None = None
    for line in lines:
        if _BOX_EDGE.search(line):
            continue
        row = _BOX_ROW.search(line)
        if row and _CREATED in row.group(1):
            seen_created = True
            continue
        if seen_created and row:
            m = _URL.search(row.group(1))
            if m and _usable(m.group(0)):
                return m.group(0).rstrip("/")
        if fallback is None:
            for m in _TRYCLOUDFLARE.finditer(line):
                if _usable(m.group(0)):
                    fallback = m.group(0)
                    break
    return fallback


def quicktunnel_url(doc: Mapping[str, Any]) -> str | None:
    """``GET /quicktunnel`` → URL. The body is ``{"hostname": "<sub>.trycloudflare.com"}``."""
    host = doc.get("hostname")
    if not isinstance(host, str) or not host.strip():
        return None
    host = host.strip().rstrip("/")
    if "://" in host:  # not what cloudflared sends, but never double a scheme
        return host if _usable(host) else None
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    scheme = "http" if bare.lower() in _LOOPBACK_HOSTS else "https"
    url = f"{scheme}://{host}"
    return url if _usable(url) else None


def ready_connections(doc: Mapping[str, Any]) -> int:
    """``GET /ready`` → ``readyConnections`` (cloudflared's ``metrics/readiness.go``)."""
    value = doc.get("readyConnections")
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class NgrokTunnel:
    """One tunnel/endpoint from the ngrok agent API, whichever shape it came in."""

    name: str
    url: str
    upstream: str  # "localhost:8000" (old API) or "http://localhost:8000" (new API)


def parse_ngrok_api(doc: Mapping[str, Any]) -> list[NgrokTunnel]:
    """Both shapes of the agent API (ops.md §2.2), like pyngrok's ``NgrokTunnel``.

    ``GET /api/endpoints``: ``{"endpoints": [{"name", "url", "upstream": {"url"}}]}``;
    ``GET /api/tunnels`` (deprecated): ``{"tunnels": [{"name", "public_url", "config": {"addr"}}]}``.
    """
    items = doc.get("endpoints")
    if not isinstance(items, list):
        items = doc.get("tunnels")
    if not isinstance(items, list):
        return []
    out: list[NgrokTunnel] = []
    for it in items:
        if not isinstance(it, Mapping):
            continue
        url = it.get("url") or it.get("public_url")
        upstream_obj = it.get("upstream")
        config = it.get("config")
        upstream = (upstream_obj.get("url") if isinstance(upstream_obj, Mapping) else None) or (
            config.get("addr") if isinstance(config, Mapping) else None
        )
        if isinstance(url, str) and url:
            out.append(NgrokTunnel(str(it.get("name") or ""), url, str(upstream or "")))
    return out


def _upstream_port(upstream: str) -> int | None:
    text = upstream if "://" in upstream else f"tcp://{upstream}"
    try:
        port = urlsplit(text).port
    except ValueError:
        return None
    if port is None and upstream.isdigit():
        return int(upstream)
    return port


def pick_ngrok_url(tunnels: Sequence[NgrokTunnel], port: int) -> str | None:
    """The public URL forwarding to ``port``; https preferred over http."""
    matching = [t for t in tunnels if _upstream_port(t.upstream) == port]
    matching.sort(key=lambda t: 0 if t.url.startswith("https://") else 1)
    return matching[0].url if matching else None


_LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_logfmt(line: str) -> dict[str, str]:
    """One ngrok ``--log-format logfmt`` line → its key/value pairs (quotes removed)."""
    out: dict[str, str] = {}
    for key, value in _LOGFMT.findall(line):
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace('\\"', '"')
        out[key] = value
    return out


def ngrok_error_from_log(lines: Iterable[str]) -> str | None:
    """The first error ngrok logged (``lvl=eror``/``lvl=crit`` or an ``err=``), as text."""
    for line in lines:
        kv = parse_logfmt(line)
        err = kv.get("err")
        if kv.get("lvl") in ("eror", "error", "crit") or (err and err not in ("nil", "<nil>")):
            return err or kv.get("msg") or line.strip()
        if "ERR_NGROK_" in line and "lvl=" not in line:
            return line.strip()
    return None


def ngrok_web_addr_from_log(lines: Iterable[str]) -> str | None:
    """``addr`` of ``msg="starting web service"``: where the agent API listens (pyngrok)."""
    for line in lines:
        kv = parse_logfmt(line)
        if kv.get("msg") == "starting web service" and kv.get("addr"):
            return kv["addr"]
    return None


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class ExposureCheck:
    """What the checks through the public URL found, and whether to keep the tunnel."""

    url: str
    with_key_status: int | None  # GET /v1/models with the key (None: no answer / no key)
    without_key_status: int | None  # GET /v1/models without a key
    reachable: bool
    protected: bool
    verdict: str  # ok | unreachable | unprotected | unprotected-allowed
    detail: str


def judge_exposure(
    url: str,
    *,
    with_key_status: int | None,
    without_key_status: int | None,
    had_key: bool,
    allow_public_no_auth: bool,
) -> ExposureCheck:
    """Decide from the two probe statuses; pure so every branch has a unit test.

    The endpoint is *protected* when a request without the key is rejected with 401 (or 403).
    It is *reachable* when the request with the key got 200, or, with no key known, when the
    keyless request got any answer from the endpoint.
    """
    protected = without_key_status in (401, 403)
    if had_key:
        reachable = with_key_status == 200
    else:
        reachable = without_key_status is not None and without_key_status < 500
    if not reachable:
        got = with_key_status if had_key else without_key_status
        detail = (
            f"GET {url}/v1/models answered {got}" if got else f"nothing answered at {url}/v1/models"
        )
        return ExposureCheck(
            url, with_key_status, without_key_status, False, protected, "unreachable", detail
        )
    if protected:
        detail = f"/v1/models: {with_key_status or '-'} with the key, {without_key_status} without"
        return ExposureCheck(url, with_key_status, without_key_status, True, True, "ok", detail)
    detail = f"GET {url}/v1/models without an API key answered {without_key_status}, not 401"
    verdict = "unprotected-allowed" if allow_public_no_auth else "unprotected"
    return ExposureCheck(url, with_key_status, without_key_status, True, False, verdict, detail)


def ngrok_config_version(text: str) -> str:
    """The ``version:`` of an ngrok config file ("2" when absent or unreadable)."""
    m = re.search(r"^version:\s*[\"']?(\d+)", text, re.MULTILINE)
    return m.group(1) if m else "2"


def ngrok_config_text(version: str, web_addr: str, authtoken: str | None) -> str:
    """An extra ngrok config file: the agent API address (and the authtoken, kept out of argv).

    Version 3 nests agent settings under ``agent:``; version 2 keeps them at the top level
    (ops.md §2.1-2.2). It matches the user's own config, which is loaded before it.
    """
    if version == "3":
        lines = ['version: "3"', "agent:", f"  web_addr: {web_addr}"]
        if authtoken:
            lines.append(f"  authtoken: {authtoken}")
    else:
        lines = ['version: "2"', f"web_addr: {web_addr}"]
        if authtoken:
            lines.append(f"authtoken: {authtoken}")
    return "\n".join(lines) + "\n"


__all__ = [
    "CLOUDFLARED_QUICK_LIMITS",
    "NGROK_LIMITS",
    "VIAS",
    "ExposureCheck",
    "NgrokTunnel",
    "cloudflared_url_from_log",
    "judge_exposure",
    "ngrok_config_text",
    "ngrok_config_version",
    "ngrok_error_from_log",
    "ngrok_web_addr_from_log",
    "parse_logfmt",
    "parse_ngrok_api",
    "pick_ngrok_url",
    "quicktunnel_url",
    "ready_connections",
    "url_host",
]
