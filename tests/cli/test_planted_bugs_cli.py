"""CLI tests that kill mutants which survived the suite (each docstring names its bug)."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.net import http_status
from llmops.paths import llmops_home
from llmops.run import launching
from llmops.run.state import DeploymentStore

# A stand-in for the bundled torch backend, run by the native runtime exactly where
# `python -m llmops serve ...` would run: it serves /health, and /v1/models with the API key.
STAND_IN = r"""
import http.server, os, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
key = os.environ.get("LLMOPS_API_KEY")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/v1/models" and self.headers.get("Authorization") != f"Bearer {key}":
            body, code = b'{"error":{"message":"Invalid API key"}}', 401
        elif self.path in ("/health", "/v1/models"):
            body, code = b'{"object":"list","data":[{"id":"smollm2-135m"}]}', 200
        else:
            body, code = b"{}", 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("Loading stand-in", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def stand_in_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    exe = tmp_path / "stand-in-python"
    exe.write_text(f"#!{sys.executable}\n{STAND_IN}")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(launching, "_python", lambda: str(exe))
    yield exe
    assert cli("down", "--all", "--grace", "1").exit_code == 0


def test_up_json_never_prints_the_api_key(stand_in_python: Path) -> None:
    """Kills: "`up --json` prints the API key" (cli/launch.py _print_ready).

    A real native `up` (the stand-in engine behind the real runtime and readiness wait): the
    JSON names the 0600 secrets file, and the key itself (read back from that file, and
    proven to be the one the engine checks) appears nowhere in stdout or stderr."""
    r = cli(
        "up",
        "smollm2",
        "--engine",
        "torch",
        "--runtime",
        "native",
        "--name",
        "pb-json",
        "--timeout",
        "60",
        "--json",
    )
    assert r.exit_code == 0, r.output
    secrets = DeploymentStore(llmops_home()).secrets_path("pb-json")
    key = next(
        line.split("=", 1)[1].strip().strip("'\"")
        for line in secrets.read_text().splitlines()
        if line.startswith("LLMOPS_API_KEY=")
    )
    assert key.startswith("sk-llmops-") and len(key) > 20
    assert key not in r.stdout and key not in r.stderr
    assert key[-8:] not in r.stdout  # not even a tail of it
    doc = json.loads(r.stdout)
    assert doc["ready"] is True and doc["deployment"] == "pb-json"
    assert set(doc) == {
        "deployment",
        "engine",
        "runtime",
        "ready",
        "endpoint",
        "served_model_name",
        "api_key_file",
        "elapsed_s",
        "schema",
    }
    assert doc["api_key_file"] == str(secrets)
    assert (secrets.stat().st_mode & 0o777) == 0o600
    # the key in that file is the one the engine checks
    assert http_status(doc["endpoint"] + "/models", key) == 200
    assert http_status(doc["endpoint"] + "/models", None) == 401
