"""The tunnel exposure check, pinned where the mutation benchmark found no test
(benchmarks/MUTATION.md): the verdict at its boundaries, what each probe sends, the retry while
a fresh tunnel resolves, and which port and key a tunnel target means.

Real HTTP servers on 127.0.0.1 (tests/client/servers.py) and a real deployment store under the
test's own ``LLMOPS_HOME``; nothing is faked.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from llmops.errors import TunnelUnreachable, UsageError
from llmops.net import http_status
from llmops.plan import tunnel as tp
from llmops.run.deployments import Deployments
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from llmops.run.tunnels import (
    TunnelManager,
    TunnelSpec,
    check_exposure,
    open_tunnel,
    resolve_target,
)
from tests.client.servers import Handler, ScriptedServer
from tests.support.tunnel_fakes import endpoint, free_port, install_fake, path_with

URL = "https://quick.trycloudflare.com"
KEY = "sk-llmops-tunnel-mutants-0123"


# ------------------------------------------------------------------ the verdict (plan/tunnel.py)


def _judge(with_key: int | None, without: int | None, *, had_key: bool, allow: bool = False):  # type: ignore[no-untyped-def]
    return tp.judge_exposure(
        URL,
        with_key_status=with_key,
        without_key_status=without,
        had_key=had_key,
        allow_public_no_auth=allow,
    )


@pytest.mark.parametrize(("status", "reachable"), [(499, True), (500, False), (503, False)])
def test_without_a_key_a_server_error_is_not_reaching_the_engine(
    status: int, reachable: bool
) -> None:
    """No key known: any answer below 500 proves the endpoint answers; a 5xx (the tunnel's
    own "origin unreachable" page) does not."""
    c = _judge(None, status, had_key=False)
    assert c.reachable is reachable
    assert c.verdict == ("unprotected" if reachable else "unreachable")


def test_unreachable_says_what_answered() -> None:
    c = _judge(502, 401, had_key=True)
    assert (c.reachable, c.verdict) == (False, "unreachable")
    assert c.detail == f"GET {URL}/v1/models answered 502"  # the keyed status, not the keyless
    assert c.protected is True  # recorded as seen, even though the tunnel is not kept
    assert (c.with_key_status, c.without_key_status, c.url) == (502, 401, URL)


def test_unreachable_with_nothing_answering() -> None:
    c = _judge(None, 401, had_key=True)
    assert (c.reachable, c.verdict) == (False, "unreachable")
    assert c.detail == f"nothing answered at {URL}/v1/models"
    n = _judge(None, None, had_key=False)
    assert n.detail == f"nothing answered at {URL}/v1/models" and n.protected is False
    e = _judge(None, 502, had_key=False)
    assert e.detail == f"GET {URL}/v1/models answered 502"


def test_ok_without_a_key_known_shows_a_dash_for_the_keyed_probe() -> None:
    c = _judge(None, 403, had_key=False)
    assert (c.reachable, c.protected, c.verdict) == (True, True, "ok")
    assert c.detail == "/v1/models: - with the key, 403 without"
    assert (c.with_key_status, c.without_key_status) == (None, 403)


def test_an_unprotected_endpoint_is_unprotected_even_when_allowed() -> None:
    c = _judge(200, 200, had_key=True, allow=True)
    assert (c.reachable, c.protected, c.verdict) == (True, False, "unprotected-allowed")
    assert (c.with_key_status, c.without_key_status, c.url) == (200, 200, URL)


def test_ngrok_config_keeps_the_authtoken_in_the_users_layout() -> None:
    assert tp.ngrok_config_text("2", "127.0.0.1:4050", "tok2") == (
        'version: "2"\nweb_addr: 127.0.0.1:4050\nauthtoken: tok2\n'
    )
    assert tp.ngrok_config_text("3", "127.0.0.1:4050", None) == (
        'version: "3"\nagent:\n  web_addr: 127.0.0.1:4050\n'
    )
    # any version but 3 is read the version-2 way (ngrok: version 1 is not supported)
    assert (
        tp.ngrok_config_text("1", "127.0.0.1:4050", "")
        == 'version: "2"\nweb_addr: 127.0.0.1:4050\n'
    )


# ------------------------------------------------------------------ the probes (run/tunnels.py)


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def _serve(made: list[ScriptedServer], models: Callable[[Handler, bytes], None]) -> ScriptedServer:
    s = ScriptedServer({("GET", "/v1/models"): models})
    made.append(s)
    return s


def _keyed(h: Handler, body: bytes) -> None:
    ok = h.headers.get("Authorization") == f"Bearer {KEY}"
    h.reply(200 if ok else 401, {"object": "list", "data": []})


def _free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_http_status_sends_the_key_only_when_given_and_skips_ngroks_warning(
    servers: list[ScriptedServer],
) -> None:
    s = _serve(servers, _keyed)
    assert http_status(s.url + "/v1/models") == 401
    assert http_status(s.url + "/v1/models", "") == 401
    assert http_status(s.url + "/v1/models", KEY) == 200
    assert http_status(s.url + "/nowhere", KEY) == 404  # an HTTP error is a status
    heads = [{k.lower(): v for k, v in r[2].items()} for r in s.requests]
    assert ["authorization" in h for h in heads] == [False, False, True, True]
    # ngrok's free plan puts an HTML interstitial before browsers; the header skips it
    assert all(h.get("ngrok-skip-browser-warning") == "1" for h in heads)


def test_http_status_is_none_when_nothing_answers() -> None:
    assert http_status(_free_url() + "/v1/models", KEY, timeout_s=2.0) is None


def test_check_exposure_waits_for_a_fresh_tunnel_to_resolve(servers: list[ScriptedServer]) -> None:
    """The first answers are the tunnel's 502 (origin not yet resolved); the check keeps
    asking until the engine answers, then judges that answer."""
    calls = [0]

    def flaky(h: Handler, body: bytes) -> None:
        calls[0] += 1
        if calls[0] <= 4:
            h.reply(502, {"error": "bad gateway"})
        else:
            _keyed(h, body)

    s = _serve(servers, flaky)
    c = check_exposure(s.url, KEY, allow_public_no_auth=False, timeout_s=30.0, poll_s=0.05)
    assert (c.verdict, c.with_key_status, c.without_key_status) == ("ok", 200, 401)
    assert c.url == s.url
    assert calls[0] == 6  # two rounds of 502 (keyed and keyless), then one of each
    # each round: the keyed request first, then the keyless one
    auth = ["Authorization" in r[2] for r in s.requests]
    assert auth == [True, False, True, False, True, False]


def test_check_exposure_without_a_key_sends_no_key(servers: list[ScriptedServer]) -> None:
    s = _serve(servers, _keyed)
    c = check_exposure(s.url + "/", None, allow_public_no_auth=False, timeout_s=5.0, poll_s=0.05)
    assert (c.verdict, c.with_key_status, c.without_key_status) == ("ok", None, 401)
    assert [r[1] for r in s.requests] == ["/v1/models"]  # the trailing slash is not doubled
    assert "Authorization" not in s.requests[0][2]


def test_check_exposure_gives_up_at_its_deadline(servers: list[ScriptedServer]) -> None:
    s = _serve(servers, lambda h, b: h.reply(502, {"error": "bad gateway"}))
    t0 = time.monotonic()
    c = check_exposure(s.url, KEY, allow_public_no_auth=False, timeout_s=0.6, poll_s=0.1)
    took = time.monotonic() - t0
    assert c.verdict == "unreachable" and c.with_key_status == 502
    assert took < 20
    assert len(s.requests) >= 4  # it retried before giving up


def test_check_exposure_passes_the_override_through(servers: list[ScriptedServer]) -> None:
    s = _serve(servers, lambda h, b: h.reply(200, {"object": "list", "data": []}))
    c = check_exposure(s.url, KEY, allow_public_no_auth=True, timeout_s=5.0, poll_s=0.05)
    assert c.verdict == "unprotected-allowed"
    d = check_exposure(s.url, KEY, allow_public_no_auth=False, timeout_s=5.0, poll_s=0.05)
    assert d.verdict == "unprotected"


# ------------------------------------------------------------------ what `llmops tunnel X` means


def _deployments() -> Deployments:
    store = DeploymentStore()
    return Deployments(store, None, NativeRuntime(store))


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_port_out_of_range_is_a_usage_error(port: str) -> None:
    with pytest.raises(UsageError) as e:
        resolve_target(port, _deployments(), {})
    assert "out of range" in str(e.value)


@pytest.mark.parametrize("port", [1, 8080, 65535])
def test_a_bare_port_takes_its_key_from_the_environment(port: int) -> None:
    t = resolve_target(str(port), _deployments(), {"LLMOPS_API_KEY": KEY})
    assert (t.name, t.port, t.deployment, t.api_key, t.engine) == (
        f"port-{port}",
        port,
        None,
        KEY,
        None,
    )
    assert resolve_target(str(port), _deployments(), {"LLMOPS_API_KEY": ""}).api_key is None
    assert resolve_target(str(port), _deployments(), {}).api_key is None


def test_a_deployment_target_uses_its_port_engine_and_key() -> None:
    d = _deployments()
    plan = {
        "engine": "llamacpp",
        "runtime": "native",
        "ports": [{"host_port": 18123, "container_port": 8080}],
        "secret_env": [{"env": "LLAMA_API_KEY", "secret": "api_key"}],
    }
    d.store.save("smol", plan, "2026-01-01T00:00:00Z", {"LLAMA_API_KEY": KEY})
    plan2 = {**plan, "ports": [{"host_port": 18124, "container_port": 8080}], "engine": "vllm"}
    d.store.save("other", plan2, "2026-01-01T00:00:00Z", {"LLAMA_API_KEY": "sk-llmops-o-0000"})
    t = resolve_target("smol", d, {"LLMOPS_API_KEY": "sk-llmops-env-not-this-one"})
    assert (t.name, t.port, t.deployment, t.api_key, t.engine) == (
        "smol",
        18123,
        "smol",
        KEY,
        "llamacpp",
    )
    o = resolve_target("other", d, {})  # each name its own row, whichever is listed last
    assert (o.port, o.api_key, o.engine) == (18124, "sk-llmops-o-0000", "vllm")


def test_an_unknown_deployment_is_not_found() -> None:
    from llmops.run.deployments import NotFound

    with pytest.raises(NotFound):
        resolve_target("ghost", _deployments(), {})


@pytest.mark.parametrize("url", ["not a url", "", "ftp//x", "http://"])
def test_http_status_of_a_malformed_url_is_none_not_a_crash(url: str) -> None:
    assert http_status(url, "k", timeout_s=0.5) is None


# ------------------------------------------------------------------ open_tunnel's public audit


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[TunnelManager]:
    """A manager whose `cloudflared` is the fake of tests/support/tunnel_fakes.py (a real program)."""
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, "cloudflared")
    env = {
        **os.environ,
        "PATH": path_with(bin_dir),
        "HOME": str(tmp_path / "user-home"),
        "FAKE_TUNNEL_RECORD": str(tmp_path / "calls.jsonl"),
        "FAKE_CLOUDFLARED_PUBLIC_PORT": str(free_port()),
    }
    m = TunnelManager(tmp_path / "home", env)
    yield m
    for rec in m.records():
        m.stop(rec.name, 2)


#: (method, path, has the key, sent by the audit) -> status, or None: hang up without answering
OriginRule = Callable[[str, str, bool, bool], "int | None"]


@contextmanager
def origin(rule: OriginRule) -> Iterator[int]:
    """What the named tunnel's public hostname reaches: a real HTTP server answering by ``rule``.

    The audit's requests carry its ``User-Agent: llmops-audit``; the exposure check's do not, so
    an origin can answer the check and then behave differently to the audit, as an engine that
    falls over (or starts loading again) between the two does."""

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            keyed = self.headers.get("Authorization") == f"Bearer {KEY}"
            by_audit = self.headers.get("User-Agent") == "llmops-audit"
            status = rule(self.command, self.path, keyed, by_audit)
            if status is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            body = b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that hung up (an interrupted check) is not the test's failure

    srv = Quiet(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


def _named(local: int, public: int) -> TunnelSpec:
    return TunnelSpec(
        "named",
        local,
        "cloudflared",
        cf_token="eyJ-test-token",
        cf_hostname=f"127.0.0.1:{public}",
    )


def _check_then(audit_rule: Callable[[str, str], int | None]) -> OriginRule:
    """The exposure check's two requests get a keyed engine's answers; the audit's get ``audit_rule``."""

    def rule(method: str, path: str, keyed: bool, by_audit: bool) -> int | None:
        if not by_audit:
            return 200 if keyed and path == "/v1/models" else 401
        return audit_rule(method, path)

    return rule


def test_a_public_side_that_answers_nothing_to_the_audit_is_unreachable_and_stopped(
    manager: TunnelManager,
) -> None:
    with (
        endpoint(KEY) as local,
        origin(_check_then(lambda _m, _p: None)) as public,
        pytest.raises(TunnelUnreachable) as e,
    ):
        open_tunnel(manager, _named(local.port, public), KEY, verify_timeout_s=5)
    msg = e.value.message
    assert msg.startswith(f"the cloudflared tunnel for port {local.port} started but ")
    assert f"nothing answered at http://127.0.0.1:{public}" in msg and msg.endswith("stopped")
    assert "a new quick tunnel can take a minute" in (e.value.hint or "")
    assert manager.records() == []


def test_a_public_side_that_never_answers_the_check_is_unreachable_and_stopped(
    manager: TunnelManager,
) -> None:
    nowhere = free_port()
    with endpoint(KEY) as local, pytest.raises(TunnelUnreachable) as e:
        open_tunnel(manager, _named(local.port, nowhere), KEY, verify_timeout_s=1)
    assert e.value.message.startswith(f"the cloudflared tunnel for port {local.port} started but ")
    assert manager.records() == []


def test_a_public_side_still_loading_is_inconclusive_and_stopped(manager: TunnelManager) -> None:
    """Every generating route answers 503 (an engine loading again): not "exposed", but no
    proof of a key either; the tunnel is refused as unreachable, with its own hint."""

    def loading(method: str, path: str) -> int:
        return 503 if method == "POST" else 401

    with (
        endpoint(KEY) as local,
        origin(_check_then(loading)) as public,
        pytest.raises(TunnelUnreachable) as e,
    ):
        open_tunnel(manager, _named(local.port, public), KEY, verify_timeout_s=5)
    msg = e.value.message
    assert msg.startswith(f"refusing to keep the tunnel for port {local.port}: could not tell")
    assert "(503)" in msg and msg.endswith("; it was stopped")
    assert e.value.hint == "try again once it answers; `llmops audit URL` shows every route"
    assert manager.records() == []


def test_the_kept_tunnels_final_check_reports_the_public_audits_models_answer(
    manager: TunnelManager,
) -> None:
    """The check saw 401 without the key; the audit, later, 403: the final row says 403."""

    def guarded(method: str, path: str) -> int:
        return 403 if (method, path) == ("GET", "/v1/models") else 401

    with endpoint(KEY) as local, origin(_check_then(guarded)) as public:
        said: list[str] = []
        opened = open_tunnel(
            manager, _named(local.port, public), KEY, verify_timeout_s=5, on_progress=said.append
        )
        c = opened.check
        assert said == [  # what `llmops tunnel` prints while it works
            f"auditing port {local.port} at http://127.0.0.1:{local.port} (requests without a key)",
            f"starting cloudflared tunnel for port {local.port}",
            f"auditing http://127.0.0.1:{public} through the tunnel",
        ]
        assert (c.url, c.with_key_status, c.without_key_status) == (
            f"http://127.0.0.1:{public}",
            200,
            403,
        )
        assert (c.reachable, c.protected, c.verdict) == (True, True, "ok")
        assert opened.public_audit is not None and opened.public_audit.verdict == "protected"
        assert c.detail == (
            f"/v1/models: 200 with the key, 403 without; {opened.public_audit.detail}"
        )
        assert manager.stop("named", 2)


# ------------------------------------------------------------------ left by the mutation run


def test_check_exposure_waits_poll_s_between_tries(servers: list[ScriptedServer]) -> None:
    """Kills "``time.sleep(poll_s)`` deleted" (old ``run/tunnels.py:564``): a tunnel still
    resolving is asked again only after ``poll_s``, not in a tight loop."""
    seen: list[float] = []

    def bad_gateway(h: Handler, body: bytes) -> None:
        seen.append(time.monotonic())
        h.reply(502, {"error": "bad gateway"})

    s = _serve(servers, bad_gateway)
    poll_s = 0.3
    c = check_exposure(s.url, KEY, allow_public_no_auth=False, timeout_s=1.0, poll_s=poll_s)
    assert c.verdict == "unreachable"
    rounds = [seen[i : i + 2] for i in range(0, len(seen), 2)]  # keyed, then keyless
    assert 2 <= len(rounds) <= 6  # about timeout_s / poll_s + 1 rounds, not hundreds
    gaps = [b[0] - a[-1] for a, b in zip(rounds, rounds[1:], strict=False)]
    assert all(g >= poll_s * 0.9 for g in gaps), gaps


def test_an_interrupted_check_stops_the_tunnel_and_reraises(manager: TunnelManager) -> None:
    """Kills the deleted ``except BaseException: manager.stop(...); raise`` in ``open_tunnel``
    (old ``run/tunnels.py:683-684``): Ctrl-C while the public URL is being checked stops the
    tunnel it started, then the interrupt goes on."""
    interrupted = threading.Event()

    def ctrl_c(method: str, path: str, keyed: bool, by_audit: bool) -> int:
        if not interrupted.is_set():
            interrupted.set()
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, in the main thread
            time.sleep(1.0)  # answer late: the interrupt lands while the check waits
        return 200 if keyed and path == "/v1/models" else 401

    started: list[int] = []

    def progress(line: str) -> None:
        if line.endswith("through the tunnel"):  # it has started: its record is there
            started.extend(r.pid for r in manager.records())

    with endpoint(KEY) as local, origin(ctrl_c) as public, pytest.raises(KeyboardInterrupt):
        open_tunnel(
            manager, _named(local.port, public), KEY, verify_timeout_s=5, on_progress=progress
        )
    assert interrupted.is_set() and len(started) == 1
    assert manager.records() == []
    assert not psutil.pid_exists(started[0]) or (
        psutil.Process(started[0]).status() == psutil.STATUS_ZOMBIE
    )
