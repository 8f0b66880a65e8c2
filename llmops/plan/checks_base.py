"""Doctor checks' shared parts: the Check row, the registry's spec, thresholds, hints, helpers.

The checks themselves live in ``checks_gpu`` (NVIDIA driver and GPUs) and ``checks_host``
(system, platform, Docker, Hugging Face, tools); ``checks`` holds the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmops.hw.facts import GpuInfo, HostFacts

PASS, WARN, FAIL = "pass", "warn", "fail"
GIB = 1024  # MiB per GiB

# Thresholds, in one place so the README can quote them.
DISK_WARN_GIB = 50
DISK_FAIL_GIB = 10
SHM_WARN_GIB = 1
RAM_WARN_GIB = 8
FOREIGN_GPU_MEMORY_WARN_PCT = 10
TEMPERATURE_WARN_C = 85
MIN_CUDA_OK = (12, 1)  # TGI and vLLM images need a CUDA 12.x driver


# What to do about each diagnosis of a failed GPU container (see hw/docker.diagnose_gpu_error).
GPU_ERROR_HINTS: dict[str, str] = {
    "no_runtime": "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure "
    "--runtime=docker && sudo systemctl restart docker`",
    "cdi_no_vendor": "install nvidia-container-toolkit and generate the CDI spec: "
    "`sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`",
    "cdi_unresolvable": "regenerate the CDI spec: `sudo nvidia-ctk cdi generate "
    "--output=/etc/cdi/nvidia.yaml` (or restart the nvidia-cdi-refresh service)",
    "nvml_permission": "the engine's NVIDIA hook cannot reach the driver; run dockerd on the "
    "host, not inside an unprivileged container",
    "no_image": "pass a local image with --smoke-image IMAGE (any image works: the NVIDIA hook "
    "mounts nvidia-smi into it)",
    "other": "read the error above; `docker run --rm --gpus all IMAGE nvidia-smi -L` reproduces it",
}


@dataclass(frozen=True)
class Check:
    """One line of doctor's report."""

    name: str
    status: str  # pass | warn | fail
    message: str
    hint: str | None = None


CheckFn = Callable[[HostFacts], list[Check]]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    sections: tuple[str, ...]
    fn: CheckFn
    description: str


def cuda_tuple(version: str | None) -> tuple[int, int] | None:
    if not version:
        return None
    try:
        major, _, minor = version.partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return None


def gpu_label(g: GpuInfo) -> str:
    return f"GPU {g.index}" + (f" ({g.name})" if g.name else "")


def gib_text(mib: int | None) -> str:
    return "?" if mib is None else f"{mib / GIB:.1f} GiB"
