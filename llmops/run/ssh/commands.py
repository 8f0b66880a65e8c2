"""Running commands over an SSH channel: exit codes, captured or streamed output, timeouts."""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops.errors import RemoteCommandError


@dataclass(frozen=True)
class ExecResult:
    """A finished remote command."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def short(cmd: str, n: int = 80) -> str:
    """``cmd`` cut to ``n`` characters for a message."""
    return cmd if len(cmd) <= n else cmd[: n - 1] + "…"


def pump(
    chan: Any,
    on_out: Callable[[bytes], None],
    on_err: Callable[[bytes], None],
    timeout_s: float | None,
    what: str,
) -> int:
    """Feed a running command's stdout/stderr to ``on_out``/``on_err`` until it ends; its exit
    code (255 when the channel closed without one).

    Raises:
        RemoteCommandError: it did not finish within ``timeout_s`` (``what`` names it).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        progressed = False
        while chan.recv_ready():
            on_out(chan.recv(65536))
            progressed = True
        while chan.recv_stderr_ready():
            on_err(chan.recv_stderr(65536))
            progressed = True
        # sshd may send the exit status before the last output (it reports the child's exit
        # while the pipe still drains), so finish on EOF or close, not on the status alone.
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if drained and chan.exit_status_ready() and (chan.eof_received or chan.closed):
            break
        if chan.closed and not progressed and drained:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise RemoteCommandError(
                f"{what} did not finish within {timeout_s:g} s",
                "the host may be overloaded; run it by hand with `ssh` to see",
            )
        if not progressed:
            with contextlib.suppress(ValueError, OSError):
                select.select([chan], [], [], 0.2)
    # drain anything left after the exit status
    while chan.recv_ready():
        on_out(chan.recv(65536))
    while chan.recv_stderr_ready():
        on_err(chan.recv_stderr(65536))
    code = chan.recv_exit_status()
    return 255 if code == -1 else int(code)
