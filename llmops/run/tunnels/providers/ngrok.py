"""ngrok: ``ngrok http URL --log stdout --log-format logfmt --config ...``.

The agent API address and the authtoken go in a 0600 extra config file (never argv), after the
user's own config so ours wins; the URL comes from ``/api/endpoints`` or the older
``/api/tunnels`` (ops.md §2.2).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from llmops.errors import TunnelStartError
from llmops.net import free_port, get_json
from llmops.plan import tunnel as tp
from llmops.run import process
from llmops.run.process import Supervised
from llmops.run.tunnels.providers.base import Provider, Supervisor
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec

_AUTHTOKEN_HINT = "`ngrok config add-authtoken TOKEN`, or export NGROK_AUTHTOKEN"


def _is_authtoken_error(err: str) -> bool:
    return "4018" in err or "authtoken" in err.lower()


class Ngrok(Provider):
    name = "ngrok"
    binary = "ngrok"
    install_hint = (
        "install the ngrok agent (https://ngrok.com/download, e.g. `snap install ngrok` or the "
        "apt repository), then `ngrok config add-authtoken TOKEN`; or use `--via cloudflared`"
    )

    def died_hint(self, log_tail: str) -> str | None:
        err = tp.ngrok_error_from_log(log_tail.splitlines())
        if err and _is_authtoken_error(err):
            return "add your authtoken: `ngrok config add-authtoken TOKEN` (or NGROK_AUTHTOKEN)"
        return None

    def start(self, spec: TunnelSpec, run: Supervisor) -> TunnelRecord:
        exe = run.which("ngrok")
        default_cfg = _default_config(run.env)
        token = run.env.get("NGROK_AUTHTOKEN") or None
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
        cfg = run.path(spec.name, ".ngrok.yml")
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tp.ngrok_config_text(version, web_addr, token))
        argv = [exe, "http", f"http://127.0.0.1:{spec.port}", "--log", "stdout"]
        argv += ["--log-format", "logfmt"]
        if default_cfg is not None:
            argv += ["--config", str(default_cfg)]
        argv += ["--config", str(cfg)]  # later files win: our web_addr
        env = {k: v for k, v in run.env.items() if k != "NGROK_AUTHTOKEN"}
        child = run.spawn(spec, argv, env)
        deadline = time.monotonic() + spec.start_timeout_s
        url = None
        while url is None:
            if child.proc.poll() is not None:
                raise run.died(spec, child)
            web_addr = _check_log(spec, child, run) or web_addr
            url = _url(web_addr, spec.port)
            if url is None:
                if time.monotonic() > deadline:
                    raise run.give_up(spec, child, "a public URL")
                time.sleep(0.2)
        return run.record(spec, child, url, api_addr=web_addr)


def _default_config(env: dict[str, str]) -> Path | None:
    """The user's own ngrok.yml (``$XDG_CONFIG_HOME/ngrok/ngrok.yml``), if there is one."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    p = Path(base) / "ngrok" / "ngrok.yml"
    return p if p.is_file() else None


def _check_log(spec: TunnelSpec, child: Supervised, run: Supervisor) -> str | None:
    """The agent API address the log reports (None: not yet); stops ngrok on a logged error."""
    try:
        lines = child.log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    err = tp.ngrok_error_from_log(lines)
    if err:
        process.stop_group(child.pid, None, 3.0, proc=child.proc)
        run.forget_keep_log(spec.name)
        hint = "see `ngrok diagnose`; https://ngrok.com/docs/errors/"
        if _is_authtoken_error(err):
            hint = _AUTHTOKEN_HINT
        raise TunnelStartError(f"ngrok for {spec.name} failed: {err}", hint)
    return tp.ngrok_web_addr_from_log(lines)


def _url(web_addr: str, port: int) -> str | None:
    """The public URL forwarding to ``port``, from the agent API (None: not yet)."""
    status, doc = get_json(f"http://{web_addr}/api/endpoints")
    if status == 404 or not isinstance(doc, dict):
        status, doc = get_json(f"http://{web_addr}/api/tunnels")
    if isinstance(doc, dict):
        return tp.pick_ngrok_url(tp.parse_ngrok_api(doc), port)
    return None
