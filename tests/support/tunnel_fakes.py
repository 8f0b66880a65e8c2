"""Fake ``cloudflared`` and ``ngrok`` executables, and small real HTTP endpoints, for tunnel tests.

Nothing can reach Cloudflare or ngrok here, so these stand in for the binaries at the process
boundary (DESIGN.md "Testing with real parts"). They are real programs run from PATH:

- they print the real log formats (cloudflared: RFC3339 ``INF`` lines and the ASCII box on
  stderr, ops.md §1.2; ngrok: logfmt on stdout with ``--log stdout``, ops.md §2.1/2.4),
- they serve the real local APIs (cloudflared ``--metrics``: ``/ready``, ``/quicktunnel``,
  ``/healthcheck``; ngrok: ``/api/endpoints`` and the older ``/api/tunnels`` on ``web_addr``
  from its config files, default 127.0.0.1:4040),
- and they really forward HTTP to the local port through a small reverse proxy whose address,
  ``http://127.0.0.1:PORT``, is the "public" URL they report.

Behaviour switches (environment): ``FAKE_CLOUDFLARED_MODE`` = ok | noisy (an
``api.trycloudflare.com`` error line first) | fail | logonly (``/quicktunnel`` empty, so the
URL must come from the log); ``FAKE_CLOUDFLARED_PUBLIC_PORT`` (named tunnels: the port of the
hostname the user routed); ``FAKE_NGROK_API`` = endpoints | tunnels (an old agent: 404 on
``/api/endpoints``); ``FAKE_TUNNEL_RECORD`` = a file each fake appends its argv and a few
environment facts to (JSON lines), so tests can assert what the tool received.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_PROXY = r"""
import http.client, http.server, json, os, signal, socketserver, sys, threading, time

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
       "content-length", "te", "trailer"}

def record(doc):
    path = os.environ.get("FAKE_TUNNEL_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(doc) + "\n")

def serve(handler, host="127.0.0.1", port=0):
    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
    srv = S((host, port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

def proxy_to(origin):
    host, _, port = origin.split("://", 1)[-1].rstrip("/").partition(":")
    port = int(port or 80)
    class P(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a):
            pass
        def _fwd(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            try:
                c = http.client.HTTPConnection(host, port, timeout=30)
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
            except OSError as e:
                data = ("bad gateway: %s" % e).encode()
                self.send_response(502)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _fwd
    return P

def json_handler(routes):
    class J(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def do_GET(self):
            fn = routes.get(self.path.split("?")[0])
            if fn is None:
                code, body = 404, {"error_code": 100, "status_code": 404, "msg": "not found"}
            else:
                code, body = fn()
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return J

def wait_for_term(on_term):
    stop = threading.Event()
    def h(sig, frm):
        on_term(sig)
        stop.set()
    signal.signal(signal.SIGTERM, h)
    signal.signal(signal.SIGINT, h)
    while not stop.is_set():
        stop.wait(0.2)
"""

FAKE_CLOUDFLARED = (
    _PROXY
    + r"""
def ts():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

def log(level, msg):
    sys.stderr.write("%s %s %s\n" % (ts(), level, msg))
    sys.stderr.flush()

def main(argv):
    if argv[:1] == ["--version"] or argv[:1] == ["version"]:
        print("cloudflared version 2024.12.2 (built 2024-12-19-1724 UTC)")
        return 0
    if argv[:1] != ["tunnel"]:
        log("ERR", "fake cloudflared understands only `tunnel`")
        return 2
    args = argv[1:]
    metrics = url = None
    named = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--metrics":
            metrics = args[i + 1]; i += 1
        elif a == "--url":
            url = args[i + 1]; i += 1
        elif a == "--no-autoupdate":
            pass
        elif a == "run":
            named = True
        else:
            log("ERR", "Incorrect Usage: flag provided but not defined: %s" % a)
            return 1
        i += 1
    token = os.environ.get("TUNNEL_TOKEN", "")
    record({"tool": "cloudflared", "argv": sys.argv, "has_token_env": bool(token),
            "token_in_argv": bool(token) and any(token in a for a in sys.argv)})
    mode = os.environ.get("FAKE_CLOUDFLARED_MODE", "ok")
    if named and not token:
        log("ERR", '"cloudflared tunnel run" requires the ID or name of the tunnel to run as the last command line argument or in the configuration file.')
        return 1
    if not named:
        log("INF", "Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee, are subject to the Cloudflare Online Services Terms of Use (https://www.cloudflare.com/website-terms/), and Cloudflare reserves the right to investigate your use of Tunnels for violations of such terms. If you intend to use Tunnels in production you should use a pre-created named tunnel by following: https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/do-more-with-tunnels/local-management/create-local-tunnel/")
        log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
        if mode in ("noisy", "fail"):
            log("ERR", 'failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp: lookup api.trycloudflare.com: no such host')
        if mode == "fail":
            return 1
    state = {"ready": 0, "hostname": ""}
    public_port = int(os.environ.get("FAKE_CLOUDFLARED_PUBLIC_PORT", "0")) if named else 0
    edge = serve(proxy_to(url or "http://127.0.0.1:8080"), port=public_port)
    edge_addr = "127.0.0.1:%d" % edge.server_address[1]
    if not named:
        state["hostname"] = "" if mode == "logonly" else edge_addr
        rows = ["Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):",
                "http://" + edge_addr]
        width = max(len(r) for r in rows) + 4
        log("INF", "+" + "-" * width + "+")
        for r in rows:
            log("INF", "|  " + r.ljust(width - 2) + "|")
        log("INF", "+" + "-" * width + "+")
    log("INF", "Version 2024.12.2 (Checksum 3f1c1b0d2e)")
    log("INF", "GOOS: linux, GOVersion: go1.22.5, GoArch: amd64")
    log("INF", "Settings: map[metrics:%s no-autoupdate:true%s]" % (metrics, "" if named else " url:" + str(url)))
    if metrics:
        host, _, port = metrics.rpartition(":")
        routes = {
            "/ready": lambda: (200 if state["ready"] else 503,
                               {"status": 200 if state["ready"] else 503,
                                "readyConnections": state["ready"],
                                "connectorId": "5ab1c0de-0000-4000-8000-00000000abcd"}),
            "/quicktunnel": lambda: (200, {"hostname": state["hostname"]}),
            "/healthcheck": lambda: (200, "OK\n"),
        }
        serve(json_handler(routes), host=host, port=int(port))
        log("INF", "Starting metrics server on %s/metrics" % metrics)
    log("INF", "Generated Connector ID: 5ab1c0de-0000-4000-8000-00000000abcd")
    log("INF", "Initial protocol quic")
    time.sleep(0.3)  # the edge connection takes a moment, like the real one
    state["ready"] = 1
    log("INF", "Registered tunnel connection connIndex=0 connection=0c1e2d3f-aaaa-bbbb-cccc-1234567890ab event=0 ip=198.41.192.167 location=ams16 protocol=quic")
    def term(sig):
        log("INF", "Initiating graceful shutdown due to signal terminated ...")
        log("INF", "Unregistered tunnel connection connIndex=0 event=0 ip=198.41.192.167")
    wait_for_term(term)
    return 0

sys.exit(main(sys.argv[1:]))
"""
)

FAKE_NGROK = (
    _PROXY
    + r"""
import re

def ts():
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())

def log(lvl, msg, **kv):
    extra = "".join(' %s=%s' % (k, ('"%s"' % v) if " " in str(v) else v) for k, v in kv.items())
    sys.stdout.write('t=%s lvl=%s msg="%s"%s\n' % (ts(), lvl, msg, extra))
    sys.stdout.flush()

def read_config(path):
    out = {}
    for line in open(path):
        m = re.match(r"\s*(version|web_addr|authtoken)\s*:\s*\"?([^\"\s]+)\"?", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out

def main(argv):
    if argv[:1] in (["version"], ["--version"]):
        print("ngrok version 3.19.0")
        return 0
    if argv[:1] != ["http"] or len(argv) < 2:
        print("ERROR:  fake ngrok understands only `ngrok http ADDR ...`", file=sys.stderr)
        return 1
    upstream = argv[1]
    rest = argv[2:]
    configs, log_target, fmt, token_flag = [], None, "term", None
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--config":
            configs.append(rest[i + 1]); i += 1
        elif a == "--log":
            log_target = rest[i + 1]; i += 1
        elif a == "--log-format":
            fmt = rest[i + 1]; i += 1
        elif a == "--authtoken":
            token_flag = rest[i + 1]; i += 1
        else:
            print("ERROR:  unknown flag: %s" % a, file=sys.stderr)
            return 1
        i += 1
    if not configs:
        default = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "ngrok", "ngrok.yml")
        if os.path.exists(default):
            configs.append(default)
    conf = {}
    for c in configs:
        conf.update(read_config(c))
    token = token_flag or conf.get("authtoken")
    record({"tool": "ngrok", "argv": sys.argv, "configs": configs, "has_token": bool(token),
            "token_in_argv": bool(token) and any(token in a for a in sys.argv),
            "config_modes": [oct(os.stat(c).st_mode & 0o777) for c in configs]})
    if log_target != "stdout" or fmt != "logfmt":
        print("ERROR:  this fake needs --log stdout --log-format logfmt", file=sys.stderr)
        return 1
    for c in configs:
        log("info", "open config file", path=c, err="nil")
    web_addr = conf.get("web_addr", "127.0.0.1:4040")
    if not token:
        log("eror", "failed to reconnect session", obj="csess", id="2f0b3c9e1d7a",
            err="authentication failed: Usage of ngrok requires a verified account and authtoken. ERR_NGROK_4018")
        sys.stderr.write("ERROR:  authentication failed: Usage of ngrok requires a verified account and authtoken.\n")
        sys.stderr.write("ERROR:  \nERROR:  ERR_NGROK_4018\n")
        return 1
    edge = serve(proxy_to(upstream))
    public = "http://127.0.0.1:%d" % edge.server_address[1]
    old_agent = os.environ.get("FAKE_NGROK_API", "endpoints") == "tunnels"
    addr = upstream.split("://", 1)[-1]
    def endpoints():
        if old_agent:
            return 404, {"error_code": 100, "status_code": 404, "msg": "Not Found"}
        return 200, {"endpoints": [{"name": "command_line", "uri": "/api/endpoints/command_line",
                     "url": public, "upstream": {"url": upstream, "protocol": "http1"},
                     "inspect": True, "traffic_policy": "", "pooling_enabled": False}]}
    def tunnels():
        return 200, {"tunnels": [{"name": "command_line", "ID": "a1b2c3d4",
                     "uri": "/api/tunnels/command_line", "public_url": public, "proto": "https",
                     "config": {"addr": addr, "inspect": True},
                     "metrics": {"conns": {"count": 0}, "http": {"count": 0}}}],
                     "uri": "/api/tunnels"}
    host, _, port = web_addr.rpartition(":")
    serve(json_handler({"/api/endpoints": endpoints, "/api/tunnels": tunnels}), host=host, port=int(port))
    log("info", "starting web service", obj="web", addr=web_addr, allow_hosts="[]")
    log("info", "client session established", obj="tunnels.session")
    log("info", "tunnel session started", obj="tunnels.session")
    log("info", "started tunnel", obj="tunnels", name="command_line", addr=upstream, url=public)
    wait_for_term(lambda sig: log("info", "received stop request", obj="app", stopReq="{err:<nil> restart:false}"))
    return 0

sys.exit(main(sys.argv[1:]))
"""
)


def install_fake(bin_dir: Path, name: str) -> Path:
    """Write the fake ``name`` (cloudflared or ngrok) as an executable in ``bin_dir``."""
    source = {"cloudflared": FAKE_CLOUDFLARED, "ngrok": FAKE_NGROK}[name]
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + source)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def read_records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Endpoint:
    port: int
    api_key: str | None
    hits: list[tuple[str, str | None]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


#: What :func:`endpoint` answers to an authorised (or unguarded) POST on these paths.
_GENERATED = b'{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"length"}]}'
GENERATING_PATHS = ("/v1/chat/completions", "/v1/completions")


@contextmanager
def endpoint(
    api_key: str | None, open_paths: tuple[str, ...] = (), post_paths: tuple[str, ...] = ()
) -> Iterator[Endpoint]:
    """A small real OpenAI-style endpoint; with ``api_key`` it answers 401 without it.

    ``GET /v1/models`` lists a model; ``POST /v1/chat/completions`` and ``/v1/completions``
    generate when the key is right (with ``api_key=None`` they are not served, as on a server
    that only lists models). ``open_paths`` answer 200 to GET and POST *without* a key (a
    partly open server: the key guards ``/v1/models`` but not those); ``post_paths`` add more
    generating POST routes behind the key.
    """
    hits: list[tuple[str, str | None]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            hits.append((self.path, auth))
            if self.path in open_paths:
                self._send(200, b'{"ok":true}')
            elif api_key is not None and auth != f"Bearer {api_key}":
                self._send(
                    401, b'{"error":{"message":"Unauthorized","type":"invalid_request_error"}}'
                )
            elif self.path == "/v1/models":
                self._send(
                    200, b'{"object":"list","data":[{"id":"smollm2-135m","object":"model"}]}'
                )
            else:
                self._send(404, b'{"detail":"Not Found"}')

        def do_POST(self) -> None:
            auth = self.headers.get("Authorization")
            hits.append((f"POST {self.path}", auth))
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path in open_paths:
                self._send(200, _GENERATED)
            elif api_key is not None and auth != f"Bearer {api_key}":
                self._send(
                    401, b'{"error":{"message":"Unauthorized","type":"invalid_request_error"}}'
                )
            elif api_key is not None and self.path in GENERATING_PATHS + post_paths:
                self._send(200, _GENERATED)
            else:
                self._send(404, b'{"detail":"Not Found"}')

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield Endpoint(int(srv.server_address[1]), api_key, hits)
    finally:
        srv.shutdown()
        srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
