"""Carry out a LaunchPlan: preflight, record, start, wait until it serves, or clean up.

Nothing is left half-started: when the engine cannot start, dies while loading, or never
becomes ready, its container or process is stopped and its state removed, and the error says
why (with the log tail and a diagnosis from the known-failure table).
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.net import port_free
from llmops.plan.diagnose import Diagnosis, diagnose
from llmops.plan.launch import LaunchPlan
from llmops.plan.render import plan_json
from llmops.run.docker import RuntimeState
from llmops.run.ready import ReadyResult, wait_ready
from llmops.run.state import DeploymentStore, check_secret


class Runtime(Protocol):
    name: str

    def start(
        self,
        plan: LaunchPlan,
        secret_values: Mapping[str, str],
        on_progress: Callable[[str], None] | None = None,
    ) -> RuntimeState: ...
    def state(self, name: str) -> RuntimeState: ...
    def logs(self, name: str, tail: int | None = 200) -> str: ...
    def stop(self, name: str, grace_s: int = 20) -> bool: ...


@dataclass(frozen=True)
class UpResult:
    plan: LaunchPlan
    ready: bool
    elapsed_s: float
    state: RuntimeState | None


class StartupFailed(LlmopsError):
    """The engine died or never became ready; carries the log tail and the diagnosis."""

    def __init__(
        self, message: str, hint: str | None, log_tail: str, diagnosis: Diagnosis | None
    ) -> None:
        super().__init__(message, hint)
        self.log_tail = log_tail
        self.diagnosis = diagnosis


def pick_port(preferred: int, taken: set[int], *, limit: int = 200) -> int:
    """The first port from ``preferred`` up that no deployment uses and nothing listens on."""
    for p in range(preferred, preferred + limit):
        if p not in taken and port_free(p):
            return p
    raise LlmopsError(
        f"no free port in {preferred}-{preferred + limit - 1}", "pass one with `--port`"
    )


def preflight(
    plan: LaunchPlan,
    facts: HostFacts,
    *,
    weights_bytes: int | None,
    hf_cache_dir: str,
    gated: bool,
    has_token: bool,
    explicit_port: bool,
) -> list[str]:
    """Refuse what cannot work before anything starts; return warnings for the rest."""
    warnings: list[str] = []
    if explicit_port and not port_free(plan.host_port):
        raise UsageError(
            f"port {plan.host_port} is already in use on this host",
            "choose another with `--port`, or omit it and llmops picks a free one",
        )
    if plan.runtime == "docker":
        d = facts.docker
        if d is None or not d.reachable:
            raise LlmopsError(
                f"Docker is not reachable ({d.error if d else 'not probed'})",
                "start Docker, or use `--runtime native` (llmops picks it on vast.ai/RunPod)",
            )
        if plan.gpus and not (d.nvidia_runtime or d.cdi_gpus):
            raise LlmopsError(
                f"Docker on this host cannot give containers GPUs (no NVIDIA runtime or CDI "
                f"spec), and {plan.name} asks for GPU(s) {','.join(map(str, plan.gpus))}",
                "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure "
                "--runtime=docker && sudo systemctl restart docker`; or `--runtime native`",
            )
    if gated and not has_token:
        raise LlmopsError(
            f"{plan.model} ({plan.repo}) is gated on the Hugging Face Hub and no token is set",
            "accept its licence on the Hub, then `export HF_TOKEN=hf_...` (or `hf auth login`)",
        )
    if weights_bytes:
        free = _free_bytes(hf_cache_dir)
        if free is not None and free < weights_bytes * 1.1:
            raise LlmopsError(
                f"not enough disk for {plan.model} ({plan.quant}): needs "
                f"{weights_bytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free at {hf_cache_dir}",
                "free space, or point HF_HOME at a bigger disk",
            )
    return warnings


def _free_bytes(path: str) -> int | None:
    p = Path(path).expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def up(
    plan: LaunchPlan,
    runtime: Runtime,
    store: DeploymentStore,
    secret_values: Mapping[str, str],
    *,
    api_key: str | None,
    timeout_s: float,
    wait: bool = True,
    on_phase: Callable[[str], None] = lambda _p: None,
    poll_s: float = 0.2,
) -> UpResult:
    """Record, start and (unless ``wait`` is False) wait for readiness, all under the
    deployment's lock (see ``DeploymentStore.lock``): of two `up` of one name at once, the
    second fails before it records or starts anything, and never cleans up the first's.

    Raises:
        UsageError: a secret value cannot be stored (nothing is written).
        DeploymentBusy: another `up` or `down` of this name is in progress (nothing is done).
        LlmopsError: a deployment of this name already runs (nothing is done).
        LaunchError: the runtime refused to start it (nothing is left behind).
        StartupFailed: it died while starting or never became ready (stopped and removed).
    """
    for key, value in secret_values.items():
        check_secret(key, value)
    with store.lock(plan.name, "up"):
        existing = store.load(plan.name)  # a damaged record raises (hint: down --force)
        if existing is not None and runtime.state(plan.name).running:
            raise LlmopsError(
                f"deployment {plan.name} is already running (started by another llmops "
                "command); this `up` did nothing",
                f"see it with `llmops ps`; stop it with `llmops down {plan.name}`",
            )
        return _up_locked(
            plan, runtime, store, secret_values, api_key, timeout_s, wait, on_phase, poll_s
        )


def _up_locked(
    plan: LaunchPlan,
    runtime: Runtime,
    store: DeploymentStore,
    secret_values: Mapping[str, str],
    api_key: str | None,
    timeout_s: float,
    wait: bool,
    on_phase: Callable[[str], None],
    poll_s: float,
) -> UpResult:
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    store.save(plan.name, plan_json(plan), created, secret_values)
    try:
        state = runtime.start(plan, secret_values, on_phase)
    except BaseException:
        store.remove(plan.name)
        raise
    if not wait:
        return UpResult(plan, False, 0.0, state)
    try:
        res: ReadyResult = wait_ready(
            f"http://127.0.0.1:{plan.host_port}",
            plan.health,
            api_key=api_key,
            state=lambda: runtime.state(plan.name),
            logs=lambda: runtime.logs(plan.name, 30),
            timeout_s=timeout_s,
            on_phase=on_phase,
            poll_s=poll_s,
        )
    except BaseException:  # Ctrl-C while waiting: do not leave it half-started
        _cleanup(runtime, store, plan.name)
        raise
    if res.ready:
        return UpResult(plan, True, res.elapsed_s, res.status)
    tail = runtime.logs(plan.name, 60)
    diag = diagnose(tail)
    _cleanup(runtime, store, plan.name)
    st = res.status
    if res.reason == "died":
        what = f"exited with code {st.exit_code}" if st and st.exit_code is not None else "died"
        if st and st.restarts:
            what = f"crashed and was restarted {st.restarts} time(s)"
        msg = f"deployment {plan.name} ({plan.engine}) {what} while starting"
    else:
        msg = (
            f"deployment {plan.name} ({plan.engine}) was not ready after {timeout_s:.0f} s "
            f"(last phase: {res.phase})"
        )
    if diag is not None:
        msg += f": {diag.title}"
        hint = diag.fix
    elif res.reason == "timeout":
        hint = "large models take long to download and load: retry with a larger `--timeout`"
    else:
        hint = "read the log tail above; `llmops doctor` checks the host"
    raise StartupFailed(msg, hint, tail, diag)


def _cleanup(runtime: Runtime, store: DeploymentStore, name: str) -> None:
    try:
        runtime.stop(name, 5)
    finally:
        store.remove(name)


def describe_failure(err: Any) -> str:
    """The log tail block printed before a StartupFailed error line."""
    tail = getattr(err, "log_tail", "") or ""
    lines = tail.rstrip().splitlines()[-25:]
    return "\n".join(["--- engine log (last lines) ---", *lines, "---"]) if lines else ""
