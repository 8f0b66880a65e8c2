"""NAME|URL → where to send requests, and with which API key.

A URL is used as is. A deployment NAME resolves through the ``lookup`` the CLI hands in (``llmops.run.state.resolve_deployment``), the one
place that will read deployment state (``llmops up``) once it exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from llmops.errors import UsageError

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}(/.*)?$")


@dataclass(frozen=True)
class Target:
    """A resolved endpoint: its base URL and API key (masked in repr)."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    name: str | None = None  # the deployment name, when one was given


def normalize_url(spec: str) -> str:
    """``host:port`` → ``http://host:port``; drop a trailing ``/`` and ``/v1`` (an OpenAI base).

    Raises:
        UsageError: not an http(s) URL with a host and a port from 1 to 65535.
    """
    from urllib.parse import urlsplit

    url = spec.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    hint = "pass a URL such as http://127.0.0.1:8000"
    shown = url if len(url) <= 200 else url[:200] + "…"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise UsageError(f"{shown!r} is not a URL (it contains spaces or control characters)", hint)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as e:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise UsageError(f"{shown!r} is not a valid URL ({e})", hint) from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{shown!r}: only http:// and https:// URLs are supported", hint)
    if not host:
        raise UsageError(f"{shown!r} names no host", hint)
    if port is not None and port == 0:
        raise UsageError(f"{shown!r}: port 0 is not a port to connect to", hint)
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"{parts.scheme}://{host}…: credentials in the URL are not supported",
            "pass the key with --api-key (or $LLMOPS_API_KEY)",
        )
    return url


def looks_like_url(spec: str) -> bool:
    return "://" in spec or bool(_HOST_PORT.match(spec)) or spec.startswith("localhost")


def _no_deployments(name: str) -> tuple[str, str | None]:
    raise UsageError(f"{name!r} is not a URL", "pass a URL such as http://127.0.0.1:8000")


def resolve_target(
    spec: str,
    api_key: str | None = None,
    lookup: Callable[[str], tuple[str, str | None]] = _no_deployments,
) -> Target:
    """Resolve ``NAME|URL``; the API key is ``api_key``, else ``$LLMOPS_API_KEY``, else the
    deployment's own key.

    Raises:
        UsageError: an empty spec, or an unknown deployment name.
    """
    if not spec.strip():
        raise UsageError("no endpoint given", "pass a URL such as http://127.0.0.1:8000")
    env_key = os.environ.get("LLMOPS_API_KEY", "").strip() or None
    if api_key is not None:
        check_api_key(api_key, "--api-key")
    elif env_key is not None:
        check_api_key(env_key, "$LLMOPS_API_KEY")
    key = api_key or env_key
    if looks_like_url(spec):
        return Target(normalize_url(spec), key)
    url, deployment_key = lookup(spec)
    if not key and deployment_key:
        check_api_key(deployment_key, f"deployment {spec}'s API key")
    return Target(normalize_url(url), key or deployment_key, name=spec)


def check_api_key(key: str, where: str) -> None:
    """A key goes into an ``Authorization: Bearer`` header: printable ASCII, no spaces.
    The error names ``where`` it came from, never the key.

    Raises:
        UsageError: empty, non-ASCII, whitespace or control characters.
    """
    if not key:
        raise UsageError(f"{where} is empty", "pass the key, or leave the option out")
    if not key.isascii():
        raise UsageError(
            f"{where} contains a non-ASCII character",
            "API keys are plain ASCII: copy the key again from where it was issued",
        )
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in key):
        raise UsageError(
            f"{where} contains a space, a line break or another control character",
            "copy the key again, without spaces or line breaks",
        )
