"""Wait until an engine really serves: the engine's health probe, then ``/v1/models``.

Connection refused/reset/timeouts mean "starting" (TGI binds only after warm-up, vLLM's socket
may hang while loading); llama.cpp's and our backend's 503 mean "loading"; ready means
``/v1/models`` answered 200 (with the API key). If the process or container dies, waiting stops
at once (engines.md §3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmops.net import http_status
from llmops.plan.launch import HealthProbe
from llmops.run.docker import RuntimeState

_PROGRESS = re.compile(
    r"(Download(?:ing)?|download|Fetching|Loading|Warming up|Shard|loaded|Capturing)[^\n]{0,120}"
)


@dataclass(frozen=True)
class ReadyResult:
    ready: bool
    reason: str  # ready | died | timeout
    elapsed_s: float
    phase: str
    status: RuntimeState | None = None


def log_phase(log_tail: str) -> str | None:
    """The latest progress line in the engine's log (downloading, loading, warming up)."""
    found = None
    for line in log_tail.splitlines():
        m = _PROGRESS.search(line)
        if m:
            found = m.group(0).strip()
    return found


def wait_ready(
    base_url: str,
    probe: HealthProbe,
    *,
    api_key: str | None,
    state: Callable[[], RuntimeState],
    logs: Callable[[], str],
    timeout_s: float,
    on_phase: Callable[[str], None] = lambda _p: None,
    poll_s: float = 0.2,
    logs_every_s: float = 1.0,
) -> ReadyResult:
    """Poll until the engine serves (``probe.path`` 200, then ``probe.ready_path`` 200 with the
    key), it dies, or ``timeout_s`` passes. ``/health`` is asked every ``poll_s`` (a local
    request: cheap), so ``up`` returns within a fraction of a second of the engine serving; the
    log (a Docker API call for containers) is read for the phase at most every
    ``logs_every_s``."""
    t0 = time.monotonic()
    phase = "starting"
    last = ""
    detail: str | None = None
    logs_at = -logs_every_s
    while True:
        st = state()
        if not st.running or st.restarts > 0:
            return ReadyResult(False, "died", time.monotonic() - t0, phase, st)
        code = http_status(base_url + probe.path)
        if code is None:
            phase = "starting"
        elif code == 200:
            ready = http_status(
                base_url + probe.ready_path, api_key if probe.needs_auth_for_ready else api_key
            )
            if ready == 200:
                return ReadyResult(True, "ready", time.monotonic() - t0, "ready", st)
            phase = "loading"
        else:
            phase = "loading"
        now = time.monotonic()
        if now - logs_at >= logs_every_s:
            detail = log_phase(logs())
            logs_at = now
        text = f"{phase}: {detail}" if detail else phase
        if text != last:
            on_phase(text)
            last = text
        if time.monotonic() - t0 > timeout_s:
            return ReadyResult(False, "timeout", time.monotonic() - t0, phase, st)
        time.sleep(poll_s)
