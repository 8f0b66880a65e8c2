"""Ports and HTTP probes: the one place that decides whether a port is free and what a URL answers.

Small and side-effect free apart from the socket or request each function exists to make; the
callers (``up``, the quickstart, tunnels, readiness, ``ps``) pass their own host and timeout.
A probe never raises for a network failure: "nothing answered" is a value (None).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free on ``host`` right now: bind port 0, read what the OS chose.

    Decides nothing lasting: the port is released before returning, so another process may
    take it before the caller binds it (use it for a child that binds at once).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``port`` at ``host``: we can bind it (with ``SO_REUSEADDR``,
    so a port in TIME_WAIT after a server stopped counts as free, as the server will see it).

    ``0.0.0.0`` (the default) also finds a listener on any one address; pass ``127.0.0.1`` to
    ask only about loopback.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def http_status(url: str, api_key: str | None = None, timeout_s: float = 3.0) -> int | None:
    """The HTTP status of ``GET url``, or None when nothing answered.

    An HTTP error (401, 404, 503) is a status, not silence. None means refused, reset, timed out,
    unresolvable, or ``url`` is not an http(s) URL at all (urllib's ValueError must not escape as
    a crash). ``api_key`` is sent as a bearer token only when it is non-empty. Every request
    carries ``ngrok-skip-browser-warning`` so that a probe through an ngrok tunnel reaches the
    server instead of ngrok's HTML interstitial (other servers ignore the header). The default
    timeout is readiness polling's (engines.md §3: 2-5 s); callers that wait longer pass theirs.
    """
    try:
        req = urllib.request.Request(url, headers={"ngrok-skip-browser-warning": "1"})
        if api_key:
            req.add_header("Authorization", f"Bearer {api_key}")
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def get_json(url: str, timeout_s: float = 2.0) -> tuple[int | None, Any]:
    """``GET url`` read as JSON: ``(status, document)``.

    ``(None, None)`` when nothing answered (or ``url`` is malformed); an HTTP error keeps its
    status and its body is read the same way; an empty body or one that is not JSON is
    ``(status, None)``. Used for local agent APIs (cloudflared's metrics, ngrok's API).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            body = r.read()
            status = int(r.status)
    except urllib.error.HTTPError as e:
        body = e.read()
        status = int(e.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None, None
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, None
