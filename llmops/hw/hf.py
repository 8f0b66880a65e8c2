"""Hugging Face probe: token (masked, validated when online), offline mode, cache and its size."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llmops.hw.facts import HfFacts
from llmops.hw.system import hf_cache_dir

MIB = 1024 * 1024
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def mask_secret(secret: str) -> str:
    """Show a secret's kind and last four characters only: ``hf_…wxyz``."""
    secret = secret.strip()
    if len(secret) <= 8:
        return "…" * min(len(secret), 3)
    prefix = secret[:3] if secret[2:3] == "_" else ""
    return f"{prefix}…{secret[-4:]}"


def hf_home(env: Mapping[str, str]) -> str:
    return env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )


def find_token(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(token, where it came from) in huggingface_hub's order: env vars, then the token file."""
    for var in TOKEN_ENV_VARS:
        if env.get(var, "").strip():
            return env[var].strip(), f"env:{var}"
    path = env.get("HF_TOKEN_PATH") or os.path.join(hf_home(env), "token")
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None, None
    return (text, f"file:{path}") if text else (None, None)


def cache_usage(cache_dir: str) -> tuple[int | None, int | None]:
    """(size in MiB, number of cached repos) of a huggingface_hub cache dir; (None, None) if absent."""
    root = Path(cache_dir)
    if not root.is_dir():
        return None, None
    total = 0
    repos = 0
    for entry in root.iterdir():
        if not entry.is_dir() or "--" not in entry.name:
            continue
        repos += 1
        for dirpath, _dirs, files in os.walk(entry / "blobs"):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    continue
    return total // MIB, repos


def _is_offline_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        s in text
        for s in (
            "connect",
            "resolve",
            "name or service",
            "unreachable",
            "timed out",
            "timeout",
            "offline",
            "network",
            "proxy",
            "ssl",
        )
    )


def probe_hf(*, env: Mapping[str, str] | None = None, online_check: bool = True) -> HfFacts:
    """Token presence (masked), validity via ``whoami`` when online, cache location and size.

    Shell equivalent: ``hf auth whoami; du -sh ~/.cache/huggingface/hub``.
    """
    env = os.environ if env is None else env
    offline_mode = env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    token, source = find_token(env)
    cache = hf_cache_dir(env)
    size, repos = cache_usage(cache)
    valid: bool | None = None
    user: str | None = None
    online: bool | None = None
    error: str | None = None
    if token and online_check and not offline_mode:
        try:
            from huggingface_hub import HfApi
            from huggingface_hub.errors import HfHubHTTPError

            try:
                who = HfApi(token=token).whoami(token=token)
                valid, online, user = True, True, str(who.get("name") or "") or None
            except HfHubHTTPError as e:
                status = getattr(getattr(e, "response", None), "status_code", None)
                if status in (401, 403):
                    valid, online = False, True
                    error = f"the Hub rejected the token (HTTP {status})"
                else:
                    online = False
                    error = f"Hub unreachable: {e}".splitlines()[0]
        except Exception as e:  # network stacks raise many types; all mean "could not check"
            online = False
            error = (
                "Hub unreachable (offline?)"
                if _is_offline_error(e)
                else f"token check failed: {type(e).__name__}: {e}".splitlines()[0]
            )
    return HfFacts(
        token_present=token is not None,
        token_source=source,
        token_masked=mask_secret(token) if token else None,
        token_valid=valid,
        token_user=user,
        online=online,
        offline_mode=offline_mode,
        error=error,
        cache_dir=cache,
        cache_size_mib=size,
        cache_repos=repos,
    )
