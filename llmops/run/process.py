"""Supervised processes: the one place llmops starts a detached program and later finds, reads
and stops it again.

Native engines (``run/native.py``), tunnels (``run/tunnels/``) and the quickstart server
(``cli/serve.py``) all run the same way: the program gets its own session and process group
(it outlives llmops and is stopped as a group: engines fork workers), its output goes to a log
file, and llmops records its pid together with its start time (and, for engines, its command
line). A pid alone may by now belong to someone else's process; every check here compares the
start time (and the command line when one is given) before trusting it, and only then signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Supervised:
    """A program :func:`spawn` started: what identifies it later, and this process's handle."""

    pid: int
    create_time: float | None
    argv: tuple[str, ...]  # as the kernel shows it when that matches what was started
    log: Path
    proc: subprocess.Popen[bytes]


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = True,
) -> Supervised:
    """Start ``argv`` in its own session with stdin from /dev/null and stdout+stderr to ``log``.

    Args:
        argv: the program and its arguments.
        log: the log file (appended to, or truncated first when ``append`` is False).
        env: its environment (default: this process's).
        cwd: its working directory (default: this process's).

    Raises:
        FileNotFoundError: the program does not exist (callers say how to install it).
        OSError: it could not be started otherwise.
    """
    log_file = open(log, "ab" if append else "wb", buffering=0)  # noqa: SIM115 - the child keeps it
    try:
        proc = subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group: outlives us, stoppable
        )
    finally:
        log_file.close()
    # What identifies the process later: its start time and command line (as given, and as the
    # kernel shows it: a #! script runs under its interpreter).
    shown = cmdline(proc.pid)
    # Popen returns once exec has begun; the kernel fills in the new command line a moment
    # later (until then it reads empty), so wait briefly for it.
    deadline = time.monotonic() + 1.0
    while shown == [] and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        shown = cmdline(proc.pid)
    kept = shown if shown and argv_matches(shown, argv) else list(argv)
    return Supervised(proc.pid, create_time(proc.pid), tuple(kept), Path(log), proc)


# ------------------------------------------------------------------------------ identity


def create_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None when there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """``pid``'s command line, or None when it cannot be read."""
    import psutil

    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def argv_matches(shown: Sequence[str], argv: Sequence[str]) -> bool:
    """Whether a process's command line is the one recorded: equal, or the same after an
    interpreter the kernel put in front (a ``#!`` script started as ``argv[0]``)."""
    cmd, want = list(shown), list(argv)
    if not cmd or not want:
        return False
    if cmd == want:
        return True
    n = len(want)
    if len(cmd) > n and cmd[len(cmd) - n + 1 :] == want[1:]:
        return os.path.basename(cmd[len(cmd) - n]) == os.path.basename(want[0])
    return False


def alive(pid: int, created: float | None, argv: Sequence[str] | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and (when ``created`` is known) is the process
    started then, and (when ``argv`` is given) runs that command line."""
    import psutil

    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        if created is not None and abs(p.create_time() - created) >= 1.0:
            return False
        return argv is None or argv_matches(p.cmdline(), argv)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return False


def gone(pid: int, created: float | None) -> bool:
    """The process started at ``created`` (any, when None) has exited or is a zombie.

    Not the same as "not alive": while a process exits its command line is already empty, so
    an argv check would call it gone before it is."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return True
        return created is not None and abs(p.create_time() - created) >= 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


# ------------------------------------------------------------------------------ stopping


def stop_group(
    pid: int,
    created: float | None,
    grace_s: float,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    argv: Sequence[str] | None = None,
) -> bool:
    """SIGTERM the process group ``pid`` leads, wait up to ``grace_s``, then SIGKILL it.

    Nothing is signalled unless ``pid`` is :func:`alive` with that start time (and ``argv``). A
    process that is not the leader of its group (not one llmops started) gets the signals
    alone. Returns once it is gone; ``proc`` (our handle, if this process started it) is reaped.

    Returns:
        False when there was nothing to signal, True when it was signalled.

    Raises:
        PermissionError: not allowed to signal it (another user's process).
    """
    if not alive(pid, created, argv):
        return False
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return False

    def send(sig: int) -> None:
        if pgid == pid:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)

    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return True
    if not _wait_gone(pid, created, grace_s, proc):
        with contextlib.suppress(ProcessLookupError):
            send(signal.SIGKILL)
        _wait_gone(pid, created, 5.0, proc)  # SIGKILL is delivered asynchronously
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return True


def _wait_gone(
    pid: int, created: float | None, within_s: float, proc: subprocess.Popen[bytes] | None
) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        if proc is not None:
            proc.poll()  # reap our own child, else it stays a zombie
        if gone(pid, created):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# ------------------------------------------------------------------------------ logs


def read_log(path: Path, lines: int | None = None) -> str:
    """The log's last ``lines`` lines (all of it with None), line ends kept; "" if unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    if lines is None:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:])


def tail(path: Path, n: int = 15) -> str:
    """The log's last ``n`` lines joined by newlines, for an error message; "" if unreadable."""
    return "\n".join(read_log(path, n).splitlines())


def follow(
    path: Path, running: Callable[[], bool], lines: int | None = 50, poll_s: float = 0.5
) -> Iterator[str]:
    """The log's last ``lines`` lines, then whatever is appended, until ``running()`` is False.

    The file is opened now, so a missing one raises here rather than at the first ``next()``.

    Raises:
        OSError: the log cannot be opened.
    """
    f = open(path, "rb")  # noqa: SIM115 - closed by the generator
    return _follow(f, path, running, lines, poll_s)


def _follow(
    f: IO[bytes], path: Path, running: Callable[[], bool], lines: int | None, poll_s: float
) -> Iterator[str]:
    with f:
        yield read_log(path, lines)
        f.seek(0, os.SEEK_END)
        while True:
            chunk = f.read()
            if chunk:
                yield chunk.decode(errors="replace")
                continue
            if not running():
                return
            time.sleep(poll_s)


__all__ = [
    "Supervised",
    "alive",
    "argv_matches",
    "cmdline",
    "create_time",
    "follow",
    "gone",
    "read_log",
    "spawn",
    "stop_group",
    "tail",
]
