"""`llmops quickstart` with its default port taken: a free port, said on stderr; a second run
reuses that server; an explicit taken `--port` stays a clear error. Real sockets, the real
backend with SmolLM2, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.cli.serve import QUICKSTART_PORT

pytestmark = pytest.mark.slow


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMOPS_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", "quickstart", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture
def default_port_taken() -> Iterator[socket.socket | None]:
    """Hold the default port (if another program already holds it, it is taken all the same)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", QUICKSTART_PORT))
        s.listen(1)
    except OSError:
        s.close()
        yield None
        return
    yield s
    s.close()


def test_taken_default_port_moves_and_a_second_run_reuses(
    backend_home: Path, tmp_path: Path, default_port_taken: socket.socket | None
) -> None:
    home = tmp_path / "home"
    models = backend_home / "models"
    if models.is_dir():  # reuse the session's converted SmolLM2 (seconds, not a conversion)
        home.mkdir()
        (home / "models").symlink_to(models)
    try:
        first = _cli(home, "--json", "-q", "Say hi.")
        assert first.returncode == 0, first.stderr[-3000:]
        out = json.loads(first.stdout)
        port = int(out["endpoint"].split(":")[2].split("/")[0])
        assert port != QUICKSTART_PORT
        assert f"port {QUICKSTART_PORT} on 127.0.0.1 is taken" in first.stderr
        assert f"serving on port {port} instead" in first.stderr

        second = _cli(home, "--json", "-q", "Say hi.")
        assert second.returncode == 0, second.stderr[-3000:]
        again = json.loads(second.stdout)
        assert again["pid"] == out["pid"] and again["endpoint"] == out["endpoint"]
        assert f"reusing the quickstart server (pid {out['pid']}) on port {port}" in second.stderr

        explicit = _cli(home, "--port", str(QUICKSTART_PORT), "-q", "Say hi.")
        assert explicit.returncode != 0
        assert f"port {QUICKSTART_PORT} on 127.0.0.1 is taken by another program" in explicit.stderr
        assert "Traceback" not in explicit.stderr
        # the refused run left the running quickstart alone
        third = _cli(home, "--json", "-q", "Say hi.")
        assert third.returncode == 0, third.stderr[-3000:]
        assert json.loads(third.stdout)["pid"] == out["pid"]
    finally:
        stopped = _cli(home, "--stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
