"""What runs: deployments from state files and Docker labels, merged; stop them; their logs.

``ps`` is computed from the truth every time (state dir + ``llmops.*`` container labels +
live pids), never from a cache, so it is right after llmops or the Docker daemon restarts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmops.errors import DockerError, LlmopsError, UsageError
from llmops.hw.facts import GpuInfo
from llmops.net import http_status
from llmops.run.docker import DockerRuntime, RuntimeState
from llmops.run.native import BrokenPidRecord, NativeRuntime
from llmops.run.state import BrokenDeployment, Deployment, DeploymentStore


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    engine: str | None
    model: str | None
    quant: str | None
    runtime: str
    port: int | None
    gpus: str
    status: str  # running | exited | missing | restarting | created | broken
    health: str  # ready | loading | down | unknown
    uptime_s: int | None
    endpoint: str | None
    ident: str | None
    problem: str | None = None  # why it is broken, and the fix
    memory: dict[str, Any] | None = None  # measured now (`ps --json`), see measured_memory


class NotFound(LlmopsError):
    pass


MIB = 1 << 20


def measured_memory(
    source: str, host_bytes: int | None, pids: frozenset[int], gpus: Sequence[GpuInfo] | None
) -> dict[str, Any]:
    """A running deployment's memory as measured: host bytes (the process tree's RSS, or the
    container's cgroup usage), and on each GPU what NVML lists for its processes."""
    per_gpu = []
    for g in gpus or ():
        held = [p.used_memory_mib or 0 for p in (g.processes or ()) if p.pid in pids]
        if held:
            per_gpu.append({"index": g.index, "bytes": sum(held) * MIB})
    return {
        "host_bytes": host_bytes,
        "host_source": source,
        "gpu_bytes": sum(g["bytes"] for g in per_gpu) if per_gpu else (0 if gpus else None),
        "per_gpu": per_gpu,
        "pids": sorted(pids),
    }


def _parse_time(ts: str | None) -> _dt.datetime | None:
    """Docker's ``StartedAt`` (nanoseconds, Z) or our own ``...Z`` timestamps, as UTC."""
    if not ts or ts.startswith("0001-"):
        return None
    base = ts.split(".")[0].rstrip("Z")
    try:
        return _dt.datetime.fromisoformat(base).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


class Deployments:
    """Both runtimes and the store, behind one object the CLI uses."""

    def __init__(
        self,
        store: DeploymentStore,
        docker: DockerRuntime | None,
        native: NativeRuntime,
    ) -> None:
        self.store = store
        self._docker = docker
        self.native = native
        self.docker_error: str | None = None

    def docker(self) -> DockerRuntime:
        if self._docker is None:
            raise DockerError("Docker is not available", "use `--runtime native`")
        return self._docker

    def _docker_states(self) -> list[RuntimeState]:
        if self._docker is None:
            return []
        try:
            return self._docker.list()
        except DockerError as e:
            self.docker_error = e.message
            return []

    def record(self, name: str) -> Deployment | BrokenDeployment | None:
        """The state record, a damaged one's error, or None when there is none."""
        try:
            return self.store.load(name)
        except BrokenDeployment as e:
            return e

    def runtime_of(self, name: str) -> str | None:
        dep = self.store.load(name)  # a damaged record raises BrokenDeployment (hint: --force)
        if dep is not None:
            return dep.runtime
        if self._docker is not None:
            try:
                if self._docker.state(name).exists:
                    return "docker"
            except DockerError:
                return None
        return None

    def state(self, name: str) -> RuntimeState:
        rt = self.runtime_of(name)
        if rt == "docker":
            return self.docker().state(name)
        if rt == "native":
            return self.native.state(name)
        return RuntimeState(name=name, exists=False, running=False, status="missing")

    def names(self) -> list[str]:
        names = set(self.store.names())
        names |= {s.name for s in self._docker_states()}
        return sorted(names)

    def require(self, name: str) -> str:
        rt = self.runtime_of(name)
        if rt is None:
            known = self.names()
            raise NotFound(
                f"no deployment named {name!r}",
                ("running: " + ", ".join(known)) if known else "start one with `llmops up MODEL`",
            )
        return rt

    def measure(
        self, rows: list[DeploymentStatus], gpus: Sequence[GpuInfo] | None
    ) -> list[DeploymentStatus]:
        """``rows`` with the memory of each running deployment measured now (``gpus``: the NVML
        GPUs with their processes, None where NVML is absent)."""
        out = []
        for r in rows:
            if r.status != "running":
                out.append(r)
                continue
            if r.runtime == "docker" and self._docker is not None:
                try:
                    host, pids = self._docker.usage(r.name)
                except DockerError:
                    host, pids = None, frozenset()
                source = "container cgroup (docker stats)"
            else:
                host, pids = self.native.usage(r.name)
                source = "process tree RSS"
            out.append(replace(r, memory=measured_memory(source, host, pids, gpus)))
        return out

    def status(self, probe: bool = True) -> list[DeploymentStatus]:
        docker_states = {s.name: s for s in self._docker_states()}
        out: list[DeploymentStatus] = []
        now = _dt.datetime.now(_dt.timezone.utc)
        for name in sorted(set(self.store.names()) | set(docker_states)):
            rec = self.record(name)
            if isinstance(rec, BrokenDeployment):
                out.append(self._broken_row(name, docker_states.get(name), rec))
                continue
            dep = rec
            plan = dep.plan if dep else {}
            runtime = dep.runtime if dep else "docker"
            st = docker_states.get(name) if runtime == "docker" else self.native.state(name)
            if st is None:
                st = RuntimeState(name=name, exists=False, running=False, status="missing")
            if st.status == "broken":
                problem = self.native.record_problem(name) or "damaged pid record"
                out.append(
                    self._broken_row(
                        name,
                        None,
                        BrokenPidRecord(
                            f"deployment {name}: its pid record cannot be trusted ({problem})",
                            f"`llmops down {name} --force` removes the record",
                        ),
                        dep,
                    )
                )
                continue
            labels = dict(st.labels)
            port = (
                int(plan["ports"][0]["host_port"])
                if plan
                else (int(labels["llmops.port"]) if "llmops.port" in labels else None)
            )
            health = "down"
            if st.running and port is not None and probe:
                path = (plan.get("health") or {}).get("path", "/health")
                code = http_status(f"http://127.0.0.1:{port}{path}", timeout_s=1.0)
                health = "ready" if code == 200 else ("loading" if code else "starting")
            elif st.running:
                health = "unknown"
            started = _parse_time(st.started_at)
            uptime = int((now - started).total_seconds()) if started and st.running else None
            out.append(
                DeploymentStatus(
                    name=name,
                    engine=plan.get("engine") or labels.get("llmops.engine"),
                    model=plan.get("model") or labels.get("llmops.model"),
                    quant=plan.get("quant") or labels.get("llmops.quant"),
                    runtime=runtime,
                    port=port,
                    gpus=",".join(str(g) for g in plan.get("gpus", []))
                    if plan
                    else labels.get("llmops.gpus", ""),
                    status=st.status,
                    health=health,
                    uptime_s=uptime,
                    endpoint=f"http://127.0.0.1:{port}/v1" if port else None,
                    ident=st.ident,
                )
            )
        return out

    @staticmethod
    def _broken_row(
        name: str, st: RuntimeState | None, err: LlmopsError, dep: Deployment | None = None
    ) -> DeploymentStatus:
        labels = dict(st.labels) if st else {}
        plan = dep.plan if dep else {}
        port = dep.host_port if dep else None
        if port is None and labels.get("llmops.port", "").isdigit():
            port = int(labels["llmops.port"])
        return DeploymentStatus(
            name=name,
            engine=plan.get("engine") or labels.get("llmops.engine"),
            model=plan.get("model") or labels.get("llmops.model"),
            quant=plan.get("quant") or labels.get("llmops.quant"),
            runtime=dep.runtime if dep else ("docker" if st else "?"),
            port=port,
            gpus="",
            status="broken",
            health="unknown",
            uptime_s=None,
            endpoint=None,
            ident=st.ident if st else None,
            problem=f"{err.message}; fix: {err.hint}" if err.hint else err.message,
        )

    def logs(self, name: str, tail: int | None) -> str:
        rt = self.require(name)
        return self.docker().logs(name, tail) if rt == "docker" else self.native.logs(name, tail)

    def follow(self, name: str, tail: int | None) -> Iterator[str]:
        rt = self.require(name)
        if rt == "docker":
            yield from self.docker().follow(name, tail)
        else:
            yield from self.native.follow(name, tail)

    def stop(self, name: str, grace_s: int = 20, *, force: bool = False, lock: bool = True) -> bool:
        """Stop one deployment and forget it. True when something was stopped.

        Runs under the deployment's lock (``lock=False``: ``kill``, which must stop an `up`
        still in progress). A damaged record is refused unless ``force``; with ``force`` only
        what can still be identified (this install's container of that name; a process whose
        start time and command line match a good pid record) is stopped, then the record is
        removed.

        Raises:
            BrokenDeployment, BrokenPidRecord: the record is damaged and ``force`` is False.
            DeploymentBusy: an `up` or `down` of it is in progress.
        """
        held = self.store.lock(name, "down") if lock else contextlib.nullcontext()
        with held:
            rec = self.record(name)
            if isinstance(rec, BrokenDeployment):
                if not force:
                    raise rec
                stopped = self._stop_identifiable(name, grace_s)
                self.store.remove(name)
                return stopped
            rt = self.require(name)
            from llmops.run.tunnels import TunnelManager

            TunnelManager(self.store.home).stop_for_deployment(name)  # its tunnels go first
            try:
                stopped = (
                    self.docker().stop(name, grace_s)
                    if rt == "docker"
                    else self.native.stop(name, grace_s)
                )
            except BrokenPidRecord:
                if not force:
                    raise
                stopped = False
            self.store.remove(name)
            return stopped

    def _stop_identifiable(self, name: str, grace_s: int) -> bool:
        stopped = False
        if self._docker is not None:
            with contextlib.suppress(DockerError):
                stopped = self._docker.stop(name, grace_s)
        with contextlib.suppress(BrokenPidRecord):
            stopped = self.native.stop(name, grace_s) or stopped
        return stopped

    def check_name_free(self, name: str) -> None:
        st = self.state(name)
        if st.exists and st.running:
            raise UsageError(
                f"deployment {name} is already running",
                f"see it with `llmops ps`; stop it with `llmops down {name}`, or choose another `--name`",
            )
