"""A real terminal for tests of live views: a command in a detached tmux session of its own
server, its screen read back with ``capture-pane``, keys sent with ``send-keys``, and its exit
code written to a file (the shell keeps the pane open afterwards so the code can be read)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class Terminal:
    def __init__(self, base: list[str], session: str, done: Path) -> None:
        self.base, self.session, self.done = base, session, done

    def screen(self) -> str:
        return subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", self.session],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def wait_for(self, ready: Callable[[str], bool], timeout_s: float) -> str:
        """The screen once ``ready`` holds for it, or the last one read when time runs out."""
        deadline, text = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            text = self.screen()
            if ready(text):
                break
            time.sleep(0.3)
        return text

    def press(self, keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.session, keys], check=True)

    def exit_code(self, timeout_s: float) -> str | None:
        """The command's exit code once it has ended, else None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.done.exists():
            time.sleep(0.2)
        return self.done.read_text().strip() if self.done.exists() else None


@contextmanager
def terminal(command: str, tmp_path: Path, name: str, size: tuple[int, int]) -> Iterator[Terminal]:
    """Run ``command`` (a shell line) in a ``size`` (columns, lines) terminal."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    base = [tmux, "-L", f"llmops-{name}-{tmp_path.name}"]
    done = tmp_path / f"{name}-exit-code"
    line = f"{command}; echo $? > {done}; sleep 30"
    cols, lines = size
    subprocess.run(
        [*base, "new-session", "-d", "-s", name, "-x", str(cols), "-y", str(lines), line],
        check=True,
    )
    try:
        yield Terminal(base, name, done)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
