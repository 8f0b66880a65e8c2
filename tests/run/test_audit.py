"""The exposure audit against real HTTP servers, the real bundled backend and the fake tunnels.

Small stdlib servers stand in for the engines' auth behaviour as their sources define it
(tests/fixtures/engines/*.json ``http_auth``): vLLM's key guards only ``/v1``, ``/v2``,
``/inference`` and ``/cohere``, llama.cpp checks it before routing for every path but
``/health``; the bundled backend is the real one. tests/run/test_audit_standin.py runs
``llmops audit`` against the Docker stand-ins (SGLang, vLLM).
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmops.errors import TunnelUnprotected
from llmops.plan import audit as pa
from llmops.run.audit import audit
from llmops.run.tunnels import TunnelManager, TunnelSpec, open_tunnel
from tests.support.tunnel_fakes import endpoint, free_port, install_fake, path_with, read_records

KEY = "sk-llmops-audit-key-0123"

Rule = Callable[[str, str, bool], int]  # (method, path, authorised) -> status


@contextmanager
def server(rule: Rule) -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """A real HTTP server answering by ``rule``; yields its URL and every request it got."""
    seen: list[tuple[str, str, str | None]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            auth = self.headers.get("Authorization") or self.headers.get("X-Api-Key")
            seen.append((self.command, self.path, auth))
            status = rule(self.command, self.path, auth == f"Bearer {KEY}")
            body = b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def vllm_like(method: str, path: str, authorised: bool) -> int:
    """vLLM 0.33.0 with --api-key and VLLM_SERVER_DEV_MODE=1: the key guards /v1, /v2,
    /inference and /cohere only (serve/middleware/authenticate.py GUARDED_PREFIX)."""
    if path.startswith(("/v1", "/v2", "/inference", "/cohere")) and not authorised:
        return 401
    served = {
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("POST", "/v2/rerank"),
        ("POST", "/invocations"),
        ("POST", "/tokenize"),
        ("POST", "/pause"),
    }
    if (method, path) in served:
        return 200
    if any(p == path for _m, p in served):
        return 405
    return 404


def llamacpp_like(method: str, path: str, authorised: bool) -> int:
    """llama.cpp b11434 with --api-key: checked before routing, for every path but /health."""
    if path not in ("/health", "/v1/health") and not authorised:
        return 401
    return 200 if path in ("/v1/models", "/slots", "/props", "/completion") else 404


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[TunnelManager]:
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, "cloudflared")
    env = {
        **os.environ,
        "PATH": path_with(bin_dir),
        "HOME": str(tmp_path / "user-home"),
        "FAKE_TUNNEL_RECORD": str(tmp_path / "calls.jsonl"),
    }
    m = TunnelManager(tmp_path / "home", env)
    yield m
    for rec in m.records():
        m.stop(rec.name, 2)


def test_a_key_on_v1_models_but_not_on_chat_is_exposed_and_never_tunnelled(
    manager: TunnelManager, tmp_path: Path
) -> None:
    """Issue 14 item 2: the old check (GET /v1/models only) let this one through."""
    with endpoint(KEY, open_paths=("/v1/chat/completions",)) as ep:
        a = audit(ep.url)
        assert a.verdict == "exposed" and a.open_routes == ("POST /v1/chat/completions (200)",)
        assert all(auth is None for _path, auth in ep.hits)  # never a credential
        with pytest.raises(TunnelUnprotected) as e:
            open_tunnel(manager, TunnelSpec("partly", ep.port, "cloudflared"), KEY)
        assert "refusing to expose port" in e.value.message
        assert "POST /v1/chat/completions (200)" in e.value.message
    assert manager.records() == [] and read_records(tmp_path / "calls.jsonl") == []


def test_vllm_invocations_and_dev_mode_pause_are_found_without_pausing_anything() -> None:
    with server(vllm_like) as (url, seen):
        a = audit(url + "/v1", "vllm")
    assert a.verdict == "exposed" and a.url == url
    assert set(a.open_routes) == {"POST /invocations (200)", "POST /pause (405 to GET)"}
    assert ("POST", "/pause", None) not in seen and ("GET", "/pause", None) in seen
    assert ("POST", "/invocations", None) in seen
    by_path = {p.path: p for p in a.probes}
    assert by_path["/tokenize"].answer == pa.OPEN and by_path["/tokenize"].kind == pa.TOKENIZE
    assert by_path["/v1/chat/completions"].answer == pa.PROTECTED
    assert by_path["/v2/rerank"].answer == pa.PROTECTED  # guarded since 0.33.0
    assert by_path["/sleep"].answer == pa.ABSENT  # not mounted: 404
    assert a.caveats == (pa.VLLM_UNGUARDED_ROUTES,)
    assert all(auth is None for _m, _p, auth in seen)


def test_keyed_llamacpp_passes_and_is_tunnelled(manager: TunnelManager) -> None:
    with server(llamacpp_like) as (url, seen):
        a = audit(url, "llamacpp")
        assert a.verdict == "protected", a.detail
        assert {p.answer for p in a.probes} == {pa.PROTECTED}
        port = int(url.rsplit(":", 1)[1])
        opened = open_tunnel(
            manager, TunnelSpec("llama", port, "cloudflared"), KEY, engine="llamacpp"
        )
        assert opened.check.verdict == "ok" and opened.public_audit is not None
        assert opened.public_audit.ok and opened.public_audit.url == opened.record.url
        assert opened.local_audit is not None and opened.local_audit.url == url
    assert all(auth is None for m, p, auth in seen if p != "/v1/models")


def test_keyless_llamacpp_lists_its_slots_and_is_exposed() -> None:
    def keyless(method: str, path: str, _authorised: bool) -> int:
        return llamacpp_like(method, path, True)

    with server(keyless) as (url, _seen):
        a = audit(url, "llamacpp")
    assert a.verdict == "exposed"
    assert {"GET /slots (200)", "GET /props (200)", "POST /completion (200)"} <= set(a.open_routes)


def test_the_public_url_is_audited_too_and_the_tunnel_stopped(
    manager: TunnelManager, tmp_path: Path
) -> None:
    """Local is protected, the public hostname reaches a partly open origin: refused, stopped."""
    public = free_port()
    manager.env["FAKE_CLOUDFLARED_PUBLIC_PORT"] = str(public)
    with endpoint(KEY) as local, endpoint(KEY, open_paths=("/v1/completions",)) as origin:
        spec = TunnelSpec(
            "named",
            local.port,
            "cloudflared",
            cf_token="eyJ-test-token",
            cf_hostname=f"127.0.0.1:{origin.port}",
        )
        with pytest.raises(TunnelUnprotected) as e:
            open_tunnel(manager, spec, KEY, verify_timeout_s=5)
        assert "refusing to keep the tunnel" in e.value.message
        assert "POST /v1/completions (200)" in e.value.message
        assert "it was stopped" in e.value.message
        assert ("POST /v1/completions", None) in origin.hits
    assert len(read_records(tmp_path / "calls.jsonl")) == 1 and manager.records() == []


def test_unreachable_and_bad_urls() -> None:
    a = audit(f"http://127.0.0.1:{free_port()}", "torch", timeout_s=2)
    assert a.verdict == "unreachable" and "nothing answered" in a.detail
    with pytest.raises(Exception, match="not an http"):
        audit("ftp://example.com")


# ---------------------------------------------------------------- the real bundled backend


@pytest.mark.slow
def test_the_real_bundled_backend_with_its_key_passes_and_is_tunnelled(
    manager: TunnelManager,
) -> None:
    """Issue 14 item 2: its /v1/models is open (like TGI's), its generating routes need the
    key: the old check refused it; the audit passes it, through the fake cloudflared too."""
    from tests.client.servers import KEY as BACKEND_KEY
    from tests.client.servers import real_backend

    backend = real_backend()
    for engine in ("torch", None):
        a = audit(backend.url, engine)
        assert a.verdict == "protected", a.detail
        answers = {p.label: p.answer for p in a.probes}
        assert answers["POST /v1/chat/completions"] == pa.PROTECTED
        assert answers["POST /generate"] == pa.PROTECTED
        assert answers["GET /v1/models"] == pa.OPEN
    port = int(backend.url.rsplit(":", 1)[1])
    opened = open_tunnel(
        manager, TunnelSpec("backend", port, "cloudflared"), BACKEND_KEY, engine="torch"
    )
    assert opened.check.verdict == "ok" and opened.check.without_key_status == 200
    assert opened.public_audit is not None and opened.public_audit.ok
    assert manager.stop("backend", 5)
