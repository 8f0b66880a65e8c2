"""Doctor checks: pure functions from HostFacts to PASS / WARN / FAIL with a one-line fix hint.

Every check declares the fact sections it reads, so ``llmops doctor --check docker`` probes only
what it needs. Nothing here touches the host: the same checks run on local facts, on facts from
a remote host, and on a saved ``doctor --json`` file.

This module is the registry (``CHECKS``, ``select``, ``run_checks``, ``exit_code``) and the one
import for callers; the checks live in ``checks_gpu`` and ``checks_host``, the Check row,
thresholds and hints in ``checks_base``.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.checks_base import (
    DISK_FAIL_GIB,
    DISK_WARN_GIB,
    FAIL,
    FOREIGN_GPU_MEMORY_WARN_PCT,
    GIB,
    GPU_ERROR_HINTS,
    MIN_CUDA_OK,
    PASS,
    RAM_WARN_GIB,
    SHM_WARN_GIB,
    TEMPERATURE_WARN_C,
    WARN,
    Check,
    CheckFn,
    CheckSpec,
)
from llmops.plan.checks_gpu import (
    check_gpu_cuda,
    check_gpu_driver,
    check_gpu_ecc,
    check_gpu_health,
    check_gpu_memory,
    check_gpu_mig,
    check_gpu_pcie,
    check_gpu_thermal,
    check_gpu_topology,
)
from llmops.plan.checks_host import (
    check_docker_engine,
    check_docker_gpu_smoke,
    check_docker_nvidia,
    check_docker_storage,
    check_hf_cache,
    check_hf_token,
    check_platform,
    check_system_disk,
    check_system_ram,
    check_system_shm,
    check_tools,
)

__all__ = [
    "CHECKS",
    "DISK_FAIL_GIB",
    "DISK_WARN_GIB",
    "FAIL",
    "FOREIGN_GPU_MEMORY_WARN_PCT",
    "GIB",
    "GPU_ERROR_HINTS",
    "MIN_CUDA_OK",
    "PASS",
    "RAM_WARN_GIB",
    "SHM_WARN_GIB",
    "TEMPERATURE_WARN_C",
    "WARN",
    "Check",
    "CheckFn",
    "CheckSpec",
    "check_docker_engine",
    "check_docker_gpu_smoke",
    "check_docker_nvidia",
    "check_docker_storage",
    "check_gpu_cuda",
    "check_gpu_driver",
    "check_gpu_ecc",
    "check_gpu_health",
    "check_gpu_memory",
    "check_gpu_mig",
    "check_gpu_pcie",
    "check_gpu_thermal",
    "check_gpu_topology",
    "check_hf_cache",
    "check_hf_token",
    "check_names",
    "check_platform",
    "check_system_disk",
    "check_system_ram",
    "check_system_shm",
    "check_tools",
    "exit_code",
    "run_checks",
    "sections_for",
    "select",
]


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("gpu.driver", ("nvidia",), check_gpu_driver, "NVIDIA driver and NVML"),
    CheckSpec("gpu.health", ("nvidia",), check_gpu_health, "every GPU answers (none lost)"),
    CheckSpec("gpu.cuda", ("nvidia",), check_gpu_cuda, "driver CUDA version vs engine images"),
    CheckSpec("gpu.memory", ("nvidia",), check_gpu_memory, "GPU memory held by other processes"),
    CheckSpec("gpu.mig", ("nvidia",), check_gpu_mig, "MIG mode"),
    CheckSpec("gpu.ecc", ("nvidia",), check_gpu_ecc, "pending ECC changes"),
    CheckSpec("gpu.pcie", ("nvidia",), check_gpu_pcie, "PCIe link width"),
    CheckSpec("gpu.thermal", ("nvidia",), check_gpu_thermal, "GPU temperature"),
    CheckSpec("gpu.topology", ("nvidia",), check_gpu_topology, "NVLink / P2P between GPUs"),
    CheckSpec("system.ram", ("system",), check_system_ram, "available RAM"),
    CheckSpec("system.shm", ("system",), check_system_shm, "/dev/shm size"),
    CheckSpec("system.disk", ("system",), check_system_disk, "free disk for weights and images"),
    CheckSpec("platform", ("platform", "docker"), check_platform, "vast.ai / RunPod / container"),
    CheckSpec(
        "docker.engine", ("docker", "platform"), check_docker_engine, "Docker engine reachable"
    ),
    CheckSpec("docker.storage", ("docker",), check_docker_storage, "Docker storage driver"),
    CheckSpec(
        "docker.nvidia",
        ("docker", "nvidia"),
        check_docker_nvidia,
        "NVIDIA runtime or CDI spec for GPU containers",
    ),
    CheckSpec(
        "docker.gpu-smoke-test",
        ("docker",),
        check_docker_gpu_smoke,
        "a container that requests GPUs (--gpu-smoke-test)",
    ),
    CheckSpec("hf.token", ("hf",), check_hf_token, "Hugging Face token present and valid"),
    CheckSpec("hf.cache", ("hf",), check_hf_cache, "Hugging Face cache size"),
    CheckSpec("tools", ("tools", "nvidia"), check_tools, "nvidia-smi, cloudflared, ngrok"),
)


def check_names() -> list[str]:
    """Every check name and group prefix ``--check`` accepts."""
    names = {spec.name for spec in CHECKS}
    names |= {spec.name.split(".")[0] for spec in CHECKS}
    return sorted(names)


def select(names: Iterable[str] | None) -> tuple[CheckSpec, ...]:
    """The checks ``--check`` asks for: exact names or group prefixes (``docker`` = docker.*).

    Raises:
        UsageError: for a name that matches no check.
    """
    wanted = [n.strip() for n in (names or ()) if n.strip()]
    if not wanted:
        return CHECKS
    chosen: list[CheckSpec] = []
    for n in wanted:
        matched = [s for s in CHECKS if s.name == n or s.name.startswith(n + ".")]
        if not matched:
            raise UsageError(
                f"unknown check {n!r}",
                "choose from: " + ", ".join(check_names()),
            )
        chosen.extend(m for m in matched if m not in chosen)
    return tuple(chosen)


def sections_for(specs: Iterable[CheckSpec]) -> set[str]:
    """The fact sections the given checks read."""
    return {s for spec in specs for s in spec.sections}


def run_checks(facts: HostFacts, specs: Iterable[CheckSpec] | None = None) -> list[Check]:
    """Evaluate checks on facts; a check whose sections were not probed yields nothing."""
    out: list[Check] = []
    for spec in CHECKS if specs is None else specs:
        out.extend(spec.fn(facts))
    return out


def exit_code(checks: Iterable[Check]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(c.status == FAIL for c in checks) else 0
