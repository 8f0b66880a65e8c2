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
    """``host:port`` → ``http://host:port``; drop a trailing ``/`` and ``/v1`` (an OpenAI base)."""
    url = spec.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
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
    key = api_key or os.environ.get("LLMOPS_API_KEY", "").strip() or None
    if looks_like_url(spec):
        return Target(normalize_url(spec), key)
    url, deployment_key = lookup(spec)
    return Target(normalize_url(url), key or deployment_key, name=spec)
