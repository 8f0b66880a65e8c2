"""Native runtime: the engine as a process in its own session, with pid and log files.

Used where there is no Docker (vast.ai and RunPod instances are containers). The pid file
records the process start time too, so a recycled pid is never mistaken for our engine, and
``stop`` signals the whole process group (engines fork workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from llmops.errors import LlmopsError
from llmops.hw.engines import PROGRAMS, find_program
from llmops.plan.launch import LaunchPlan
from llmops.run import process
from llmops.run.docker import LaunchError, RuntimeState
from llmops.run.state import DeploymentStore, write_atomic


@dataclass(frozen=True)
class PidRecord:
    """``engine.pid``: the engine's pid, its start time and its command line. All three must
    hold before llmops signals the pid: a pid alone may by now be someone else's process."""

    pid: int
    create_time: float
    argv: tuple[str, ...]

    def alive(self) -> bool:
        return process.alive(self.pid, self.create_time, self.argv)


class BrokenPidRecord(LlmopsError):
    """An engine.pid that llmops cannot trust (never signalled)."""


def parse_pid_record(data: object) -> PidRecord | str:
    """The record, or why it cannot be trusted."""
    if not isinstance(data, dict):
        return "not a JSON object"
    pid, created, argv = data.get("pid"), data.get("create_time"), data.get("argv")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
        return f"pid {pid!r} is not a process id"
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not created > 0:
        return "it has no start time (create_time), so the pid cannot be verified"
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return "it has no command line (argv), so the pid cannot be verified"
    return PidRecord(pid, float(created), tuple(argv))


class NativeRuntime:
    name = "native"

    def __init__(self, store: DeploymentStore, env: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.env = dict(os.environ if env is None else env)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        plan: LaunchPlan,
        secret_values: Mapping[str, str],
        on_progress: Callable[[str], None] | None = None,
    ) -> RuntimeState:
        d = self.store.dir(plan.name)
        d.mkdir(parents=True, exist_ok=True)
        # A plan's paths may start with ``~/`` (pure plans do not know $HOME): the shell render
        # writes "$HOME"/..., and here the same expansion happens before the engine sees it.
        home = self.env.get("HOME") or os.path.expanduser("~")
        env = {
            **self.env,
            **{k: home + v[1:] if v.startswith("~/") else v for k, v in plan.env},
        }
        for s in plan.secret_env:
            if s.env in secret_values:
                env[s.env] = secret_values[s.env]
        argv = list(plan.argv)
        if argv and argv[0] in PROGRAMS:  # an engine `llmops engine install` built, else PATH
            argv[0] = find_program(argv[0], env) or argv[0]
        try:
            child = process.spawn(argv, self.store.log_path(plan.name), env=env, cwd=d)
        except FileNotFoundError as e:
            raise LaunchError(
                f"{plan.argv[0]} is not installed on this host (needed for {plan.engine} "
                "without Docker)",
                _install_hint(plan.engine),
            ) from e
        except OSError as e:
            raise LaunchError(f"cannot start {plan.argv[0]}: {e}", "check the command") from e
        self._procs[plan.name] = child.proc
        record = {"pid": child.pid, "create_time": child.create_time, "argv": list(child.argv)}
        write_atomic(self.store.pid_path(plan.name), json.dumps(record), 0o600)
        return self.state(plan.name)

    def _record(self, name: str) -> PidRecord | str | None:
        """The pid record; a string says why it cannot be trusted; None: there is none."""
        try:
            text = self.store.pid_path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"unreadable ({e.strerror or e})"
        try:
            data = json.loads(text)
        except ValueError:
            return "not JSON"
        return parse_pid_record(data)

    def record_problem(self, name: str) -> str | None:
        """Why ``name``'s engine.pid cannot be trusted, or None (a good one, or none)."""
        rec = self._record(name)
        return rec if isinstance(rec, str) else None

    def state(self, name: str) -> RuntimeState:
        rec = self._record(name)
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:  # ours, and it has exited
            return RuntimeState(
                name=name, exists=True, running=False, status="exited", exit_code=proc.returncode
            )
        if rec is None:
            return RuntimeState(name=name, exists=False, running=False, status="missing")
        if isinstance(rec, str):
            return RuntimeState(name=name, exists=True, running=False, status="broken")
        pid, created = rec.pid, rec.create_time
        proc = self._procs.get(name)
        exit_code = proc.poll() if proc is not None else None
        running = exit_code is None and rec.alive()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        return RuntimeState(
            name=name,
            exists=True,
            running=running,
            status="running" if running else "exited",
            exit_code=exit_code,
            started_at=started,
            ident=str(pid),
        )

    def usage(self, name: str) -> tuple[int | None, frozenset[int]]:
        """(resident memory of the engine and its children in bytes, their pids), measured now;
        (None, {}) unless the recorded process is alive and is still ours (start time, argv)."""
        rec = self._record(name)
        if rec is None or isinstance(rec, str) or not rec.alive():
            return None, frozenset()
        import psutil

        try:
            root = psutil.Process(rec.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None, frozenset()
        rss = 0
        pids = set()
        for p in procs:
            try:
                rss += p.memory_info().rss
                pids.add(p.pid)
            except psutil.Error:  # exited meanwhile
                continue
        return rss, frozenset(pids)

    def list(self) -> list[RuntimeState]:
        out = []
        for dep in self.store.all():
            if dep.runtime == "native":
                out.append(self.state(dep.name))
        return out

    def logs(self, name: str, tail: int | None = 200) -> str:
        return process.read_log(self.store.log_path(name), tail)

    def follow(self, name: str, tail: int | None = 50) -> Iterator[str]:
        path = self.store.log_path(name)
        try:
            lines = process.follow(path, lambda: self.state(name).running, tail)
        except OSError as e:
            raise LlmopsError(
                f"deployment {name} has no log file to follow ({path}: {e.strerror or e})",
                f"`llmops ps` shows whether it still runs; `llmops down {name}` removes it",
            ) from e
        yield from lines

    def stop(self, name: str, grace_s: int = 20) -> bool:
        """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL. False if not running.

        Only a pid whose start time and command line match the record is signalled.

        Raises:
            BrokenPidRecord: the record cannot be trusted (nothing is signalled).
        """
        rec = self._record(name)
        own = self._procs.get(name)
        if rec is None or (own is not None and own.poll() is not None):
            return False
        if isinstance(rec, str):
            raise BrokenPidRecord(
                f"deployment {name}: its pid record {self.store.pid_path(name)} cannot be "
                f"trusted ({rec}); no process was signalled",
                f"remove the record with `llmops down {name} --force`; if its engine still "
                "runs, `llmops kill --all --dry-run` lists it",
            )
        try:
            return process.stop_group(
                rec.pid, rec.create_time, grace_s, proc=self._procs.get(name), argv=rec.argv
            )
        except PermissionError as e:
            raise LlmopsError(
                f"not allowed to stop deployment {name} (pid {rec.pid})",
                "run as the user who started it",
            ) from e


def _install_hint(engine: str) -> str:
    return {
        "tgi": "install text-generation-inference (the launcher and server) or use a TGI image "
        "template on your GPU provider",
        "vllm": "`pip install vllm` (or start from the vllm/vllm-openai template image)",
        "llamacpp": "`llmops engine install llamacpp` (builds the pinned llama-server), or put "
        "a llama.cpp release's llama-server on PATH",
        "torch": "`pip install 'llmops[backend]'`",
    }.get(engine, "install the engine")
