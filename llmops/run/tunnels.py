"""Tunnels: the one place llmops starts cloudflared or ngrok, or opens an SSH reverse forward.

A tunnel is a supervised background process in its own session (like a native deployment):
its record is ``$LLMOPS_HOME/tunnels/NAME.json`` (pid + start time, so a recycled pid is never
mistaken for it), its output goes to ``NAME.log`` next to it, and ``stop`` signals its whole
process group (SIGTERM, a grace period, SIGKILL). ``NAME`` is the deployment's name, or
``port-PORT`` for a bare port; the record names the deployment so ``llmops down`` stops it too.

- cloudflared quick tunnel: ``cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:P --url
  http://127.0.0.1:PORT``; the URL from ``GET /quicktunnel`` once ``GET /ready`` reports a
  connection, else from the box cloudflared prints on stderr (ops.md §1.2-1.3).
- cloudflared named tunnel: ``cloudflared tunnel ... run`` with the token in the child's
  ``TUNNEL_TOKEN`` environment variable, never in argv (ops.md §1.5).
- ngrok: ``ngrok http URL --log stdout --log-format logfmt --config ...``; the agent API address
  and the authtoken go in a 0600 extra config file (never argv), the URL comes from
  ``/api/endpoints`` or the older ``/api/tunnels`` (ops.md §2.2).
- ssh: ``python -m llmops.run.tunnels ssh-forward ...``, a paramiko ``request_port_forward``
  on a host the user owns, pumping each forwarded channel to the local port (ops.md §3.2).

Before a tunnel starts, :func:`open_tunnel` audits the local endpoint (``llmops.run.audit``:
every route the engine serves that generates, tokenizes, lists slots/props or administers,
asked without a key); once it is up it checks that ``/v1/models`` answers with the key through
the public URL and runs the same audit there. Any generating or administrative route that
answers without the key refuses the tunnel, and a started one is stopped again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmops.errors import (
    LlmopsError,
    TunnelError,
    TunnelExists,
    TunnelStartError,
    TunnelToolMissing,
    TunnelUnprotected,
    TunnelUnreachable,
    UsageError,
)
from llmops.net import free_port, get_json, http_status
from llmops.paths import llmops_home
from llmops.plan import audit as pa
from llmops.plan import tunnel as tp
from llmops.run import process

INSTALL_HINTS = {
    "cloudflared": (
        "install cloudflared: on Debian/Ubuntu download cloudflared-linux-amd64.deb from "
        "https://github.com/cloudflare/cloudflared/releases/latest and `sudo dpkg -i` it "
        "(other systems: https://developers.cloudflare.com/cloudflare-one/connections/"
        "connect-networks/downloads/), or use `--via ngrok` / `--via ssh`"
    ),
    "ngrok": (
        "install the ngrok agent (https://ngrok.com/download, e.g. `snap install ngrok` or the "
        "apt repository), then `ngrok config add-authtoken TOKEN`; or use `--via cloudflared`"
    ),
}
#: How long one probe through a public URL waits: a tunnel's first answers can be slow.
PROBE_TIMEOUT_S = 10.0
SSH_READY = "llmops-ssh-forward: listening on "
SSH_ERROR = "llmops-ssh-forward: error "


@dataclass(frozen=True)
class TunnelSpec:
    """What to expose and how. Secret values (tokens) are passed to the child, never stored."""

    name: str
    port: int
    via: str
    deployment: str | None = None
    cf_token: str | None = None  # named cloudflared tunnel
    cf_hostname: str | None = None  # the public hostname routed to that named tunnel
    ssh_host: str | None = None  # [user@]host[:port]
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    ssh_remote_port: int = 0  # 0: the server picks
    ssh_bind: str = ""  # "" = all interfaces (needs GatewayPorts on the server)
    start_timeout_s: float = 45.0


@dataclass(frozen=True)
class TunnelRecord:
    name: str
    via: str
    port: int
    deployment: str | None
    pid: int
    create_time: float | None
    url: str | None
    started_at: str
    log: str
    api_addr: str | None = None  # cloudflared metrics / ngrok agent API
    remote: str | None = None  # ssh host
    named: bool = False  # cloudflared named tunnel


@dataclass(frozen=True)
class TunnelStatus:
    name: str
    via: str
    port: int
    deployment: str | None
    url: str | None
    pid: int
    running: bool
    started_at: str
    uptime_s: int | None


# ------------------------------------------------------------------------------ helpers


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------ manager


class TunnelManager:
    """Tunnel records under ``$LLMOPS_HOME/tunnels``; start, list and stop tunnels."""

    def __init__(self, home: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.home = home or llmops_home(self.env)
        self.root = self.home / "tunnels"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ---- records

    def _path(self, name: str, suffix: str = ".json") -> Path:
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"invalid tunnel name {name!r}", "see `llmops tunnel ls`")
        return self.root / f"{name}{suffix}"

    def load(self, name: str) -> TunnelRecord | None:
        try:
            doc = json.loads(self._path(name).read_text())
            return TunnelRecord(**doc)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            return None

    def records(self) -> list[TunnelRecord]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob("*.json")):
            rec = self.load(p.stem)
            if rec is not None:
                out.append(rec)
        return out

    def running(self, rec: TunnelRecord) -> bool:
        proc = self._procs.get(rec.name)
        if proc is not None and proc.poll() is not None:
            return False
        return process.alive(rec.pid, rec.create_time)

    def status(self) -> list[TunnelStatus]:
        out = []
        for r in self.records():
            up = self.running(r)
            uptime = int(time.time() - r.create_time) if up and r.create_time else None
            out.append(
                TunnelStatus(
                    r.name, r.via, r.port, r.deployment, r.url, r.pid, up, r.started_at, uptime
                )
            )
        return out

    def _save(self, rec: TunnelRecord) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        tmp = self._path(rec.name, ".json.tmp")
        tmp.write_text(json.dumps(asdict(rec), indent=2))
        tmp.replace(self._path(rec.name))

    def _forget(self, name: str) -> None:
        for suffix in (".json", ".ngrok.yml", ".log"):
            with contextlib.suppress(OSError):
                self._path(name, suffix).unlink()
        self._procs.pop(name, None)

    # ---- stop

    def stop(self, name: str, grace_s: float = 10.0) -> bool:
        """SIGTERM the tunnel's process group, wait, SIGKILL; forget it. True if it was running."""
        rec = self.load(name)
        if rec is None:
            return False
        was_running = self.running(rec)
        if was_running:
            process.stop_group(rec.pid, rec.create_time, grace_s, proc=self._procs.get(name))
        self._forget(name)
        return was_running

    def stop_for_deployment(self, deployment: str, grace_s: float = 10.0) -> list[str]:
        """Stop every tunnel tied to ``deployment`` (``llmops down`` calls this)."""
        stopped = []
        for rec in self.records():
            if rec.deployment == deployment:
                self.stop(rec.name, grace_s)
                stopped.append(rec.name)
        return stopped

    # ---- start

    def start(self, spec: TunnelSpec) -> TunnelRecord:
        """Start the tunnel process and wait until it reports its public URL."""
        if spec.via not in tp.VIAS:
            raise UsageError(f"unknown tunnel kind {spec.via!r}", "use " + ", ".join(tp.VIAS))
        old = self.load(spec.name)
        if old is not None:
            if self.running(old):
                raise TunnelExists(
                    f"a {old.via} tunnel for {spec.name} is already running at {old.url}",
                    f"stop it first: `llmops tunnel stop {spec.name}`",
                )
            self._forget(spec.name)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        starter: Callable[[TunnelSpec], TunnelRecord] = {
            "cloudflared": self._start_cloudflared,
            "ngrok": self._start_ngrok,
            "ssh": self._start_ssh,
        }[spec.via]
        return starter(spec)

    def _which(self, tool: str) -> str:
        exe = shutil.which(tool, path=self.env.get("PATH"))
        if exe is None:
            raise TunnelToolMissing(
                f"{tool} is not installed (not found on PATH)", INSTALL_HINTS[tool]
            )
        return exe

    def _spawn(
        self, spec: TunnelSpec, argv: list[str], env: Mapping[str, str]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self._path(spec.name, ".log")
        try:
            child = process.spawn(argv, log_path, env=env, cwd=self.root, append=False)
        except FileNotFoundError as e:
            raise TunnelToolMissing(
                f"{argv[0]} is not installed", INSTALL_HINTS.get(Path(argv[0]).name)
            ) from e
        except OSError as e:
            raise TunnelStartError(f"cannot start {argv[0]}: {e}", "check the installation") from e
        self._procs[spec.name] = child.proc
        return child.proc, log_path

    def _record(
        self,
        spec: TunnelSpec,
        proc: subprocess.Popen[bytes],
        log_path: Path,
        url: str | None,
        **extra: Any,
    ) -> TunnelRecord:
        rec = TunnelRecord(
            name=spec.name,
            via=spec.via,
            port=spec.port,
            deployment=spec.deployment,
            pid=proc.pid,
            create_time=process.create_time(proc.pid),
            url=url,
            started_at=_now(),
            log=str(log_path),
            **extra,
        )
        self._save(rec)
        return rec

    def _died(
        self, spec: TunnelSpec, proc: subprocess.Popen[bytes], log_path: Path
    ) -> TunnelStartError:
        tail = process.tail(log_path)
        hint = "see the log above; `llmops tunnel ls` shows running tunnels"
        if spec.via == "ngrok":
            err = tp.ngrok_error_from_log(tail.splitlines())
            if err and ("4018" in err or "authtoken" in err.lower()):
                hint = "add your authtoken: `ngrok config add-authtoken TOKEN` (or NGROK_AUTHTOKEN)"
        return TunnelStartError(
            f"{spec.via} for {spec.name} exited with code {proc.returncode}:\n{tail}", hint
        )

    def _give_up(
        self, spec: TunnelSpec, proc: subprocess.Popen[bytes], log_path: Path, what: str
    ) -> TunnelStartError:
        tail = process.tail(log_path)
        process.stop_group(proc.pid, None, 3.0, proc=proc)
        self._forget(spec.name)
        return TunnelStartError(
            f"{spec.via} for {spec.name} did not report {what} within "
            f"{spec.start_timeout_s:.0f}s:\n{tail}",
            "check the host's network; try again, or use another `--via`",
        )

    def _start_cloudflared(self, spec: TunnelSpec) -> TunnelRecord:
        exe = self._which("cloudflared")
        metrics = f"127.0.0.1:{free_port()}"
        target = f"http://127.0.0.1:{spec.port}"
        env = {k: v for k, v in self.env.items() if k not in ("TUNNEL_TOKEN", "TUNNEL_TOKEN_FILE")}
        argv = [exe, "tunnel", "--no-autoupdate", "--metrics", metrics, "--url", target]
        named = bool(spec.cf_token)
        if named:
            if not spec.cf_hostname:
                raise UsageError(
                    "a named cloudflared tunnel needs its public hostname",
                    "pass `--hostname api.example.com` (the hostname you routed to the tunnel)",
                )
            env["TUNNEL_TOKEN"] = spec.cf_token or ""  # cloudflared reads it; never in argv
            argv.append("run")
        proc, log_path = self._spawn(spec, argv, env)
        deadline = time.monotonic() + spec.start_timeout_s
        url: str | None = tp.quicktunnel_url({"hostname": spec.cf_hostname}) if named else None
        while True:
            if proc.poll() is not None:
                self._forget_keep_log(spec.name)
                raise self._died(spec, proc, log_path)
            _, ready = get_json(f"http://{metrics}/ready")
            connected = isinstance(ready, dict) and tp.ready_connections(ready) >= 1
            if not named and url is None:
                _, qt = get_json(f"http://{metrics}/quicktunnel")
                if isinstance(qt, dict):
                    url = tp.quicktunnel_url(qt)
                if url is None:
                    with contextlib.suppress(OSError):
                        url = tp.cloudflared_url_from_log(
                            log_path.read_text(errors="replace").splitlines()
                        )
            if url and connected:
                break
            if time.monotonic() > deadline:
                if url:  # the edge may still be connecting; the check through the URL decides
                    break
                raise self._give_up(spec, proc, log_path, "a public URL")
            time.sleep(0.2)
        return self._record(spec, proc, log_path, url, api_addr=metrics, named=named)

    def _forget_keep_log(self, name: str) -> None:
        for suffix in (".json", ".ngrok.yml"):
            with contextlib.suppress(OSError):
                self._path(name, suffix).unlink()

    def _ngrok_default_config(self) -> Path | None:
        base = self.env.get("XDG_CONFIG_HOME") or os.path.join(
            self.env.get("HOME") or os.path.expanduser("~"), ".config"
        )
        p = Path(base) / "ngrok" / "ngrok.yml"
        return p if p.is_file() else None

    def _start_ngrok(self, spec: TunnelSpec) -> TunnelRecord:
        exe = self._which("ngrok")
        default_cfg = self._ngrok_default_config()
        token = self.env.get("NGROK_AUTHTOKEN") or None
        if default_cfg is None and token is None:
            raise TunnelStartError(
                "ngrok has no authtoken: no ngrok config file and NGROK_AUTHTOKEN is not set",
                "`ngrok config add-authtoken TOKEN` (from https://dashboard.ngrok.com), or "
                "export NGROK_AUTHTOKEN",
            )
        version = "3"
        if default_cfg is not None:
            with contextlib.suppress(OSError):
                version = tp.ngrok_config_version(default_cfg.read_text(errors="replace"))
        web_addr = f"127.0.0.1:{free_port()}"
        cfg = self._path(spec.name, ".ngrok.yml")
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tp.ngrok_config_text(version, web_addr, token))
        argv = [exe, "http", f"http://127.0.0.1:{spec.port}", "--log", "stdout"]
        argv += ["--log-format", "logfmt"]
        if default_cfg is not None:
            argv += ["--config", str(default_cfg)]
        argv += ["--config", str(cfg)]  # later files win: our web_addr
        env = {k: v for k, v in self.env.items() if k != "NGROK_AUTHTOKEN"}
        proc, log_path = self._spawn(spec, argv, env)
        deadline = time.monotonic() + spec.start_timeout_s
        url = None
        while url is None:
            if proc.poll() is not None:
                self._forget_keep_log(spec.name)
                raise self._died(spec, proc, log_path)
            with contextlib.suppress(OSError):
                lines = log_path.read_text(errors="replace").splitlines()
                err = tp.ngrok_error_from_log(lines)
                if err:
                    process.stop_group(proc.pid, None, 3.0, proc=proc)
                    self._forget_keep_log(spec.name)
                    hint = "see `ngrok diagnose`; https://ngrok.com/docs/errors/"
                    if "4018" in err or "authtoken" in err.lower():
                        hint = "`ngrok config add-authtoken TOKEN`, or export NGROK_AUTHTOKEN"
                    raise TunnelStartError(f"ngrok for {spec.name} failed: {err}", hint)
                web_addr = tp.ngrok_web_addr_from_log(lines) or web_addr
            status, doc = get_json(f"http://{web_addr}/api/endpoints")
            if status == 404 or not isinstance(doc, dict):
                status, doc = get_json(f"http://{web_addr}/api/tunnels")
            if isinstance(doc, dict):
                url = tp.pick_ngrok_url(tp.parse_ngrok_api(doc), spec.port)
            if url is None:
                if time.monotonic() > deadline:
                    raise self._give_up(spec, proc, log_path, "a public URL")
                time.sleep(0.2)
        return self._record(spec, proc, log_path, url, api_addr=web_addr)

    def _start_ssh(self, spec: TunnelSpec) -> TunnelRecord:
        if not spec.ssh_host:
            raise UsageError(
                "`--via ssh` needs `--ssh-host [user@]host[:port]`", "a host you own with sshd"
            )
        try:
            user, host, ssh_port = tp.ssh_target(spec.ssh_host)
        except ValueError as e:
            raise UsageError(f"bad --ssh-host: {e}", "use [user@]host[:port]") from e
        argv = [sys.executable, "-m", "llmops.run.tunnels", "ssh-forward", "--host", host]
        argv += ["--port", str(ssh_port), "--local-port", str(spec.port)]
        argv += ["--remote-port", str(spec.ssh_remote_port), "--bind", spec.ssh_bind]
        if user:
            argv += ["--user", user]
        if spec.ssh_key:
            argv += ["--key", spec.ssh_key]
        if spec.ssh_known_hosts:
            argv += ["--known-hosts", spec.ssh_known_hosts]
        proc, log_path = self._spawn(spec, argv, self.env)
        deadline = time.monotonic() + spec.start_timeout_s
        while True:
            text = ""
            with contextlib.suppress(OSError):
                text = log_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(SSH_READY):
                    remote_port = int(line[len(SSH_READY) :].rsplit(":", 1)[1])
                    url = f"http://{tp.url_host(host)}:{remote_port}"
                    return self._record(spec, proc, log_path, url, remote=spec.ssh_host)
                if line.startswith(SSH_ERROR):
                    kind, _, msg = line[len(SSH_ERROR) :].partition(": ")
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
                    self._forget_keep_log(spec.name)
                    raise TunnelStartError(
                        f"SSH reverse forward to {spec.ssh_host} failed: {msg}",
                        _SSH_HINTS.get(kind),
                    )
            if proc.poll() is not None:
                self._forget_keep_log(spec.name)
                raise self._died(spec, proc, log_path)
            if time.monotonic() > deadline:
                raise self._give_up(spec, proc, log_path, "the forwarded port")
            time.sleep(0.1)


_SSH_HINTS = {
    "hostkey": "add the host to known_hosts first (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts` "
    "after checking its fingerprint), or pass `--ssh-known-hosts FILE`",
    "auth": "pass `--ssh-key ~/.ssh/id_ed25519`, or load the key into ssh-agent",
    "connect": "check the host and port (`ssh -p PORT user@host`)",
    "forward": "the server refused the forward: set `AllowTcpForwarding yes` (and `GatewayPorts "
    "yes` for outside clients) in its sshd_config, or choose another `--remote-port`",
}


# ------------------------------------------------------------------------------ the check


def check_exposure(
    url: str,
    api_key: str | None,
    *,
    allow_public_no_auth: bool,
    timeout_s: float = 60.0,
    poll_s: float = 0.5,
) -> tp.ExposureCheck:
    """Probe ``/v1/models`` through the public URL, with and without the key.

    A fresh quick tunnel "may take some time to be reachable", so the request with the key
    (or, with no key, the keyless one) is retried until it gets an answer or ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    target = url.rstrip("/") + "/v1/models"
    while True:
        with_key = http_status(target, api_key, PROBE_TIMEOUT_S) if api_key else None
        without = http_status(target, None, PROBE_TIMEOUT_S)
        check = tp.judge_exposure(
            url,
            with_key_status=with_key,
            without_key_status=without,
            had_key=bool(api_key),
            allow_public_no_auth=allow_public_no_auth,
        )
        if check.reachable or time.monotonic() > deadline:
            return check
        time.sleep(poll_s)


@dataclass(frozen=True)
class OpenedTunnel:
    record: TunnelRecord
    check: tp.ExposureCheck
    local_audit: pa.Audit | None = None  # the audit through 127.0.0.1:PORT, before starting
    public_audit: pa.Audit | None = None  # the same audit through the public URL


def _what(spec: TunnelSpec) -> str:
    return f"deployment {spec.deployment}" if spec.deployment else f"port {spec.port}"


def _open_hint(audit: pa.Audit) -> str:
    hint = (
        "start it with an API key (`llmops up` sets one by default) and keep every route "
        "behind it, or pass `--allow-public-no-auth` if it really should be public"
    )
    if audit.engine == "vllm":
        hint = (
            "vLLM's --api-key guards only "
            + ", ".join(pa.VLLM_GUARDED_PREFIXES)
            + " (/invocations, /tokenize and more answer without it): put an authenticating "
            "reverse proxy in front, "
            "or serve the model with llama.cpp or llmops' torch backend; "
            "`--allow-public-no-auth` overrides"
        )
    return hint + f" (`llmops audit {audit.url}` shows every route)"


def audit_local(
    spec: TunnelSpec,
    api_key: str | None,
    *,
    engine: str | None,
    allow_public_no_auth: bool,
    timeout_s: float = 10.0,
) -> pa.Audit:
    """The audit through the local endpoint, before anything starts; raises to refuse."""
    from llmops.run import audit as ra

    local = f"http://127.0.0.1:{spec.port}"
    what = _what(spec)
    pre = ra.audit(local, engine, timeout_s=timeout_s)
    if pre.verdict == "unreachable":
        raise TunnelUnreachable(
            f"{what} does not answer locally: {pre.detail}",
            "check it with `llmops ps` (and the key in its secrets.env)",
        )
    if api_key:
        got = http_status(local + "/v1/models", api_key, timeout_s)
        if got != 200:
            raise TunnelUnreachable(
                f"{what} does not answer locally with its key: GET {local}/v1/models "
                f"answered {got if got is not None else 'nothing'}",
                "check it with `llmops ps` (and the key in its secrets.env)",
            )
    if allow_public_no_auth:
        return pre
    if pre.verdict in ("exposed", "unprotected"):
        raise TunnelUnprotected(
            f"refusing to expose {what}: it answers without an API key ({pre.detail})",
            _open_hint(pre),
        )
    if pre.verdict == "inconclusive":
        raise TunnelUnreachable(
            f"refusing to expose {what} before it is audited: {pre.detail}",
            "wait until `llmops ps` shows it ready, then try again",
        )
    return pre


def open_tunnel(
    manager: TunnelManager,
    spec: TunnelSpec,
    api_key: str | None,
    *,
    allow_public_no_auth: bool = False,
    verify_timeout_s: float = 60.0,
    on_progress: Callable[[str], None] = lambda _m: None,
    engine: str | None = None,
) -> OpenedTunnel:
    """Audit locally, start the tunnel, audit again through it; stop it if that fails.

    The audit (``llmops.plan.audit``) asks every route ``engine`` serves (every known engine's
    when None) without credentials; any generating or administrative route that answers is
    "exposed". Through the public URL the key must also get 200 from ``/v1/models``.

    Raises:
        TunnelUnprotected: a route answers without a key (and no override was given).
        TunnelUnreachable: nothing answers locally, or not through the public URL, or the
            audit could not tell (the engine is still loading).
    """
    from llmops.run import audit as ra

    what = _what(spec)
    probe_timeout = max(1.0, min(10.0, verify_timeout_s))
    on_progress(f"auditing {what} at http://127.0.0.1:{spec.port} (requests without a key)")
    pre = audit_local(
        spec,
        api_key,
        engine=engine,
        allow_public_no_auth=allow_public_no_auth,
        timeout_s=probe_timeout,
    )
    on_progress(f"starting {spec.via} tunnel for {what}")
    rec = manager.start(spec)
    if rec.url is None:  # pragma: no cover - every starter returns a URL or raises
        manager.stop(spec.name)
        raise TunnelStartError(f"{spec.via} reported no URL", None)
    on_progress(f"auditing {rec.url} through the tunnel")
    try:
        check = check_exposure(
            rec.url, api_key, allow_public_no_auth=allow_public_no_auth, timeout_s=verify_timeout_s
        )
        public = ra.audit(rec.url, engine, timeout_s=probe_timeout) if check.reachable else None
    except BaseException:
        manager.stop(spec.name, 3.0)
        raise
    if public is None or public.verdict == "unreachable":
        manager.stop(spec.name, 3.0)
        detail = public.detail if public is not None else check.detail
        raise TunnelUnreachable(
            f"the {spec.via} tunnel for {what} started but {detail}; it was stopped",
            "try again (a new quick tunnel can take a minute to resolve), or use another `--via`",
        )
    if not public.ok and not allow_public_no_auth:
        manager.stop(spec.name, 3.0)
        if public.verdict == "inconclusive":
            raise TunnelUnreachable(
                f"refusing to keep the tunnel for {what}: {public.detail}; it was stopped",
                "try again once it answers; `llmops audit URL` shows every route",
            )
        raise TunnelUnprotected(
            f"refusing to keep the tunnel for {what}: {public.detail}; it was stopped",
            _open_hint(public),
        )
    models = next((p for p in public.probes if p.label == "GET /v1/models"), None)
    without = models.status if models is not None else check.without_key_status
    head = f"/v1/models: {check.with_key_status or '-'} with the key, {without} without"
    verdict = "ok" if public.ok else "unprotected-allowed"
    final = tp.ExposureCheck(
        rec.url,
        check.with_key_status,
        without,
        True,
        public.ok,
        verdict,
        f"{head}; {public.detail}" if public.ok else public.detail,
    )
    return OpenedTunnel(rec, final, pre, public)


@dataclass(frozen=True)
class Target:
    """What ``llmops tunnel NAME|PORT`` exposes: a local port and the key that guards it."""

    name: str  # the tunnel's name: the deployment's, or port-PORT
    port: int
    deployment: str | None
    api_key: str | None
    engine: str | None = None  # from the deployment's record: which routes the audit asks


def resolve_target(target: str, deployments: Any, env: Mapping[str, str]) -> Target:
    """A deployment name (port and key from its state) or a bare port (key from LLMOPS_API_KEY)."""
    if target.isdigit():
        port = int(target)
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is out of range", "give a port between 1 and 65535")
        return Target(f"port-{port}", port, None, env.get("LLMOPS_API_KEY") or None)
    deployments.require(target)
    dep_port: int | None = None
    engine: str | None = None
    for row in deployments.status(probe=False):
        if row.name == target:
            dep_port = row.port
            engine = row.engine
    if dep_port is None:
        raise TunnelError(
            f"deployment {target} has no published port", f"see `llmops ps`; `llmops logs {target}`"
        )
    return Target(target, dep_port, target, deployments.store.api_key(target), engine)


def running_deployments(deployments: Any) -> list[Any]:
    """The deployments whose status is running (bare ``llmops tunnel`` picks from these)."""
    return [row for row in deployments.status(probe=False) if row.status == "running"]


# ------------------------------------------------------------------------------ ssh child


def _pump(chan: Any, local_port: int) -> None:
    from llmops.run.ssh import relay

    try:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=10)
    except OSError as e:
        print(f"llmops-ssh-forward: cannot reach 127.0.0.1:{local_port}: {e}", flush=True)
        chan.close()
        return
    sock.settimeout(None)
    relay(sock, chan)


def _ssh_forward_main(argv: list[str]) -> int:
    """The supervised child: connect, ask the server to forward a port, pump channels."""
    import argparse

    import paramiko

    ap = argparse.ArgumentParser(prog="llmops.run.tunnels ssh-forward")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=22)
    ap.add_argument("--user", default=None)
    ap.add_argument("--key", default=None)
    ap.add_argument("--known-hosts", default=None)
    ap.add_argument("--local-port", type=int, required=True)
    ap.add_argument("--remote-port", type=int, default=0)
    ap.add_argument("--bind", default="")
    a = ap.parse_args(argv)

    def fail(kind: str, msg: str) -> int:
        print(f"{SSH_ERROR}{kind}: {msg}", flush=True)
        return 1

    client = paramiko.SSHClient()
    try:
        if a.known_hosts:
            client.load_host_keys(a.known_hosts)
        else:
            client.load_system_host_keys()
    except OSError as e:
        return fail("hostkey", f"cannot read known_hosts: {e}")
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            a.host,
            port=a.port,
            username=a.user or os.environ.get("USER") or "root",
            key_filename=a.key,
            timeout=15,
            banner_timeout=15,
            auth_timeout=15,
            allow_agent=True,
            look_for_keys=a.key is None,
        )
    except paramiko.BadHostKeyException as e:
        return fail("hostkey", f"host key of {a.host} does not match known_hosts ({e})")
    except paramiko.AuthenticationException as e:
        return fail("auth", f"authentication to {a.host} failed ({e})")
    except paramiko.SSHException as e:
        kind = "hostkey" if "known_hosts" in str(e) else "connect"
        return fail(kind, f"{a.host}:{a.port}: {e}")
    except OSError as e:
        return fail("connect", f"cannot connect to {a.host}:{a.port}: {e}")
    transport = client.get_transport()
    if transport is None:  # pragma: no cover
        return fail("connect", "no SSH transport")
    transport.set_keepalive(30)
    try:
        port = transport.request_port_forward(a.bind, a.remote_port)
    except paramiko.SSHException as e:
        return fail("forward", f"the server refused to forward port {a.remote_port}: {e}")
    print(f"{SSH_READY}{a.bind or '*'}:{port}", flush=True)

    stop = threading.Event()

    def _term(_sig: int, _frm: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    while not stop.is_set():
        chan = transport.accept(0.5)
        if chan is None:
            if not transport.is_active():
                print("llmops-ssh-forward: SSH connection lost", flush=True)
                return 2
            continue
        threading.Thread(target=_pump, args=(chan, a.local_port), daemon=True).start()
    with contextlib.suppress(Exception):
        transport.cancel_port_forward(a.bind, port)
    client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ssh-forward"]:
        return _ssh_forward_main(args[1:])
    print("usage: python -m llmops.run.tunnels ssh-forward ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "INSTALL_HINTS",
    "LlmopsError",
    "OpenedTunnel",
    "TunnelError",
    "TunnelManager",
    "TunnelRecord",
    "TunnelSpec",
    "Target",
    "TunnelStatus",
    "check_exposure",
    "audit_local",
    "open_tunnel",
    "resolve_target",
    "running_deployments",
]
