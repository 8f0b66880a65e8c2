"""Native runtime: the engine as a process in its own session, with pid and log files.

Used where there is no Docker (vast.ai and RunPod instances are containers). The pid file
records the process start time too, so a recycled pid is never mistaken for our engine, and
``stop`` signals the whole process group (engines fork workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping

from llmops.errors import LlmopsError
from llmops.hw.engines import PROGRAMS, find_program
from llmops.plan.launch import LaunchPlan
from llmops.run.docker import LaunchError, RuntimeState
from llmops.run.state import DeploymentStore


def process_create_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def process_alive(pid: int, created: float | None) -> bool:
    """True when ``pid`` runs and (when ``created`` is known) is the process started then."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(p.create_time() - created) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


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
        log = open(self.store.log_path(plan.name), "ab", buffering=0)  # noqa: SIM115 - kept by child
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: survives us, stoppable
            )
        except FileNotFoundError as e:
            raise LaunchError(
                f"{plan.argv[0]} is not installed on this host (needed for {plan.engine} "
                "without Docker)",
                _install_hint(plan.engine),
            ) from e
        except OSError as e:
            raise LaunchError(f"cannot start {plan.argv[0]}: {e}", "check the command") from e
        finally:
            log.close()
        self._procs[plan.name] = proc
        record = {
            "pid": proc.pid,
            "create_time": process_create_time(proc.pid),
            "argv": argv,
        }
        self.store.pid_path(plan.name).write_text(json.dumps(record))
        return self.state(plan.name)

    def _record(self, name: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads(self.store.pid_path(name).read_text())
            return data
        except (OSError, ValueError):
            return None

    def state(self, name: str) -> RuntimeState:
        rec = self._record(name)
        if rec is None:
            return RuntimeState(name=name, exists=False, running=False, status="missing")
        pid = int(str(rec["pid"]))
        created = rec.get("create_time")
        proc = self._procs.get(name)
        exit_code = proc.poll() if proc is not None else None
        running = exit_code is None and process_alive(pid, float(str(created)) if created else None)
        started = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(str(created))))
            if created
            else None
        )
        return RuntimeState(
            name=name,
            exists=True,
            running=running,
            status="running" if running else "exited",
            exit_code=exit_code,
            started_at=started,
            ident=str(pid),
        )

    def list(self) -> list[RuntimeState]:
        out = []
        for dep in self.store.all():
            if dep.runtime == "native":
                out.append(self.state(dep.name))
        return out

    def logs(self, name: str, tail: int | None = 200) -> str:
        path = self.store.log_path(name)
        try:
            data = path.read_bytes()
        except OSError:
            return ""
        text = data.decode(errors="replace")
        if tail is None:
            return text
        return "".join(text.splitlines(keepends=True)[-tail:])

    def follow(self, name: str, tail: int | None = 50) -> Iterator[str]:
        path = self.store.log_path(name)
        yield self.logs(name, tail)
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            while True:
                chunk = f.read()
                if chunk:
                    yield chunk.decode(errors="replace")
                    continue
                if not self.state(name).running:
                    return
                time.sleep(0.5)

    def stop(self, name: str, grace_s: int = 20) -> bool:
        """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL. False if not running."""
        rec = self._record(name)
        if rec is None:
            return False
        pid = int(str(rec["pid"]))
        created = rec.get("create_time")
        if not process_alive(pid, float(str(created)) if created else None):
            return False
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return False
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        except PermissionError as e:
            raise LlmopsError(
                f"not allowed to stop deployment {name} (pid {pid})",
                "run as the user who started it",
            ) from e
        deadline = time.monotonic() + grace_s
        proc = self._procs.get(name)
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            if not process_alive(pid, float(str(created)) if created else None):
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return True


def _install_hint(engine: str) -> str:
    return {
        "tgi": "install text-generation-inference (the launcher and server) or use a TGI image "
        "template on your GPU provider",
        "vllm": "`pip install vllm` (or start from the vllm/vllm-openai template image)",
        "llamacpp": "`llmops engine install llamacpp` (builds the pinned llama-server), or put "
        "a llama.cpp release's llama-server on PATH",
        "torch": "`pip install 'llmops[backend]'`",
    }.get(engine, "install the engine")
