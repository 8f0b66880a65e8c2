"""From `llmops up`/`render` options to a checked LaunchPlan, and from there to a running engine.

``prepare`` reads what a plan depends on outside the pure planner (the catalog, the fit, the
state dir for ports and names in use, the HF token) and runs preflight; ``start`` records the
deployment and hands the plan to the runtime. ``render``, ``up --dry-run`` and ``up`` all go
through ``prepare``, so they show and start exactly the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import DoesNotFitError, LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.launch import (
    DEFAULT_HOST_PORT,
    ENGINES,
    LaunchOptions,
    LaunchPlan,
    ModelArtifact,
    RopeScaling,
    check_engine,
    default_name,
    plan_launch,
)
from llmops.run.state import DeploymentStore, llmops_home, new_api_key


@dataclass(frozen=True)
class FitInfo:
    """What `up` needs from the fit: the verdict, sizes and the chosen context."""

    fits: bool
    context: int
    max_context: int | None
    gpus_needed: int
    weights_bytes: int | None
    rope: RopeScaling | None
    line: str  # one-line summary for humans
    breakdown: str  # the per-GPU breakdown (printed when it does not fit)
    summary: dict[str, Any] = field(default_factory=dict)  # JSON form


@dataclass(frozen=True)
class Prepared:
    plan: LaunchPlan
    artifact: ModelArtifact
    fit: FitInfo
    facts: HostFacts
    data_dir: Path
    secrets_file: Path
    api_key: str | None
    secret_values: dict[str, str]
    warnings: tuple[str, ...]
    already_running: bool = False

    @property
    def fit_line(self) -> str:
        return self.fit.line

    @property
    def fit_summary(self) -> dict[str, Any]:
        return self.fit.summary


# -------------------------------------------------------------------------------- helpers


def parse_gpus(text: str | None, facts: HostFacts) -> tuple[int, ...] | None:
    """``--gpus 0,1`` → (0, 1), checked against the GPUs the host has. None when not given."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return ()
    try:
        wanted = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise UsageError(
            f"--gpus takes GPU indices like 0,1, not {text!r}", "e.g. `--gpus 0,1`"
        ) from e
    if len(set(wanted)) != len(wanted):
        raise UsageError(f"--gpus lists a GPU twice: {text}", "e.g. `--gpus 0,1`")
    have = {g.index: g for g in (facts.nvidia.gpus if facts.nvidia else ())}
    for i in wanted:
        if i not in have:
            present = ", ".join(str(k) for k in sorted(have)) or "none"
            raise UsageError(
                f"GPU {i} does not exist on this host (GPUs present: {present})",
                "`llmops doctor --check gpu` lists them",
            )
        if not have[i].ok:
            raise UsageError(
                f"GPU {i} is not usable: {have[i].error}", "choose other GPUs with `--gpus`"
            )
    return wanted


def pick_gpus(facts: HostFacts, count: int) -> tuple[int, ...]:
    """The ``count`` healthy GPUs with the most free memory (ties: lower index)."""
    if count <= 0 or facts.nvidia is None:
        return ()
    healthy = sorted(facts.nvidia.healthy_gpus, key=lambda g: (-(g.memory_free_mib or 0), g.index))
    if len(healthy) < count:
        raise DoesNotFitError(
            f"the fit needs {count} GPU(s); this host has {len(healthy)} usable",
            "use a smaller quant (`--quant 4bit`) or context, or `llmops fit MODEL` to compare",
        )
    return tuple(sorted(g.index for g in healthy[:count]))


def default_runtime(facts: HostFacts) -> str:
    d = facts.docker
    return "docker" if d is not None and d.reachable else "native"


def default_engine(
    artifact_formats: set[str],
    facts: HostFacts,
    quant: str | None,
    *,
    runtime: str,
    bundled: bool,
    for_render: bool = False,
) -> str:
    """vLLM on GPUs; on a CPU host llama.cpp for GGUF models where it can run (its image under
    Docker, ``llama-server`` on PATH natively), else the bundled torch backend."""
    import shutil

    has_gpu = bool(facts.nvidia and facts.nvidia.healthy_gpus)
    if quant and quant.lower().startswith(("q4_", "q5_", "q8_", "q6_")):
        return "llamacpp"
    if has_gpu:
        return "vllm"
    if bundled or "gguf" not in artifact_formats:
        return "torch"
    if runtime == "docker" or for_render or shutil.which("llama-server"):
        return "llamacpp"
    return "torch"


def backend_installed() -> bool:
    """Whether the bundled torch backend can run here natively (llmops[backend] installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def hf_token(env: Mapping[str, str] | None = None) -> str | None:
    from llmops.hw.hf import find_token

    token, _ = find_token(os.environ if env is None else env)
    return token


def facts_for_hw(hw: str) -> HostFacts:
    """HostFacts for hardware described by ``--hw`` (no probing): GPUs only, Docker assumed."""
    from llmops.catalog.adapter import parse_hw_facts

    return parse_hw_facts(hw)


# -------------------------------------------------------------------------------- prepare


def prepare(
    options: Mapping[str, Any],
    facts: HostFacts,
    *,
    for_render: bool,
    store: DeploymentStore | None = None,
    env: Mapping[str, str] | None = None,
) -> Prepared:
    """Resolve the model, fit it, plan the launch and (for `up`) run preflight.

    Raises:
        UsageError: bad options (exit 2). DoesNotFitError: the fit says no (exit 3) unless
        ``force``. LlmopsError: preflight refusals (exit 1).
    """
    from llmops.catalog import adapter
    from llmops.run.up import pick_port, port_free, preflight

    env = os.environ if env is None else env
    store = store or DeploymentStore(llmops_home(env))
    data_dir = store.home
    warnings: list[str] = []

    engine = options.get("engine")
    if engine is not None:
        check_engine(engine)
    asked_runtime = options.get("runtime")
    if asked_runtime is not None and asked_runtime not in ("docker", "native"):
        raise UsageError(f"unknown runtime {asked_runtime!r}", "choose docker or native")
    context = options.get("context")
    if context is not None and context <= 0:
        raise UsageError(f"--context must be positive, got {context}", "e.g. `--context 8192`")

    recipe = adapter.resolve(options["model"])
    quant = options.get("quant")
    runtime = asked_runtime or default_runtime(facts)
    engine = engine or default_engine(
        adapter.formats(recipe),
        facts,
        quant,
        runtime=runtime,
        bundled=adapter.is_bundled(recipe),
        for_render=for_render,
    )
    if asked_runtime is None:
        if engine == "torch" and backend_installed():
            runtime = "native"  # the backend is right here; no image to build
        elif runtime == "native" and not for_render:
            p = facts.platform.kind if facts.platform else "this host"
            warnings.append(f"no Docker engine on {p}: using the native runtime")
    quant = quant or adapter.default_quant(recipe, engine, facts)
    artifact = adapter.artifact(recipe, quant, engine)
    if options.get("repo"):
        from dataclasses import replace

        artifact = replace(artifact, repo=str(options["repo"]))
        warnings.append(f"serving {artifact.repo} with {recipe.name}'s architecture for the fit")

    gpus = parse_gpus(options.get("gpus"), facts)
    if engine in ("tgi", "vllm") and not (facts.nvidia and facts.nvidia.healthy_gpus):
        where = "the hardware given" if options.get("hw") else "this host"
        raise LlmopsError(
            f"{engine} needs an NVIDIA GPU and {where} has none",
            "use `--engine llamacpp` (GGUF) or `--engine torch` here; to plan for a GPU host: "
            f"`llmops render {recipe.name} --engine {engine} --hw 1x24GB`",
        )
    fit = adapter.fit(
        recipe,
        artifact,
        engine,
        facts,
        context=context,
        gpus=gpus,
        concurrency=int(options.get("concurrency") or 1),
    )
    fit = _rope_override(fit, options, artifact)
    if not fit.fits and not options.get("force"):
        raise DoesNotFitError(
            f"{artifact.model} at {quant} on {engine} does not fit this hardware: {fit.line}\n"
            f"{fit.breakdown}".rstrip(),
            f"try `llmops fit {artifact.model}` for what fits, a smaller `--quant`/`--context`, "
            "or `--force`",
        )
    if not fit.fits:
        warnings.append(f"--force: starting although the fit says no ({fit.line})")
    if gpus is None:
        gpus = pick_gpus(facts, fit.gpus_needed) if engine != "torch" or fit.gpus_needed else ()
    if engine in ("tgi", "vllm") and not gpus:
        raise UsageError(f"{engine} needs at least one GPU", "pass `--gpus 0` (or more)")

    name = options.get("name") or default_name(artifact.model, engine)
    token = hf_token(env)
    deployments = store.all()
    taken = {d.host_port for d in deployments if d.name != name}
    port = options.get("port")
    explicit_port = port is not None
    if port is None:
        base = DEFAULT_HOST_PORT[engine]
        port = base if for_render else pick_port(base, taken)
    elif not for_render and port in taken:
        raise UsageError(
            f"port {port} is used by another llmops deployment",
            "`llmops ps` shows the ports in use; omit `--port` to pick a free one",
        )

    lo = LaunchOptions(
        engine=engine,
        runtime=runtime,
        name=name,
        context=fit.context,
        gpus=gpus,
        host_port=port,
        api_key=bool(options.get("api_key", True)),
        hf_token=token is not None or artifact.gated,
        concurrency=int(options.get("concurrency") or 1),
        extra_args=tuple(options.get("extra_args") or ()),
        rope=fit.rope,
        hf_cache_dir=_hf_home(env),
        data_dir=str(data_dir),
        image=options.get("image"),
        python=_python(),
    )
    plan = plan_launch(artifact, lo, facts)
    warnings.extend(plan.notes)

    already = False
    api_key: str | None = None
    secret_values: dict[str, str] = {}
    if not for_render:
        existing = store.load(name)
        from llmops.run.deployments import Deployments
        from llmops.run.native import NativeRuntime

        if existing is not None:
            st = Deployments(store, _docker_or_none(existing.runtime), NativeRuntime(store)).state(
                name
            )
            same = (
                existing.plan.get("model") == plan.model
                and existing.plan.get("engine") == plan.engine
                and existing.plan.get("quant") == plan.quant
            )
            if st.running and same:
                already = True
            elif st.running:
                raise UsageError(
                    f"deployment name {name} is taken by {existing.plan.get('model')} on "
                    f"{existing.plan.get('engine')}",
                    f"choose another `--name`, or `llmops down {name}` first",
                )
        if not already:
            preflight(
                plan,
                facts,
                weights_bytes=artifact.size_bytes,
                hf_cache_dir=_hf_home(env),
                gated=artifact.gated,
                has_token=token is not None,
                explicit_port=explicit_port,
            )
            if explicit_port and not port_free(port):
                raise UsageError(f"port {port} is already in use", "choose another `--port`")
            if lo.api_key:
                api_key = new_api_key()
            for s in plan.secret_env:
                if s.secret == "api_key" and api_key:
                    secret_values[s.env] = api_key
                elif s.secret == "hf_token" and token:
                    secret_values[s.env] = token
    return Prepared(
        plan=plan,
        artifact=artifact,
        fit=fit,
        facts=facts,
        data_dir=data_dir,
        secrets_file=store.secrets_path(name),
        api_key=api_key,
        secret_values=secret_values,
        warnings=tuple(warnings),
        already_running=already,
    )


def _rope_override(fit: FitInfo, options: Mapping[str, Any], artifact: ModelArtifact) -> FitInfo:
    """``--rope-factor``/``--rope-scaling`` replace what fit computed (seed 001 uses 2.6)."""
    from dataclasses import replace

    factor = options.get("rope_factor")
    kind = options.get("rope_kind")
    if factor is None and kind is None:
        return fit
    if kind is not None and kind not in ("linear", "dynamic", "yarn"):
        raise UsageError(f"unknown rope scaling {kind!r}", "choose linear, dynamic or yarn")
    if factor is None:
        if fit.rope is None:
            raise UsageError(
                f"--rope-scaling needs a context beyond {artifact.trained_context} or a --rope-factor",
                "e.g. `--rope-scaling dynamic --rope-factor 2`",
            )
        factor = fit.rope.factor
    if factor <= 1.0 or factor > 16:
        raise UsageError(
            f"--rope-factor must be in (1, 16], got {factor:g}", "e.g. `--rope-factor 2`"
        )
    rope = RopeScaling(
        kind=kind or "dynamic", factor=float(factor), original_context=artifact.trained_context
    )
    return replace(fit, rope=rope)


def _docker_or_none(runtime: str) -> Any:
    if runtime != "docker":
        return None
    from llmops.cli import deps

    return deps.docker_runtime()


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
) -> Any:
    """Start the prepared plan on its runtime and wait until it serves (see run.up.up)."""
    from llmops.run.native import NativeRuntime
    from llmops.run.up import up

    store = store or DeploymentStore(prep.data_dir)
    if prep.plan.runtime == "docker":
        from llmops.cli import deps

        runtime: Any = deps.docker_runtime(required=True)
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


__all__ = ["ENGINES", "FitInfo", "Prepared", "facts_for_hw", "prepare", "start"]
