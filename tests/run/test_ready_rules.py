"""Readiness, rule by rule (llmops/run/ready.py), against scripted HTTP servers.

The engine states of engines.md §3: nothing listening means "starting"; a non-200 health means
"loading"; ready only when the ready route answers 200 with the key; a dead or restarting
engine ends the wait at once; phases are reported once per change, with the log's progress
line; a timeout says so. Fast (well under a second each), so the mutation benchmark maps
``run/ready.py`` here first.
"""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from llmops.net import http_status
from llmops.plan.launch import HealthProbe
from llmops.run.docker import RuntimeState
from llmops.run.ready import ReadyResult, log_phase, wait_ready
from tests.client.servers import Handler, ScriptedServer

KEY = "sk-llmops-ready-rules-0123"


def _status(code: int) -> Callable[[Handler, bytes], None]:
    def route(h: Handler, body: bytes) -> None:
        h.reply(code, {"status": code})

    return route


def _keyed(h: Handler, body: bytes) -> None:
    ok = h.headers.get("Authorization") == f"Bearer {KEY}"
    h.reply(200 if ok else 401, {"object": "list", "data": []})


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def _server(made: list[ScriptedServer], health: int, models: int | None = None) -> ScriptedServer:
    routes = {("GET", "/health"): _status(health)}
    routes[("GET", "/v1/models")] = _keyed if models is None else _status(models)
    s = ScriptedServer(routes)
    made.append(s)
    return s


def _free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _running(restarts: int = 0) -> RuntimeState:
    return RuntimeState("d", True, True, "running", restarts=restarts, ident="1")


def _wait(
    url: str,
    *,
    state: Callable[[], RuntimeState] = _running,
    logs: str = "",
    key: str | None = KEY,
    timeout_s: float = 0.5,
) -> tuple[ReadyResult, list[str]]:
    phases: list[str] = []
    r = wait_ready(
        url,
        HealthProbe(),
        api_key=key,
        state=state,
        logs=lambda: logs,
        timeout_s=timeout_s,
        on_phase=phases.append,
        poll_s=0.1,
    )
    return r, phases


# ------------------------------------------------------------------------- http_status


def test_http_status_codes_and_silence(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 200)
    assert http_status(f"{s.url}/health") == 200
    assert http_status(f"{s.url}/v1/models") == 401  # an HTTP error is a status, not silence
    assert http_status(f"{s.url}/v1/models", KEY) == 200
    assert http_status(_free_url() + "/health") is None  # nothing listening


def test_http_status_sends_a_key_only_when_there_is_one(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 200)
    http_status(f"{s.url}/health")
    http_status(f"{s.url}/health", "")
    http_status(f"{s.url}/health", KEY)
    sent = [headers.get("Authorization") for _m, _p, headers, _b in s.requests]
    assert sent == [None, None, f"Bearer {KEY}"]


def test_probe_and_poll_defaults() -> None:
    """One probe waits at most 3 s (engines.md §3: a 2-5 s timeout); the loop asks every 0.2 s,
    so `up` returns within a fraction of a second of the engine serving (issue 13's target:
    within 1 s), and reads the log for the phase once a second."""
    assert inspect.signature(http_status).parameters["timeout_s"].default == 3.0
    assert inspect.signature(wait_ready).parameters["poll_s"].default == 0.2
    assert inspect.signature(wait_ready).parameters["logs_every_s"].default == 1.0


# ------------------------------------------------------------------------- log_phase


def test_log_phase_is_the_last_progress_line() -> None:
    log = (
        "INFO starting server\n"
        "Downloading shards: 3/4 (model-00003-of-00004.safetensors)\n"
        "some other line\n"
        "  Loading safetensors checkpoint shards:  50% 2/4  \n"
        "INFO nothing here\n"
    )
    assert log_phase(log) == "Loading safetensors checkpoint shards:  50% 2/4"
    assert log_phase("Warming up model\n") == "Warming up model"
    assert log_phase("INFO uvicorn running\nready\n") is None
    assert log_phase("") is None


# ------------------------------------------------------------------------- wait_ready


def test_ready_needs_the_ready_route_with_the_key(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 200)
    r, phases = _wait(s.url)
    assert (r.ready, r.reason, r.phase) == (True, "ready", "ready")
    assert 0 <= r.elapsed_s < 5 and r.status == _running()
    assert phases == []  # ready at the first look: nothing to report
    r, phases = _wait(s.url, key="sk-wrong")
    assert (r.ready, r.reason, r.phase) == (False, "timeout", "loading")
    assert phases == ["loading"]


def test_health_not_200_is_loading_even_if_models_answers(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 503, models=200)
    r, phases = _wait(s.url, logs="Loading model weights\n")
    assert (r.ready, r.reason, r.phase) == (False, "timeout", "loading")
    assert phases == ["loading: Loading model weights"]  # reported once, with the log's line
    health = [p for _m, p, _h, _b in s.requests if p == "/health"]
    assert 3 <= len(health) <= 12  # polled every 0.1 s for 0.5 s, not in a busy loop
    assert all(p != "/v1/models" for _m, p, _h, _b in s.requests)


def test_nothing_listening_is_starting_then_timeout() -> None:
    r, phases = _wait(_free_url(), logs="Downloading weights 1.2/14.5 GB\n", timeout_s=0.3)
    assert (r.ready, r.reason, r.phase) == (False, "timeout", "starting")
    assert phases == ["starting: Downloading weights 1.2/14.5 GB"]
    assert 0.3 <= r.elapsed_s < 5


def test_phase_changes_are_each_reported_once(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 503, models=503)
    seen = iter(["", "", "Loading model\n", "Loading model\n", "Loading model\n"])
    last = ["Loading model\n"]

    def logs() -> str:
        return next(seen, last[0])

    phases: list[str] = []
    wait_ready(
        s.url,
        HealthProbe(),
        api_key=KEY,
        state=_running,
        logs=logs,
        timeout_s=0.6,
        on_phase=phases.append,
        poll_s=0.05,
        logs_every_s=0.0,  # the log read on every poll, as on a slow start
    )
    assert phases == ["loading", "loading: Loading model"]


def test_the_log_is_read_at_most_once_per_logs_every_s(servers: list[ScriptedServer]) -> None:
    """Health is polled every poll_s; the log (a Docker API call) only every logs_every_s."""
    s = _server(servers, 503, models=503)
    reads: list[float] = []

    def logs() -> str:
        reads.append(time.monotonic())
        return "Loading model\n"

    res = wait_ready(
        s.url, HealthProbe(), api_key=KEY, state=_running, logs=logs, timeout_s=1.3,
        poll_s=0.05, logs_every_s=0.5,
    )  # fmt: skip
    assert res.reason == "timeout"
    assert 1 <= len(reads) <= 3, reads  # at 0, ~0.5, ~1.0 s at most: not once per poll
    assert all(b - a >= 0.5 for a, b in zip(reads, reads[1:], strict=False))
    health = [p for _m, p, _h, _b in s.requests if p == "/health"]
    assert len(health) > len(reads)  # health itself was asked on every poll


def test_a_dead_or_restarting_engine_ends_the_wait_at_once(servers: list[ScriptedServer]) -> None:
    s = _server(servers, 200)
    dead = RuntimeState("d", True, False, "exited", exit_code=1)
    r, _ = _wait(s.url, state=lambda: dead, timeout_s=30)
    assert (r.ready, r.reason, r.phase, r.status) == (False, "died", "starting", dead)
    assert 0 <= r.elapsed_s < 5
    r, _ = _wait(s.url, state=lambda: _running(restarts=1), timeout_s=30)
    assert (r.ready, r.reason) == (False, "died") and r.elapsed_s < 5
    assert s.requests == []  # never probed: the state is checked first
