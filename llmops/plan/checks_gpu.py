"""Doctor's GPU checks: the NVIDIA driver, CUDA vs the engines' images, and each GPU's rows.

Pure functions from HostFacts to Check rows; the registry is in ``llmops.plan.checks``.
"""

from __future__ import annotations

from llmops.hw.facts import HostFacts
from llmops.plan.checks_base import (
    FAIL,
    FOREIGN_GPU_MEMORY_WARN_PCT,
    MIN_CUDA_OK,
    PASS,
    TEMPERATURE_WARN_C,
    WARN,
    Check,
    cuda_tuple,
    gpu_label,
)


def check_gpu_driver(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None:
        return []
    name = "gpu.driver"
    if nv.error_kind in ("no_driver", "no_library"):
        return [
            Check(
                name,
                WARN,
                f"{nv.error}; only CPU engines (torch, llama.cpp) can run",
                "on a GPU host install the NVIDIA driver (Debian/Ubuntu: `sudo apt install "
                "nvidia-driver`), reboot, then check `nvidia-smi`",
            )
        ]
    if nv.error_kind == "driver_not_loaded":
        return [
            Check(
                name,
                FAIL,
                f"the NVIDIA kernel module is not loaded: {nv.error}",
                "run `sudo modprobe nvidia` (or reboot), then `nvidia-smi`",
            )
        ]
    if nv.error_kind == "version_mismatch":
        return [
            Check(
                name,
                FAIL,
                f"driver/library version mismatch: {nv.error}",
                "the driver was upgraded without reloading it: reboot the host",
            )
        ]
    if nv.error:
        return [
            Check(
                name,
                FAIL,
                f"NVML failed: {nv.error}",
                "run `nvidia-smi` to see the driver's own error",
            )
        ]
    ok = f"driver {nv.driver_version}, CUDA {nv.cuda_driver_version}, {len(nv.gpus)} GPU(s)"
    if nv.library_mismatch:
        branch = (nv.driver_version or "").split(".")[0]
        cuda_major = (nv.cuda_driver_version or "").split(".")[0]
        pin = (
            f"`pip install 'nvidia-ml-py=={cuda_major}.{branch}.*'`"
            if branch.isdigit() and cuda_major.isdigit()
            else "the nvidia-ml-py release named after your driver branch"
        )
        return [
            Check(
                name,
                WARN,
                f"{ok}, but nvidia-ml-py is newer than this driver's NVML "
                f"({nv.library_mismatch.split('.')[0]}); older NVML calls were used",
                f"upgrade the NVIDIA driver, or install the bindings of driver "
                f"{nv.driver_version}: {pin}",
            )
        ]
    return [Check(name, PASS, ok)]


def check_gpu_health(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    lost = [g for g in nv.gpus if not g.ok]
    if not nv.gpus:
        return [
            Check(
                "gpu.health",
                FAIL,
                "the NVIDIA driver is loaded but reports no GPUs",
                "check `nvidia-smi -L` and `dmesg | grep -i nvidia`",
            )
        ]
    if lost:
        idx = ", ".join(str(g.index) for g in lost)
        return [
            Check(
                "gpu.health",
                FAIL,
                f"GPU {idx}: {lost[0].error}; {len(nv.gpus) - len(lost)} of {len(nv.gpus)} usable",
                f"run `nvidia-smi -q -i {lost[0].index}` and `dmesg | grep -i xid`; a lost GPU "
                "usually needs a reboot (exclude it meanwhile with `--gpus`)",
            )
        ]
    return [Check("gpu.health", PASS, f"{len(nv.gpus)} GPU(s) answer NVML")]


def check_gpu_cuda(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    v = cuda_tuple(nv.cuda_driver_version)
    if v is None:
        return [Check("gpu.cuda", WARN, "the driver did not report its CUDA version", None)]
    if v < MIN_CUDA_OK:
        return [
            Check(
                "gpu.cuda",
                FAIL,
                f"the driver supports CUDA {nv.cuda_driver_version}; current TGI and vLLM images "
                "need a CUDA 12.x driver",
                "upgrade the NVIDIA driver to R535 or newer",
            )
        ]
    return [_engine_images(f)]


def _engine_images(f: HostFacts) -> Check:
    """Which pinned image of each GPU engine this driver can start (its records' CUDA images)."""
    from llmops.plan.engines import llamacpp, sglang, tgi, vllm
    from llmops.plan.engines.rules import pick_cuda_image

    nv = f.nvidia
    assert nv is not None
    gpus = tuple(g.index for g in nv.gpus)
    usable, refused = [], []
    warn = False  # vLLM or llama.cpp (tried first, with no --engine) cannot start here
    for mod in (vllm, sglang, llamacpp, tgi):
        img, _ = pick_cuda_image(mod.CUDA_IMAGES, f, gpus)
        title = mod.RECORD.title + (" (maintenance mode)" if mod.RECORD.status else "")
        if img is not None:
            usable.append(f"{title} `{img.ref}`")
        else:
            need = min(i.cuda for i in mod.CUDA_IMAGES)
            refused.append(f"{title} (needs CUDA {need[0]}.{need[1]})")
            warn = warn or mod in (vllm, llamacpp)
    text = f"CUDA {nv.cuda_driver_version} driver: " + (
        "images it starts: " + ", ".join(usable) if usable else "no pinned engine image starts"
    )
    if refused and not warn:  # SGLang's CUDA 13 image (and TGI) are optional here
        return Check("gpu.cuda", PASS, text + "; not: " + ", ".join(refused))
    if refused:
        return Check(
            "gpu.cuda",
            WARN,
            text + "; not: " + ", ".join(refused),
            "update the NVIDIA driver for those engines, or run them natively (`--runtime native`)",
        )
    return Check("gpu.cuda", PASS, text)


def check_gpu_memory(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    out: list[Check] = []
    for g in nv.healthy_gpus:
        if not g.memory_total_mib or g.memory_used_mib is None:
            continue
        pct = 100 * g.memory_used_mib / g.memory_total_mib
        if pct >= FOREIGN_GPU_MEMORY_WARN_PCT:
            procs = g.processes or ()
            pids = ("PID " + ", ".join(str(p.pid) for p in procs)) if procs else "unknown processes"
            out.append(
                Check(
                    f"gpu.memory.{g.index}",
                    WARN,
                    f"{gpu_label(g)}: {g.memory_used_mib} of {g.memory_total_mib} MiB already in "
                    f"use ({pct:.0f}%) by {pids}",
                    "stop what holds it (`llmops ps`, `nvidia-smi`) or choose other GPUs with "
                    "`--gpus`",
                )
            )
    if not out and nv.healthy_gpus:
        free = sum(g.memory_free_mib or 0 for g in nv.healthy_gpus)
        out.append(
            Check("gpu.memory", PASS, f"{free} MiB free across {len(nv.healthy_gpus)} GPU(s)")
        )
    return out


def check_gpu_mig(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    out: list[Check] = []
    for g in nv.healthy_gpus:
        if g.mig_enabled:
            out.append(
                Check(
                    f"gpu.mig.{g.index}",
                    WARN,
                    f"{gpu_label(g)} is in MIG mode: engines see MIG slices, not the whole GPU",
                    f"to use the whole GPU: `sudo nvidia-smi -i {g.index} -mig 0` then reset it",
                )
            )
        elif g.mig_pending is not None and g.mig_pending != g.mig_enabled:
            out.append(
                Check(
                    f"gpu.mig.{g.index}",
                    WARN,
                    f"{gpu_label(g)} has a MIG mode change pending",
                    f"reset the GPU (`sudo nvidia-smi -r -i {g.index}`) or reboot",
                )
            )
    return out


def check_gpu_ecc(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    out: list[Check] = []
    for g in nv.healthy_gpus:
        if (
            g.ecc_pending is not None
            and g.ecc_enabled is not None
            and g.ecc_pending != g.ecc_enabled
        ):
            state = "on" if g.ecc_pending else "off"
            out.append(
                Check(
                    f"gpu.ecc.{g.index}",
                    WARN,
                    f"{gpu_label(g)}: ECC will be {state} after the next reboot (pending)",
                    "reboot the host to apply the ECC change",
                )
            )
    return out


def check_gpu_pcie(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    out: list[Check] = []
    for g in nv.healthy_gpus:
        cur, top = g.pcie_width_current, g.pcie_width_max
        if cur is not None and top is not None and cur < top:
            out.append(
                Check(
                    f"gpu.pcie.{g.index}",
                    WARN,
                    f"{gpu_label(g)} runs at PCIe x{cur} of x{top}: weight loading and "
                    "multi-GPU traffic are slower",
                    "reseat the card or move it to a full-width slot; riser cables often cause this",
                )
            )
    return out


def check_gpu_thermal(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error:
        return []
    out: list[Check] = []
    for g in nv.healthy_gpus:
        if g.temperature_c is not None and g.temperature_c >= TEMPERATURE_WARN_C:
            out.append(
                Check(
                    f"gpu.thermal.{g.index}",
                    WARN,
                    f"{gpu_label(g)} is at {g.temperature_c} °C and may throttle",
                    "check cooling, or lower the power limit (`sudo nvidia-smi -i "
                    f"{g.index} -pl WATTS`)",
                )
            )
    return out


def check_gpu_topology(f: HostFacts) -> list[Check]:
    nv = f.nvidia
    if nv is None or nv.error or len(nv.healthy_gpus) < 2:
        return []
    slow = [
        link for link in nv.links if not link.nvlink_count and link.p2p_read not in (None, "ok")
    ]
    nvlinked = [link for link in nv.links if link.nvlink_count]
    if slow:
        pairs = ", ".join(f"{link.gpu_a}-{link.gpu_b}" for link in slow[:4])
        more = f" and {len(slow) - 4} more" if len(slow) > 4 else ""
        return [
            Check(
                "gpu.topology",
                WARN,
                f"no peer-to-peer path between GPUs {pairs}{more} "
                f"({slow[0].topology or '?'}, P2P {slow[0].p2p_read}): tensor parallel traffic goes "
                "through host memory",
                "expect slower multi-GPU inference; prefer one GPU per replica where the model fits",
            )
        ]
    if nvlinked and len(nvlinked) == len(nv.links):
        return [Check("gpu.topology", PASS, f"every GPU pair is NVLinked ({len(nv.links)} pairs)")]
    return [Check("gpu.topology", PASS, f"peer-to-peer available on {len(nv.links)} GPU pair(s)")]
