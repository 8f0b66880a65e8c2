"""llmops' directories: the one place that decides where llmops keeps its state and its caches."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def llmops_home(env: Mapping[str, str] | None = None) -> Path:
    """llmops' state directory: ``$LLMOPS_HOME``, else ``$XDG_STATE_HOME/llmops``, else
    ``~/.local/state/llmops``.

    ``env`` is the environment to read (default: this process's); the host probe passes the
    environment it describes. Nothing is created or resolved here: the path is returned as the
    environment spells it.
    """
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "llmops"
    )
    return Path(base)


def cache_home(env: Mapping[str, str] | None = None) -> Path:
    """The bundled backend's cache (converted models, the quickstart's server record):
    ``$LLMOPS_HOME`` (``~`` expanded), else ``~/.cache/llmops``.

    Kept apart from :func:`llmops_home` because a converted model can be rebuilt at any time
    while deployment records cannot; with ``$LLMOPS_HOME`` set both live under it.
    """
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "llmops"
