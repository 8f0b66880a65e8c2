"""The tunnel records under ``$LLMOPS_HOME/tunnels``: start, list and stop tunnels."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmops.errors import TunnelExists, TunnelStartError, TunnelToolMissing, UsageError
from llmops.paths import llmops_home
from llmops.plan import tunnel as tp
from llmops.run import process
from llmops.run.process import Supervised
from llmops.run.tunnels.providers import INSTALL_HINTS, PROVIDERS
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec, TunnelStatus, now


class TunnelManager:
    """Tunnel records under ``$LLMOPS_HOME/tunnels``; start, list and stop tunnels.

    It is also the :class:`~llmops.run.tunnels.providers.base.Supervisor` the providers start
    their processes through."""

    def __init__(self, home: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.home = home or llmops_home(self.env)
        self.root = self.home / "tunnels"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ---- records

    def path(self, name: str, suffix: str = ".json") -> Path:
        """A file of tunnel ``name``: its record, log or config (by ``suffix``)."""
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"invalid tunnel name {name!r}", "see `llmops tunnel ls`")
        return self.root / f"{name}{suffix}"

    def load(self, name: str) -> TunnelRecord | None:
        try:
            doc = json.loads(self.path(name).read_text())
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
        tmp = self.path(rec.name, ".json.tmp")
        tmp.write_text(json.dumps(asdict(rec), indent=2))
        tmp.replace(self.path(rec.name))

    def _forget(self, name: str) -> None:
        for suffix in (".json", ".ngrok.yml", ".log"):
            with contextlib.suppress(OSError):
                self.path(name, suffix).unlink()
        self._procs.pop(name, None)

    def forget_keep_log(self, name: str) -> None:
        """Remove the record and the ngrok config of ``name``, keeping its log to read."""
        for suffix in (".json", ".ngrok.yml"):
            with contextlib.suppress(OSError):
                self.path(name, suffix).unlink()

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
        return PROVIDERS[spec.via].start(spec, self)

    # ---- what providers use (the Supervisor interface)

    def which(self, tool: str) -> str:
        exe = shutil.which(tool, path=self.env.get("PATH"))
        if exe is None:
            raise TunnelToolMissing(
                f"{tool} is not installed (not found on PATH)", INSTALL_HINTS[tool]
            )
        return exe

    def spawn(self, spec: TunnelSpec, argv: list[str], env: Mapping[str, str]) -> Supervised:
        log_path = self.path(spec.name, ".log")
        try:
            child = process.spawn(argv, log_path, env=env, cwd=self.root, append=False)
        except FileNotFoundError as e:
            raise TunnelToolMissing(
                f"{argv[0]} is not installed", INSTALL_HINTS.get(Path(argv[0]).name)
            ) from e
        except OSError as e:
            raise TunnelStartError(f"cannot start {argv[0]}: {e}", "check the installation") from e
        self._procs[spec.name] = child.proc
        return child

    def record(
        self, spec: TunnelSpec, child: Supervised, url: str | None, **extra: Any
    ) -> TunnelRecord:
        rec = TunnelRecord(
            name=spec.name,
            via=spec.via,
            port=spec.port,
            deployment=spec.deployment,
            pid=child.pid,
            create_time=child.create_time,
            url=url,
            started_at=now(),
            log=str(child.log),
            **extra,
        )
        self._save(rec)
        return rec

    def died(self, spec: TunnelSpec, child: Supervised) -> TunnelStartError:
        self.forget_keep_log(spec.name)
        tail = process.tail(child.log)
        hint = PROVIDERS[spec.via].died_hint(tail) or (
            "see the log above; `llmops tunnel ls` shows running tunnels"
        )
        return TunnelStartError(
            f"{spec.via} for {spec.name} exited with code {child.proc.returncode}:\n{tail}", hint
        )

    def give_up(self, spec: TunnelSpec, child: Supervised, what: str) -> TunnelStartError:
        tail = process.tail(child.log)
        process.stop_group(child.pid, None, 3.0, proc=child.proc)
        self._forget(spec.name)
        return TunnelStartError(
            f"{spec.via} for {spec.name} did not report {what} within "
            f"{spec.start_timeout_s:.0f}s:\n{tail}",
            "check the host's network; try again, or use another `--via`",
        )
