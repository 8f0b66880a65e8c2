"""From `llmops up`/`render` requests to a checked LaunchPlan, and from there to a running engine.

``prepare`` gathers what the pure decision (``llmops.plan.deploy.decide``) needs from outside:
the resolved model, what this host can run, the ports and names in use, the HF token; then it
runs preflight. ``start`` records the deployment and hands the plan to the runtime it is given.
``render``, ``up --dry-run`` and ``up`` all go through ``prepare`` and differ only in ``stage``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.net import port_free
from llmops.paths import llmops_home
from llmops.plan.deploy import Decision, HostCaps, Request, decide, require_fit
from llmops.plan.launch import ENGINES, LaunchPlan, ModelArtifact
from llmops.run.state import DeploymentStore, new_api_key

STAGES = ("render", "up")


@dataclass(frozen=True)
class Prepared:
    decision: Decision
    plan: LaunchPlan
    facts: HostFacts
    data_dir: Path
    secrets_file: Path
    api_key: str | None
    secret_values: dict[str, str]
    warnings: tuple[str, ...]
    already_running: bool = False

    @property
    def artifact(self) -> ModelArtifact:
        return self.decision.artifact

    @property
    def fit_line(self) -> str:
        return self.decision.line

    @property
    def fit_summary(self) -> dict[str, Any]:
        return self.decision.summary()


# -------------------------------------------------------------------------------- helpers


def backend_installed() -> bool:
    """Whether the bundled torch backend can run here natively (llmops[backend] installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def host_caps(
    stage: str, store: DeploymentStore, env: Mapping[str, str], name: str | None
) -> HostCaps:
    """What can run here (for `up`), or a described host (for `render`)."""
    import importlib.util

    from llmops.hw.engines import find_program

    token = hf_token(env)
    taken = frozenset(d.host_port for d in store.all() if d.name != name)
    return HostCaps(
        planning=stage == "render",
        llama_server=find_program("llama-server", env) is not None,
        backend=backend_installed(),
        bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
        hf_token=token is not None,
        hf_cache_dir=_hf_home(env),
        data_dir=str(store.home),
        python=_python(),
        taken_ports=taken if stage == "up" else frozenset(),
    )


def hf_token(env: Mapping[str, str] | None = None) -> str | None:
    from llmops.hw.hf import find_token

    token, _ = find_token(os.environ if env is None else env)
    return token


# -------------------------------------------------------------------------------- prepare


def prepare(
    req: Request,
    facts: HostFacts,
    *,
    stage: str,
    store: DeploymentStore | None = None,
    env: Mapping[str, str] | None = None,
    docker: Callable[[], Any] | None = None,
    offline: bool = False,
) -> Prepared:
    """Resolve the model, decide, and (for `up`) run preflight.

    Raises:
        UsageError: bad options (exit 2). DoesNotFitError: the fit says no (exit 3) unless
        ``force``. LlmopsError: preflight refusals (exit 1).
    """
    from llmops.catalog.resolve import resolve
    from llmops.run.up import pick_port

    if stage not in STAGES:
        raise ValueError(stage)
    env = os.environ if env is None else env
    store = store or DeploymentStore(llmops_home(env))
    caps = host_caps(stage, store, env, req.name)
    model = resolve(req.model, offline=offline)
    decision = decide(req, model, facts, caps)
    plan = require_fit(decision)
    if stage == "up" and req.port is None and not port_free(plan.host_port):
        port = pick_port(plan.host_port, set(caps.taken_ports))
        decision = decide(replace(req, port=port), model, facts, caps)
        plan = require_fit(decision)
    warnings = list(decision.warnings)
    if req.repo:
        warnings.append(f"serving {req.repo} with {model.spec.name}'s architecture for the fit")
    if (
        stage == "up"
        and req.runtime is None
        and plan.runtime == "native"
        and plan.engine != "torch"
    ):
        p = facts.platform.kind if facts.platform else "this host"
        warnings.append(f"no Docker engine on {p}: using the native runtime")
    started = _Started(False, None, {})
    if stage == "up":
        started = _check_up(req, decision, plan, facts, store, env, docker)
    return Prepared(
        decision=decision,
        plan=plan,
        facts=facts,
        data_dir=store.home,
        secrets_file=store.secrets_path(plan.name),
        api_key=started.api_key,
        secret_values=started.secret_values,
        warnings=tuple(warnings),
        already_running=started.already_running,
    )


@dataclass(frozen=True)
class _Started:
    """What `up` learns before starting: the same deployment is running already, or the key
    and secrets to start it with."""

    already_running: bool
    api_key: str | None
    secret_values: dict[str, str]


def _already_running(
    plan: LaunchPlan, store: DeploymentStore, docker: Callable[[], Any] | None
) -> bool:
    """Whether deployment ``plan.name`` runs this model, engine and quant already.

    Raises:
        UsageError: the name is taken by a running deployment of something else.
    """
    from llmops.run.deployments import Deployments
    from llmops.run.native import NativeRuntime

    name = plan.name
    existing = store.load(name)
    if existing is None:
        return False
    dock = docker() if (docker is not None and existing.runtime == "docker") else None
    st = Deployments(store, dock, NativeRuntime(store)).state(name)
    same = (
        existing.plan.get("model") == plan.model
        and existing.plan.get("engine") == plan.engine
        and existing.plan.get("quant") == plan.quant
    )
    if st.running and not same:
        raise UsageError(
            f"deployment name {name} is taken by {existing.plan.get('model')} on "
            f"{existing.plan.get('engine')}",
            f"choose another `--name`, or `llmops down {name}` first",
        )
    return bool(st.running)


def _check_up(
    req: Request,
    decision: Decision,
    plan: LaunchPlan,
    facts: HostFacts,
    store: DeploymentStore,
    env: Mapping[str, str],
    docker: Callable[[], Any] | None,
) -> _Started:
    """`up` only: the name, preflight, the port, then a new API key and the secrets' values."""
    from llmops.run.up import preflight

    if _already_running(plan, store, docker):
        return _Started(True, None, {})
    token = hf_token(env)
    preflight(
        plan,
        facts,
        weights_bytes=decision.weights_bytes,
        hf_cache_dir=_hf_home(env),
        gated=decision.artifact.gated,
        has_token=token is not None,
        explicit_port=req.port is not None,
    )
    if req.port is not None and not port_free(req.port):
        raise UsageError(f"port {req.port} is already in use", "choose another `--port`")
    api_key = new_api_key() if req.api_key else None
    secret_values: dict[str, str] = {}
    for s in plan.secret_env:
        if s.secret == "api_key" and api_key:
            secret_values[s.env] = api_key
        elif s.secret == "hf_token" and token:
            secret_values[s.env] = token
    return _Started(False, api_key, secret_values)


def _hf_home(env: Mapping[str, str]) -> str:
    from llmops.hw.hf import hf_home

    return hf_home(env)


def _python() -> str:
    import sys

    return sys.executable


# ---------------------------------------------------------------------------------- start


def start(
    prep: Prepared,
    *,
    timeout_s: float,
    wait: bool = True,
    on_phase: Callable[[str], None] = lambda _p: None,
    store: DeploymentStore | None = None,
    docker: Callable[[], Any] | None = None,
) -> Any:
    """Start the prepared plan on its runtime and wait until it serves (see run.up.up)."""
    from llmops.run.native import NativeRuntime
    from llmops.run.up import up

    store = store or DeploymentStore(prep.data_dir)
    if prep.plan.runtime == "docker":
        if docker is None:
            raise LlmopsError("no Docker runtime was given to start on", "this is a bug in llmops")
        runtime: Any = docker()
    else:
        runtime = NativeRuntime(store)
    return up(
        prep.plan,
        runtime,
        store,
        prep.secret_values,
        api_key=prep.api_key,
        timeout_s=timeout_s,
        wait=wait,
        on_phase=on_phase,
    )


__all__ = ["ENGINES", "STAGES", "Prepared", "Request", "host_caps", "prepare", "start"]
