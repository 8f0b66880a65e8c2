"""`kill`'s rules one by one (llmops/run/kill.py): what matches, what is protected, what each
outcome is. Real processes where a pid matters; the tunnel manager and deployments view are
replaced by small stand-ins exposing the same two methods (``status``, ``records``, ``stop``),
since what is under test is the sequence's own logic. Fast, so the mutation benchmark maps
``run/kill.py`` here first.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from llmops.run.kill import (
    KNOWN_IMAGES,
    KNOWN_PROGRAMS,
    KillResult,
    KillSequence,
    KillTarget,
    image_repo,
    match_argv,
    match_container,
)

OWN = "0123456789abcdef"


# ------------------------------------------------------------------------- matching


@pytest.mark.parametrize("prog", sorted(KNOWN_PROGRAMS))
def test_every_known_program_matches_by_its_program_name(prog: str) -> None:
    assert match_argv([prog, "--port", "1"]) == f"program {prog}"
    assert match_argv([f"/opt/x/bin/{prog}/"]) == f"program {prog}"  # a trailing slash too
    assert match_argv(["python3", f"/usr/local/bin/{prog}", "serve"]) == f"python script {prog}"


def test_the_known_sets_are_the_engines_and_tunnels() -> None:
    assert {"text-generation-launcher", "vllm", "llama-server", "ngrok"} <= KNOWN_PROGRAMS
    assert "vllm/vllm-openai" in KNOWN_IMAGES


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (
            ["python3", "-m", "vllm.entrypoints.openai.api_server"],
            "python -m vllm.entrypoints.openai.api_server",
        ),
        (
            ["python3", "-mtext_generation_server.cli", "serve"],
            "python -m text_generation_server.cli",
        ),
        (["python3", "-W", "ignore", "vllm"], "python script vllm"),  # -W takes a value
        (["python3", "-X", "dev", "vllm"], "python script vllm"),
        (["python3", "-Q", "new", "vllm"], "python script vllm"),
        (["python3", "--check-hash-based-pycs", "always", "vllm"], "python script vllm"),
        (["python3", "-u", "-O", "gradio"], "python script gradio"),
    ],
)
def test_python_interpreters_match_by_module_or_script(argv: list[str], why: str) -> None:
    assert match_argv(argv) == why


@pytest.mark.parametrize(
    "argv",
    [
        ["python3", "-c", "vllm"],  # code on the command line: never "the script"
        ["python3", "-cimport vllm", "vllm"],
        ["python3", "-", "vllm"],  # a script on stdin; "vllm" is its argument
        ["python3", "-m"],
        ["python3", "-u"],
        ["python3", "-W", "vllm"],  # the value of -W, not a script
        ["python3", "-m", "pytest", "vllm"],
        ["python3"],
    ],
)
def test_python_decoys_never_match(argv: list[str]) -> None:
    assert match_argv(argv) is None


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        ("ghcr.io/ggml-org/llama.cpp:server-cuda", "ghcr.io/ggml-org/llama.cpp"),
        ("index.docker.io/vllm/vllm-openai:latest", "vllm/vllm-openai"),
        ("registry-1.docker.io/vllm/vllm-openai", "vllm/vllm-openai"),
        ("docker.io/library/ubuntu:24.04", "ubuntu"),
        ("library/busybox", "busybox"),
        ("localhost:5000/team/vllm@sha256:" + "a" * 64, "localhost:5000/team/vllm"),
    ],
)
def test_image_references_normalise_to_the_repository(ref: str, repo: str) -> None:
    assert image_repo(ref) == repo


def test_container_matching_rules() -> None:
    # only this install's deployments are left to `down`; an install label alone is nothing
    assert match_container(["vllm/vllm-openai"], None, [], {"llmops.install": OWN}, OWN) == (
        "image vllm/vllm-openai"
    )
    assert match_container(["busybox"], None, [], {}) is None  # no process path: no argv match
    assert match_container(["busybox"], "/usr/bin/llama-server", ["-m", "x"], {}) == (
        "container process: program llama-server"
    )


# ------------------------------------------------------------------------- own targets


@dataclass
class Tunnels:
    """The two read methods and ``stop`` of TunnelManager."""

    running: list[Any] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    present: bool = True

    def status(self) -> list[Any]:
        return self.running

    def records(self) -> list[Any]:
        return self.running

    def stop(self, name: str, grace_s: float = 10.0) -> bool:
        self.stopped.append(name)
        return self.present


@dataclass
class Deps:
    """``status(probe=False)`` and ``stop`` of Deployments, plus its store's home."""

    rows: list[Any] = field(default_factory=list)
    result: Any = True
    store: Any = None

    def status(self, probe: bool = True) -> list[Any]:
        return self.rows

    def stop(self, name: str, grace_s: int = 20) -> bool:
        if isinstance(self.result, Exception):
            raise self.result
        return bool(self.result)


def _row(name: str, status: str, runtime: str = "docker", ident: str | None = "c0ffee") -> Any:
    return SimpleNamespace(name=name, status=status, runtime=runtime, ident=ident)


def test_own_targets_are_running_tunnels_then_live_deployments(tmp_path: Path) -> None:
    t = SimpleNamespace(name="port-8000", pid=4242, via="cloudflared", running=True)
    gone = SimpleNamespace(name="old", pid=1, via="ngrok", running=False)
    deps = Deps(
        rows=[
            _row("a", "running"),
            _row("b", "restarting"),
            _row("c", "created", ident=None),
            _row("d", "exited"),
            _row("e", "missing"),
        ]
    )
    seq = KillSequence(Tunnels(running=[t, gone]), deps)
    assert seq.own_targets() == [
        KillTarget("tunnel", "port-8000", "4242", "llmops tunnel (cloudflared)", False, None),
        KillTarget("deployment", "a", "c0ffee", "llmops deployment (docker)", False),
        KillTarget("deployment", "b", "c0ffee", "llmops deployment (docker)", False),
        KillTarget("deployment", "c", "c", "llmops deployment (docker)", False),
    ]


def test_grace_defaults() -> None:
    assert inspect.signature(KillSequence.execute).parameters["grace_s"].default == 10.0


# ------------------------------------------------------------------------- protection


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Real `llama-server` processes (symlinks to sleep); one with a grandchild."""
    prog = tmp_path / "llama-server"
    os.symlink(shutil.which("sleep") or "/bin/sleep", prog)
    made: dict[str, subprocess.Popen[bytes]] = {
        "docker_pid": subprocess.Popen([str(prog), "1000"]),
        "plain": subprocess.Popen([str(prog), "1000"]),
        "parent": subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import subprocess,time; subprocess.Popen(['sh','-c','{prog} 1000']); time.sleep(1000)",
            ]
        ),
    }
    deadline = psutil.time.time() + 10
    while not any(
        match_argv(c.cmdline()) for c in psutil.Process(made["parent"].pid).children(recursive=True)
    ):
        assert psutil.time.time() < deadline
        psutil.time.sleep(0.05)
    yield made
    for p in made.values():
        for c in psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []:
            c.kill()
        p.kill()
        p.wait()


def _foreign_pids(seq: KillSequence, mine: set[int]) -> set[int]:
    seq.process_filter = lambda p: p.pid in mine
    return {int(t.ident) for t in seq.foreign_processes()}


def test_protection_follows_native_pids_and_their_whole_tree(engines) -> None:  # type: ignore[no-untyped-def]
    parent = engines["parent"].pid
    grandchild = next(
        c.pid for c in psutil.Process(parent).children(recursive=True) if match_argv(c.cmdline())
    )
    mine = {engines["docker_pid"].pid, engines["plain"].pid, grandchild}
    rows = [
        _row("native", "running", "native", str(parent)),  # owns the grandchild (two levels)
        # a docker deployment's ident is a container id, even when it looks like a pid
        _row("dock", "running", "docker", str(engines["docker_pid"].pid)),
        _row("dock2", "running", "docker", "abc123"),
        _row("native-no-pid", "created", "native", None),
        _row("native-odd", "running", "native", "not-a-pid"),
    ]
    seq = KillSequence(Tunnels(), Deps(rows=rows))
    assert _foreign_pids(seq, mine) == {engines["docker_pid"].pid, engines["plain"].pid}
    found = {int(t.ident): t for t in seq.foreign_processes()}
    plain = found[engines["plain"].pid]
    assert plain.create_time == psutil.Process(plain.ident and int(plain.ident)).create_time()
    assert (plain.kind, plain.name, plain.foreign) == ("process", "llama-server", True)


# ------------------------------------------------------------------------- execution


def test_execute_reports_each_outcome_in_order() -> None:
    tunnels = Tunnels(present=False)
    seq = KillSequence(tunnels, Deps(result=False))
    t = KillTarget("tunnel", "tun", "1", "llmops tunnel (ngrok)", False)
    d = KillTarget("deployment", "dep", "x", "llmops deployment (docker)", False)
    assert seq.execute([d, t], 1) == [KillResult(t, "gone"), KillResult(d, "gone")]
    assert tunnels.stopped == ["tun"]
    boom = KillSequence(Tunnels(), Deps(result=RuntimeError("engine refused")))
    assert boom.execute([d], 1) == [KillResult(d, "failed", "engine refused")]
    ok = KillSequence(Tunnels(), Deps(result=True))
    assert ok.execute([t, d], 1) == [KillResult(t, "stopped"), KillResult(d, "stopped")]


def _target(p: psutil.Process, create_time: float | None) -> KillTarget:
    return KillTarget(
        "process", "llama-server", str(p.pid), "program llama-server", True, create_time
    )


def test_stopping_processes_checks_identity_first(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "1000"])
    other = subprocess.Popen(["sleep", "1000"])
    try:
        p, q = psutil.Process(sleeper.pid), psutil.Process(other.pid)
        ct = p.create_time()
        seq = KillSequence(Tunnels(), Deps())
        # exactly 1 s off is within the tolerance; 1.5 s off is another process on that pid
        same = seq._stop_processes([_target(p, ct - 1.0)], 2)
        assert [r.outcome for r in same] == ["stopped"] and sleeper.wait(5) is not None
        reused = seq._stop_processes([_target(q, q.create_time() - 1.5)], 2)
        assert reused == [
            KillResult(_target(q, q.create_time() - 1.5), "gone", "pid reused by another process")
        ]
        assert other.poll() is None
        unknown_age = seq._stop_processes([_target(q, None)], 2)  # no start time recorded
        assert [r.outcome for r in unknown_age] == ["stopped"]
        dead = seq._stop_processes([_target(q, None)], 2)  # already gone
        assert [(r.outcome, r.detail) for r in dead] == [("gone", "")]
    finally:
        for proc in (sleeper, other):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(1000)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ok\n"
        p = psutil.Process(proc.pid)
        (r,) = KillSequence(Tunnels(), Deps())._stop_processes([_target(p, p.create_time())], 0.5)
        assert (r.outcome, r.detail) == ("killed", "did not exit within 0.5s of SIGTERM")
        assert proc.wait(5) is not None and not psutil.pid_exists(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_stopping_a_container_without_docker_is_gone() -> None:
    t = KillTarget("container", "c", "abc", "image vllm/vllm-openai", True)
    assert KillSequence(Tunnels(), Deps(), None)._stop_container(t, 1) == KillResult(t, "gone")
