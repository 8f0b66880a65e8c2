"""``llmops.net``: the one port check and the one HTTP probe, against real sockets and a real
local ``http.server`` (nothing faked)."""

from __future__ import annotations

import http.server
import inspect
import socket
import threading
from collections.abc import Iterator

import pytest

from llmops.net import free_port, get_json, http_status, port_free

KEY = "sk-llmops-net-0123"


# ------------------------------------------------------------------------------ ports


def _listening(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen()
    return s


def test_a_listening_port_is_taken_and_free_again_once_closed() -> None:
    s = _listening()
    port = s.getsockname()[1]
    try:
        assert port_free(port, "127.0.0.1") is False
        assert port_free(port) is False  # 0.0.0.0 (the default) also sees a loopback listener
    finally:
        s.close()
    assert port_free(port, "127.0.0.1") is True
    assert port_free(port) is True


def test_a_port_bound_on_all_addresses_is_taken_on_loopback_too() -> None:
    s = _listening("0.0.0.0")
    try:
        assert port_free(s.getsockname()[1], "127.0.0.1") is False
    finally:
        s.close()


def test_free_port_gives_a_port_that_is_free_and_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_free(port, "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # does not raise


def test_free_port_never_gives_a_port_someone_listens_on() -> None:
    s = _listening()
    try:
        assert all(free_port() != s.getsockname()[1] for _ in range(20))
    finally:
        s.close()


# ------------------------------------------------------------------------------ http_status


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"{}"
        if self.path == "/health":
            code = 200
        elif self.path == "/doc":
            code, body = 200, b'{"tunnels": [1]}'
        elif self.path == "/text":
            code, body = 200, b"<html>not json</html>"
        elif self.path == "/empty":
            code, body = 200, b""
        elif self.path == "/gone":
            code, body = 410, b'{"error": "gone"}'
        elif self.path == "/v1/models":
            code = 200 if self.headers.get("Authorization") == f"Bearer {KEY}" else 401
        else:
            code = 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


def test_the_status_of_what_answers_an_http_error_included(server: str) -> None:
    assert http_status(server + "/health") == 200
    assert http_status(server + "/v1/models") == 401  # an HTTP error is a status, not silence
    assert http_status(server + "/v1/models", KEY) == 200
    assert http_status(server + "/nowhere", KEY) == 404


def test_the_key_is_sent_only_when_there_is_one_and_ngroks_warning_is_skipped(
    server: str,
) -> None:
    http_status(server + "/health")
    http_status(server + "/health", "")
    http_status(server + "/health", KEY)
    assert [h.get("authorization") for h in _Handler.seen] == [None, None, f"Bearer {KEY}"]
    assert all(h.get("ngrok-skip-browser-warning") == "1" for h in _Handler.seen)


def test_a_refused_connection_is_none() -> None:
    port = free_port()
    assert port_free(port, "127.0.0.1")
    assert http_status(f"http://127.0.0.1:{port}/health", KEY, timeout_s=2.0) is None


def test_a_silent_listener_is_none_after_the_timeout() -> None:
    s = _listening()  # accepts (the kernel does) but never answers
    try:
        assert http_status(f"http://127.0.0.1:{s.getsockname()[1]}/", timeout_s=0.3) is None
    finally:
        s.close()


@pytest.mark.parametrize("url", ["not a url", "", "ftp//x", "http://", "http://[::1"])
def test_a_malformed_url_is_none_not_a_crash(url: str) -> None:
    assert http_status(url, KEY, timeout_s=0.5) is None


def test_get_json_reads_the_document_of_any_status(server: str) -> None:
    assert get_json(server + "/doc") == (200, {"tunnels": [1]})
    assert get_json(server + "/gone") == (410, {"error": "gone"})  # an HTTP error keeps its body
    assert get_json(server + "/text") == (200, None)
    assert get_json(server + "/empty") == (200, None)


def test_get_json_of_nothing_or_a_malformed_url_is_none() -> None:
    assert get_json(f"http://127.0.0.1:{free_port()}/api", timeout_s=2.0) == (None, None)
    assert get_json("not a url") == (None, None)


def test_the_default_timeout_is_readiness_pollings() -> None:
    """One probe waits at most 3 s by default (engines.md §3); callers that wait longer (a
    tunnel's public URL) pass their own."""
    assert inspect.signature(http_status).parameters["timeout_s"].default == 3.0
