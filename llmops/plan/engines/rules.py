"""Rules several engine records apply the same way, each with the engine's own numbers.

- Which of an engine's CUDA images the host's driver can start (``pick_cuda_image``).
- What the selected GPUs' compute capability allows (``no_bf16``, ``fp16_note``).
- A requested rope scaling on top of the model's own (``effective_rope``).

The engine-specific facts (image CUDA versions, capability thresholds) live in each engine's
module, next to the source they were read from. Pure: no clock, environment, network or disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.engines.base import LaunchOptions, ModelArtifact
from llmops.plan.model import RopeScaling

# bf16 needs compute capability 8.0 (Ampere) in every engine here: vLLM 0.20.2
# vllm/platforms/cuda.py `supported_dtypes` / `check_if_supports_dtype` ("Bfloat16 is only
# supported on GPUs with compute capability of at least 8.0"); torch has no bf16 kernels below
# sm_80 either, which TGI and the torch backend run on.
BF16_MIN_CAPABILITY = 8.0


@dataclass(frozen=True)
class CudaImage:
    """One CUDA build of an engine image.

    ``cuda`` is the CUDA version of the ``nvidia/cuda`` base it is built ``FROM``. That base
    declares ``NVIDIA_REQUIRE_CUDA=cuda>=MAJOR.MINOR brand=B,driver>=N,driver<N+1 ...``, which
    the NVIDIA container runtime checks before the container starts ("unsatisfied condition:
    cuda>=12.9, please update your driver to a newer version"): a driver for that CUDA or
    newer, or one of the listed driver branches on the listed GPU brands. ``admits`` holds
    the listed branches whose CUDA has the image's major version (there the image's CUDA
    runtime works by NVIDIA's minor-version compatibility; an older major would need the
    forward-compatibility libraries, which llmops does not rely on); ``consumer`` says whether
    they are listed for GeForce/TITAN too.
    """

    ref: str  # the full image reference
    cuda: tuple[int, int]
    source: str  # where the version was read (engine repo path @ the pinned version)
    admits: tuple[int, ...] = ()
    consumer: bool = False


# NVIDIA_REQUIRE_CUDA of the nvidia/cuda bases, as the published images carry it (the
# engines' trees only name the base; the values are read from the image configs, e.g.
# `docker inspect` of text-generation-inference and vllm-openai images quoted in public
# repositories). Only branches seen in full are listed; a branch missing here is refused.
# - 12.4.x: brands tesla, unknown, nvidia, nvidiartx, geforce, geforcertx, quadro, quadrortx,
#   titan, titanrtx at drivers 470, 525, 535 (470 is CUDA 11: not a same-major branch).
BRANCHES_12_4 = (525, 535)
# - 12.8.x: brands unknown, grid, tesla, nvidia, quadro, quadrortx, nvidiartx, vapps, vpc,
#   vcs, vws, cloudgaming (no GeForce/TITAN) at 470, 535, 550, ... (seen up to 550).
BRANCHES_12_8 = (535, 550)
# - 12.9.x: the same brands at 535, 550, 560, 565, 570.
BRANCHES_12_9 = (535, 550, 560, 565, 570)


def cuda_version(text: str | None) -> tuple[int, int] | None:
    """``"12.4"`` → ``(12, 4)``; None for anything unreadable."""
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def dotted(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def driver_cuda(facts: HostFacts | None) -> tuple[int, int] | None:
    """The newest CUDA the host's driver supports (``nvidia-smi``'s "CUDA Version")."""
    if facts is None or facts.nvidia is None:
        return None
    return cuda_version(facts.nvidia.cuda_driver_version)


def driver_branch(facts: HostFacts | None) -> int | None:
    """``"535.183.01"`` → 535."""
    if facts is None or facts.nvidia is None or not facts.nvidia.driver_version:
        return None
    try:
        return int(facts.nvidia.driver_version.split(".")[0])
    except ValueError:
        return None


def consumer_gpus(facts: HostFacts | None, gpus: tuple[int, ...]) -> bool | None:
    """Whether a selected GPU is a GeForce/TITAN (None: a selected GPU has no name)."""
    names = selected_gpu_names(facts, gpus)
    if not names or any(n is None for n in names):
        return None
    return any("geforce" in n.lower() or "titan" in n.lower() for n in names if n)


def can_start(img: CudaImage, facts: HostFacts | None, gpus: tuple[int, ...]) -> bool:
    drv = driver_cuda(facts)
    if drv is None:
        return False
    if img.cuda <= drv:
        return True
    branch = driver_branch(facts)
    if branch is None or branch not in img.admits or drv[0] != img.cuda[0]:
        return False
    return img.consumer or consumer_gpus(facts, gpus) is False


def pick_cuda_image(
    images: Sequence[CudaImage], facts: HostFacts | None, gpus: tuple[int, ...] = ()
) -> tuple[CudaImage | None, tuple[int, int] | None]:
    """(the newest image the host's driver can start, the driver's CUDA).

    ``images`` are newest first. The image is None when the driver is unknown (the caller
    keeps its default) or no image can start on it (the caller refuses).
    """
    drv = driver_cuda(facts)
    if drv is None:
        return None, None
    for img in images:
        if can_start(img, facts, gpus):
            return img, drv
    return None, drv


def driver_too_old(
    title: str,
    version: str,
    images: Sequence[CudaImage],
    drv: tuple[int, int],
    facts: HostFacts | None,
    others: str,
) -> UsageError:
    need = min(img.cuda for img in images)
    have = facts.nvidia.driver_version if facts and facts.nvidia else None
    driver = f"driver {have}" if have else "driver"
    return UsageError(
        f"{title} {version}'s images need an NVIDIA driver for CUDA {dotted(need)} or newer; "
        f"this host's {driver} supports CUDA {dotted(drv)}",
        f"update the NVIDIA driver to one for CUDA {dotted(need)} or newer (`nvidia-smi` shows "
        f"the CUDA version a driver supports), or use {others}; `--runtime native` runs an "
        "engine installed on the host, `--image` a build of your own",
    )


def selected_gpu_names(facts: HostFacts | None, gpus: tuple[int, ...]) -> list[str | None]:
    if facts is None or facts.nvidia is None:
        return []
    return [g.name for g in facts.nvidia.gpus if g.index in gpus]


def no_bf16(cap: float | None) -> bool:
    """The selected GPUs are known to lack bf16 (compute capability below 8.0)."""
    return cap is not None and cap < BF16_MIN_CAPABILITY


def fp16_note(cap: float, flag: str) -> str:
    return (
        f"GPU compute capability {cap:.1f} has no bf16 (it needs 8.0): running in fp16 (`{flag}`)"
    )


def serving_dtype(
    a: ModelArtifact, cap: float | None, notes: list[str], flag: str = "--dtype float16"
) -> tuple[str | None, str]:
    """The activation dtype to render (None: leave it to the engine) and why.

    A 16-bit safetensors checkpoint is served as asked; below compute capability 8.0 it is
    always fp16 (never bf16), quantized repos included, with a note naming ``flag``.
    """
    dtype = a.quant if a.format == "safetensors" and a.quant in ("fp16", "bf16") else None
    why = "the checkpoint's"
    if no_bf16(cap):
        assert cap is not None
        if a.quant != "fp16":
            notes.append(fp16_note(cap, flag))
        dtype, why = "fp16", f"no bf16 at compute capability {cap:.1f}"
    return dtype, why


def effective_rope(a: ModelArtifact, o: LaunchOptions, title: str) -> RopeScaling | None:
    """The rope scaling to render: ``o.rope`` on top of the model's own ``a.native_rope``.

    A model that already scales its rope (Llama 3.1's ``llama3``, a YaRN-extended Qwen) is
    extended only where the result is that same scaling with a larger factor over the same
    original context (linear on linear, yarn on yarn); anything else would replace the
    model's own scaling, which every engine here does when given another (vLLM replaces
    ``rope_parameters``, TGI's ``ROPE_SCALING`` replaces ``config.rope_scaling``, llama.cpp's
    ``--rope-scale`` replaces the GGUF's trained scale).

    Raises:
        UsageError: a native scaling that cannot be extended that way.
    """
    want = o.rope
    native = a.native_rope
    if want is None or native is None:
        return want
    if native.kind == want.kind and native.kind in ("linear", "yarn") and native.original_context:
        return RopeScaling(
            kind=native.kind,
            factor=round(native.factor * want.factor, 4),
            original_context=native.original_context,
        )
    raise UsageError(
        f"{a.model} already scales its rope ({native.kind} x{native.factor:g}"
        + (f" from {native.original_context} tokens" if native.original_context else "")
        + f"); {title} would replace that with {want.kind} scaling, not extend it",
        f"use a context within the model's {a.trained_context} tokens (`--context "
        f"{a.trained_context}`), or a model trained for a longer context",
    )


def unknown_kv(title: str, kv: str, accepted: Sequence[str]) -> UsageError:
    return UsageError(
        f"{title} has no {kv} KV cache",
        "choose `--kv-dtype` auto, " + ", ".join(accepted),
    )


def kv_follows_dtype(title: str, kv: str, dtype: str | None, why: str) -> str:
    """The activation dtype for an fp16/bf16 KV cache, which these engines keep in it.

    ``dtype`` is the one already decided (the checkpoint's fp16/bf16, fp16 below 8.0, the
    engine's own choice for a quant), None when free.

    Raises:
        UsageError: ``kv`` differs from the decided dtype.
    """
    if dtype is None or dtype == kv:
        return kv
    raise UsageError(
        f"{title} keeps the KV cache in the model's dtype, {dtype} here ({why}), not {kv}",
        f"use `--kv-dtype auto` (or {dtype}), or `--kv-dtype fp8` for a smaller cache",
    )


__all__ = [
    "BF16_MIN_CAPABILITY",
    "BRANCHES_12_4",
    "BRANCHES_12_8",
    "BRANCHES_12_9",
    "CudaImage",
    "cuda_version",
    "can_start",
    "consumer_gpus",
    "dotted",
    "driver_branch",
    "driver_cuda",
    "driver_too_old",
    "effective_rope",
    "fp16_note",
    "kv_follows_dtype",
    "no_bf16",
    "pick_cuda_image",
    "selected_gpu_names",
    "unknown_kv",
]
