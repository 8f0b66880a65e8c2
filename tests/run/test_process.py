"""llmops.run.process with real processes: spawn, identity, stopping a group, reading logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from llmops.run import process


def _wait_for(cond, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_spawn_detaches_logs_both_streams_and_records_identity(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("old line\n")
    code = "import os, sys, time; print('out', os.getcwd(), os.environ['X']); sys.stdout.flush(); print('err', file=sys.stderr); time.sleep(30)"
    argv = [sys.executable, "-c", code]
    child = process.spawn(argv, log, env={**os.environ, "X": "42"}, cwd=tmp_path)
    try:
        assert child.pid == child.proc.pid and child.log == log
        assert os.getpgid(child.pid) == child.pid and os.getsid(child.pid) == child.pid
        assert child.create_time == psutil.Process(child.pid).create_time()
        assert child.argv == tuple(argv)
        assert _wait_for(lambda: "err" in log.read_text())
        assert log.read_text().splitlines() == ["old line", f"out {tmp_path} 42", "err"]
        assert process.alive(child.pid, child.create_time, child.argv)
    finally:
        assert process.stop_group(child.pid, child.create_time, 5, proc=child.proc)
    truncated = process.spawn(["sh", "-c", "echo new"], log, append=False)
    truncated.proc.wait(10)
    assert log.read_text() == "new\n"


def test_a_script_is_recorded_as_the_kernel_shows_it(tmp_path: Path) -> None:
    script = tmp_path / "engine"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    script.chmod(0o755)
    child = process.spawn([str(script), "--port", "1"], tmp_path / "log")
    try:
        assert child.argv == (sys.executable, str(script), "--port", "1")
        assert process.argv_matches(child.argv, [str(script), "--port", "1"])
        assert process.alive(child.pid, child.create_time, [str(script), "--port", "1"])
    finally:
        process.stop_group(child.pid, child.create_time, 5, proc=child.proc)


def test_argv_matches() -> None:
    assert process.argv_matches(["/bin/x", "a"], ["/bin/x", "a"])
    assert process.argv_matches(["/usr/bin/python3", "/opt/x", "a"], ["/opt/x", "a"])
    assert process.argv_matches(["python3", "-E", "/opt/x", "a"], ["x", "a"])  # same basename
    assert not process.argv_matches(["/usr/bin/python3", "/opt/y", "a"], ["/opt/x", "a"])
    assert not process.argv_matches(["/bin/x", "b"], ["/bin/x", "a"])
    assert not process.argv_matches([], ["/bin/x"]) and not process.argv_matches(["/bin/x"], [])


def test_alive_checks_start_time_argv_and_exit(tmp_path: Path) -> None:
    child = process.spawn(["sleep", "30"], tmp_path / "log")
    created = child.create_time
    assert created is not None
    try:
        assert process.alive(child.pid, created) and process.alive(child.pid, None)
        assert not process.alive(child.pid, created + 5)  # a recycled pid: another process
        assert not process.alive(child.pid, created, ["sleep", "31"])
        assert not process.gone(child.pid, created) and process.gone(child.pid, created + 5)
        for bad in (0, -1, True):
            assert not process.alive(bad, None)  # type: ignore[arg-type]
    finally:
        child.proc.kill()
    child.proc.wait(5)
    assert not process.alive(child.pid, created) and process.gone(child.pid, created)
    assert process.create_time(child.pid) is None and process.cmdline(child.pid) is None


def test_stop_group_stops_the_whole_group(tmp_path: Path) -> None:
    # the leader forks a worker (as engines do); both go with the group
    child = process.spawn(["sh", "-c", "sleep 60 & echo $!; wait"], tmp_path / "log")
    assert _wait_for(lambda: (tmp_path / "log").read_text().strip() != "")
    worker = int((tmp_path / "log").read_text())
    assert os.getpgid(worker) == child.pid
    assert process.stop_group(child.pid, child.create_time, 5, proc=child.proc)
    assert child.proc.returncode is not None and _wait_for(lambda: _gone(worker))
    assert not process.stop_group(child.pid, child.create_time, 5)  # nothing left to signal


def test_stop_group_kills_what_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = process.spawn([sys.executable, "-c", code], tmp_path / "log")
    assert _wait_for(lambda: "ready" in (tmp_path / "log").read_text())
    t0 = time.monotonic()
    assert process.stop_group(child.pid, child.create_time, 0.5, proc=child.proc)
    took = time.monotonic() - t0
    assert child.proc.returncode == -signal.SIGKILL and 0.5 <= took < 8


def test_stop_group_signals_nothing_it_cannot_identify(tmp_path: Path) -> None:
    child = process.spawn(["sleep", "30"], tmp_path / "log")
    assert child.create_time is not None
    try:
        assert not process.stop_group(child.pid, child.create_time + 5, 1)
        assert not process.stop_group(child.pid, child.create_time, 1, argv=["sleep", "31"])
        time.sleep(0.1)
        assert child.proc.poll() is None  # still running: never signalled
    finally:
        assert process.stop_group(child.pid, child.create_time, 5, proc=child.proc)


def test_a_process_that_leads_no_group_is_signalled_alone() -> None:
    """Not started by spawn: it shares this test's process group, which must survive."""
    proc = subprocess.Popen(["sleep", "30"])
    assert os.getpgid(proc.pid) == os.getpgid(0) != proc.pid
    assert process.stop_group(proc.pid, process.create_time(proc.pid), 5, proc=proc)
    assert proc.returncode == -signal.SIGTERM


def test_read_log_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"one\r\ntwo\n\xffthree\nfour")
    assert process.read_log(log) == "one\r\ntwo\n\ufffdthree\nfour"
    assert process.read_log(log, 2) == "\ufffdthree\nfour"
    assert process.tail(log, 3) == "two\n\ufffdthree\nfour"
    assert process.tail(log) == "one\ntwo\n\ufffdthree\nfour"
    assert process.read_log(tmp_path / "missing", 5) == "" and process.tail(tmp_path / "no") == ""


def test_follow_yields_the_tail_then_new_output_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("a\nb\nc\n")
    running = threading.Event()
    running.set()
    stream = process.follow(log, running.is_set, 2, poll_s=0.02)
    assert next(stream) == "b\nc\n"

    def write_then_stop() -> None:
        time.sleep(0.1)
        with log.open("a") as f:
            f.write("d\n")
        time.sleep(0.2)
        running.clear()

    t = threading.Thread(target=write_then_stop)
    t.start()
    rest = list(stream)
    t.join()
    assert "".join(rest) == "d\n"
    with pytest.raises(OSError):
        process.follow(tmp_path / "missing", running.is_set)
