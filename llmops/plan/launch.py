"""LaunchPlan: everything needed to start one engine, as pure data.

``plan_launch(artifact, options, facts)`` turns a resolved model artifact (which repo or GGUF
file, which quantization), the user's options and the host facts into a ``LaunchPlan``. Every
renderer (shell, native, json) and every runtime (Docker, native process) consumes that one
object, so ``render``, ``up --dry-run`` and a real ``up`` cannot disagree.

Engine facts (images, ports, flags, health) come from shared/reference/engines.md; the section
is cited where a choice is not obvious. This module is pure: no clock, environment, network or
disk beyond its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.engines import ENGINES, RECORDS
from llmops.plan.engines.base import (
    LABEL_PREFIX,
    EngineArgs,
    HealthProbe,
    LaunchOptions,
    LaunchPlan,
    ModelArtifact,
    Mount,
    Port,
    RopeScaling,
    SecretEnv,
)

RUNTIMES = ("docker", "native")
CONTAINER_PORT = {name: r.container_port for name, r in RECORDS.items()}
DEFAULT_HOST_PORT = {name: r.default_host_port for name, r in RECORDS.items()}


def default_name(model: str, engine: str) -> str:
    return f"{model}-{engine}".replace("/", "-").replace(".", "-").lower()


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", "choose one of: " + ", ".join(ENGINES))
    return engine


def plan_launch(
    artifact: ModelArtifact, options: LaunchOptions, facts: HostFacts | None
) -> LaunchPlan:
    """Build the LaunchPlan for one deployment.

    Args:
        artifact: the resolved model (repo/file and format for the chosen quant).
        options: engine, runtime, GPUs, context, port and the rest, already validated.
        facts: the host (or ``--hw``) facts: CUDA version picks image tags, compute capability
            gates quant kernels.

    Raises:
        UsageError: for a combination the engine cannot serve, with a hint.
    """
    engine = _check_options(options)
    e = RECORDS[engine].build(artifact, options, facts)
    name = options.name or default_name(artifact.model, engine)
    host_port = options.host_port or DEFAULT_HOST_PORT[engine]
    on = _on_runtime(e, engine, options, host_port)
    labels = (
        (LABEL_PREFIX + "deployment", name),
        (LABEL_PREFIX + "engine", engine),
        (LABEL_PREFIX + "model", artifact.model),
        (LABEL_PREFIX + "quant", artifact.quant),
        (LABEL_PREFIX + "port", str(host_port)),
        (LABEL_PREFIX + "runtime", options.runtime),
        (LABEL_PREFIX + "gpus", ",".join(str(g) for g in options.gpus)),
    )
    notes = list(e.notes)
    if options.rope is not None:
        notes.append(
            f"context {options.context} > trained {artifact.trained_context}: {options.rope.kind} "
            f"rope scaling x{options.rope.factor:g}; expect some quality loss on long inputs"
        )
    return LaunchPlan(
        name=name,
        engine=engine,
        runtime=options.runtime,
        model=artifact.model,
        repo=artifact.repo,
        quant=artifact.quant,
        served_model_name=artifact.model,
        context=options.context,
        image=on.image,
        entrypoint=on.entrypoint,
        argv=on.argv,
        env=tuple(sorted(on.env.items())),
        secret_env=tuple(e.secret_env),
        ports=on.ports,
        mounts=on.mounts,
        gpus=options.gpus,
        shm_size_mib=e.shm_size_mib if options.runtime == "docker" else None,
        ipc_host=e.ipc_host and options.runtime == "docker",
        health=e.health,
        labels=labels,
        notes=tuple(notes),
        file=artifact.file,
    )


def _check_options(options: LaunchOptions) -> str:
    """The engine, after refusing an unknown engine or runtime, a GPU engine without GPUs and
    a context that is not positive."""
    engine = check_engine(options.engine)
    if options.runtime not in RUNTIMES:
        raise UsageError(
            f"unknown runtime {options.runtime!r}", "choose one of: " + ", ".join(RUNTIMES)
        )
    if RECORDS[engine].needs_gpu and not options.gpus:
        raise LlmopsError(
            f"{engine} needs an NVIDIA GPU and none is selected on this host",
            "on a CPU-only host use `--engine llamacpp` (GGUF) or `--engine torch`; to plan for "
            "other hardware use `llmops render MODEL --hw 1x24GB`",
        )
    if options.context <= 0:
        raise UsageError(
            f"context must be positive, got {options.context}", "e.g. `--context 8192`"
        )
    return engine


@dataclass(frozen=True)
class _OnRuntime:
    """The parts of a plan that differ between a container and a native process."""

    argv: tuple[str, ...]
    image: str | None
    entrypoint: tuple[str, ...] | None
    ports: tuple[Port, ...]
    mounts: tuple[Mount, ...]
    env: dict[str, str]


def _on_runtime(e: EngineArgs, engine: str, options: LaunchOptions, host_port: int) -> _OnRuntime:
    """Docker: the engine's image, argv and mounts, the container port mapped to the host's.
    Native: its native argv on the host port, llmops' own caches, CUDA_VISIBLE_DEVICES."""
    extra = list(options.extra_args)
    if options.runtime == "docker":
        on = _OnRuntime(
            argv=(*e.argv, *extra),
            image=options.image or e.image,
            entrypoint=e.entrypoint,
            ports=(Port(host_port, CONTAINER_PORT[engine]),),
            mounts=tuple(e.mounts),
            env=dict(e.env),
        )
    else:
        env = {k: v for k, v in e.env.items() if k not in ("HF_HOME", "LLAMA_CACHE")}
        if engine == "llamacpp":
            env["LLAMA_CACHE"] = f"{options.data_dir}/models/llamacpp"
        if options.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in options.gpus)
        on = _OnRuntime(
            argv=tuple([a.replace("{port}", str(host_port)) for a in e.native_argv] + extra),
            image=None,
            entrypoint=None,
            ports=(Port(host_port, host_port),),
            mounts=(),
            env=env,
        )
    if "CUDA_VISIBLE_DEVICES" in on.env:
        # --gpus and the facts number GPUs as NVML does (PCI bus order); CUDA's default order
        # is fastest first, so without this CUDA_VISIBLE_DEVICES=1 can be another GPU.
        on.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return on


__all__ = [
    "CONTAINER_PORT",
    "DEFAULT_HOST_PORT",
    "ENGINES",
    "LABEL_PREFIX",
    "EngineArgs",
    "HealthProbe",
    "LaunchOptions",
    "LaunchPlan",
    "ModelArtifact",
    "Mount",
    "Port",
    "RopeScaling",
    "SecretEnv",
    "check_engine",
    "default_name",
    "plan_launch",
]
