"""Doctor checks: pure functions from HostFacts to PASS / WARN / FAIL with a one-line fix hint.

Every check declares the fact sections it reads, so ``llmops doctor --check docker`` probes only
what it needs. Nothing here touches the host: the same checks run on local facts, on facts from
a remote host, and on a saved ``doctor --json`` file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmops.errors import UsageError
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


def _cuda_tuple(version: str | None) -> tuple[int, int] | None:
    if not version:
        return None
    try:
        major, _, minor = version.partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return None


def _gpu_label(g: GpuInfo) -> str:
    return f"GPU {g.index}" + (f" ({g.name})" if g.name else "")


def _gib(mib: int | None) -> str:
    return "?" if mib is None else f"{mib / GIB:.1f} GiB"


# ------------------------------------------------------------------------------ GPU checks


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
    v = _cuda_tuple(nv.cuda_driver_version)
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
                    f"{_gpu_label(g)}: {g.memory_used_mib} of {g.memory_total_mib} MiB already in "
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
                    f"{_gpu_label(g)} is in MIG mode: engines see MIG slices, not the whole GPU",
                    f"to use the whole GPU: `sudo nvidia-smi -i {g.index} -mig 0` then reset it",
                )
            )
        elif g.mig_pending is not None and g.mig_pending != g.mig_enabled:
            out.append(
                Check(
                    f"gpu.mig.{g.index}",
                    WARN,
                    f"{_gpu_label(g)} has a MIG mode change pending",
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
                    f"{_gpu_label(g)}: ECC will be {state} after the next reboot (pending)",
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
                    f"{_gpu_label(g)} runs at PCIe x{cur} of x{top}: weight loading and "
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
                    f"{_gpu_label(g)} is at {g.temperature_c} °C and may throttle",
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


# --------------------------------------------------------------------------- system checks


def check_system_ram(f: HostFacts) -> list[Check]:
    s = f.system
    if s is None or s.ram_total_mib is None:
        return []
    msg = (
        f"{_gib(s.ram_available_mib)} available of {_gib(s.ram_total_mib)}, "
        f"{s.cpu_threads or '?'} CPU threads"
    )
    if s.ram_available_mib is not None and s.ram_available_mib < RAM_WARN_GIB * GIB:
        return [
            Check(
                "system.ram",
                WARN,
                msg + ": loading weights can exhaust RAM",
                "stop other processes, or add swap for loading (`llmops fit` shows what is needed)",
            )
        ]
    return [Check("system.ram", PASS, msg)]


def check_system_shm(f: HostFacts) -> list[Check]:
    s = f.system
    if s is None:
        return []
    if s.shm_total_mib is None:
        return [
            Check(
                "system.shm",
                WARN,
                "/dev/shm is missing: NCCL and PyTorch need shared memory",
                "mount it: `sudo mount -t tmpfs -o size=16g tmpfs /dev/shm`",
            )
        ]
    if s.shm_total_mib < SHM_WARN_GIB * GIB:
        return [
            Check(
                "system.shm",
                WARN,
                f"/dev/shm is only {s.shm_total_mib} MiB: multi-GPU engines run natively here can "
                "crash in NCCL (containers get their own --shm-size from llmops)",
                "in a container, restart it with `--shm-size=16g` or `--ipc=host`",
            )
        ]
    return [Check("system.shm", PASS, f"/dev/shm {_gib(s.shm_total_mib)}")]


def check_system_disk(f: HostFacts) -> list[Check]:
    s = f.system
    if s is None:
        return []
    labels = {
        "hf_cache": "Hugging Face cache",
        "docker_root": "Docker root",
        "state": "llmops state",
    }
    out: list[Check] = []
    for d in s.disks:
        name = f"system.disk.{d.purpose}"
        label = labels.get(d.purpose, d.purpose)
        if d.error or d.free_mib is None:
            out.append(Check(name, WARN, f"cannot read free space at {d.path}: {d.error}", None))
            continue
        msg = f"{label} {d.path}: {_gib(d.free_mib)} free"
        if d.free_mib < DISK_FAIL_GIB * GIB:
            out.append(
                Check(
                    name,
                    FAIL,
                    msg + f" (< {DISK_FAIL_GIB} GiB: even a 7B model will not download)",
                    "free space, or point HF_HOME / Docker's data-root at a bigger disk",
                )
            )
        elif d.free_mib < DISK_WARN_GIB * GIB and d.purpose != "state":
            out.append(
                Check(
                    name,
                    WARN,
                    msg + f" (< {DISK_WARN_GIB} GiB: room for small models only)",
                    "free space, or point HF_HOME / Docker's data-root at a bigger disk",
                )
            )
        else:
            out.append(Check(name, PASS, msg))
    return out


# ------------------------------------------------------------------------- platform/docker


def _native_reason(f: HostFacts) -> str | None:
    """Why the native runtime will be used instead of Docker, or None if Docker can be used."""
    d, p = f.docker, f.platform
    if d is not None and d.reachable:
        return None
    if p is not None and p.kind in ("vast.ai", "runpod"):
        return f"{p.kind} instances are containers without Docker inside"
    if p is not None and p.kind == "container":
        return "this is a container without a Docker daemon"
    if d is not None and d.error_kind == "not_installed":
        return "Docker is not installed"
    return None


def check_platform(f: HostFacts) -> list[Check]:
    p = f.platform
    if p is None:
        return []
    what = {
        "vast.ai": "vast.ai instance",
        "runpod": "RunPod pod",
        "container": "a container",
        "vm": f"a virtual machine ({p.virtualization})",
        "bare-metal": "bare metal",
    }.get(p.kind, p.kind)
    ident = f" {p.instance_id}" if p.instance_id else ""
    msg = f"{what}{ident}"
    if f.docker is not None:
        reason = _native_reason(f)
        msg += (
            f": {reason}, the native runtime will be used"
            if reason
            else (": Docker available, containers will be used" if f.docker.reachable else "")
        )
    return [Check("platform", PASS, msg)]


def check_docker_engine(f: HostFacts) -> list[Check]:
    d = f.docker
    if d is None:
        return []
    if d.reachable:
        return [
            Check(
                "docker.engine",
                PASS,
                f"Docker {d.server_version} (API {d.api_version}) at {d.host}, "
                f"storage {d.storage_driver}, root {d.root_dir}",
            )
        ]
    reason = _native_reason(f)
    if d.error_kind == "permission_denied":
        return [
            Check(
                "docker.engine",
                FAIL,
                f"Docker: {d.error}",
                "add yourself to the docker group: `sudo usermod -aG docker $USER`, then log in again",
            )
        ]
    in_container = f.platform is not None and f.platform.kind in ("vast.ai", "runpod", "container")
    if reason and (in_container or d.error_kind != "daemon_down"):
        return [
            Check(
                "docker.engine",
                WARN,
                f"no Docker engine ({reason}): the native runtime will be used",
                None
                if in_container
                else "to run engines in containers install Docker (`sudo apt install docker.io`)",
            )
        ]
    if d.error_kind == "daemon_down":
        return [
            Check(
                "docker.engine",
                FAIL,
                f"Docker is installed but {d.error}",
                "start it: `sudo systemctl start docker` (or `sudo dockerd &` without systemd)",
            )
        ]
    return [
        Check(
            "docker.engine",
            FAIL,
            f"Docker engine unreachable: {d.error}",
            "check `docker info`; set DOCKER_HOST if the engine listens elsewhere",
        )
    ]


def check_docker_storage(f: HostFacts) -> list[Check]:
    d = f.docker
    if d is None or not d.reachable:
        return []
    if d.storage_driver == "vfs":
        return [
            Check(
                "docker.storage",
                WARN,
                "Docker uses the vfs storage driver: every layer is a full copy, engine images "
                "(10+ GB) will fill the disk",
                'use overlay2: `{"storage-driver": "overlay2"}` in /etc/docker/daemon.json',
            )
        ]
    return []


def check_docker_nvidia(f: HostFacts) -> list[Check]:
    d, nv = f.docker, f.nvidia
    if d is None or not d.reachable:
        return []
    has_gpus = nv is not None and bool(nv.healthy_gpus)
    if d.nvidia_runtime or d.cdi_gpus:
        how = []
        if d.nvidia_runtime:
            how.append("nvidia runtime")
        if d.cdi_gpus:
            how.append(f"CDI spec {d.cdi_nvidia_specs[0]}")
        return [Check("docker.nvidia", PASS, "containers can get GPUs: " + ", ".join(how))]
    if not has_gpus:
        return [
            Check(
                "docker.nvidia",
                PASS,
                "no NVIDIA container runtime, none needed (no NVIDIA GPU): CPU containers only",
            )
        ]
    ctk = "nvidia-ctk is on PATH" if d.nvidia_ctk else "nvidia-ctk is not installed"
    return [
        Check(
            "docker.nvidia",
            FAIL,
            f"Docker has no NVIDIA runtime and no NVIDIA CDI spec ({ctk}): containers cannot "
            "use the GPUs",
            "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure "
            "--runtime=docker && sudo systemctl restart docker`",
        )
    ]


def check_docker_gpu_smoke(f: HostFacts) -> list[Check]:
    d = f.docker
    if d is None or d.gpu_smoke_test is None:
        return []
    t = d.gpu_smoke_test
    if t.ok:
        first = (t.output or "").splitlines()[0] if t.output else "ok"
        return [Check("docker.gpu-smoke-test", PASS, f"a GPU container ran on {t.image}: {first}")]
    return [
        Check(
            "docker.gpu-smoke-test",
            FAIL,
            f"a container requesting GPUs failed ({t.diagnosis}): {t.error}",
            GPU_ERROR_HINTS.get(t.diagnosis or "other", GPU_ERROR_HINTS["other"]),
        )
    ]


# ------------------------------------------------------------------------------- HF, tools


def check_hf_token(f: HostFacts) -> list[Check]:
    h = f.hf
    if h is None:
        return []
    if not h.token_present:
        return [
            Check(
                "hf.token",
                WARN,
                "no Hugging Face token: gated models (Llama, Gemma, Mistral) cannot be downloaded",
                "create one at https://huggingface.co/settings/tokens, then `hf auth login` or "
                "`export HF_TOKEN=...`",
            )
        ]
    where = f"{h.token_masked} from {h.token_source}"
    if h.token_valid is False:
        return [
            Check(
                "hf.token",
                FAIL,
                f"the Hugging Face token {where} is invalid: {h.error}",
                "create a new token at https://huggingface.co/settings/tokens",
            )
        ]
    if h.token_valid:
        return [Check("hf.token", PASS, f"token {where} is valid (user {h.token_user})")]
    if h.offline_mode:
        return [Check("hf.token", PASS, f"token {where} (not checked: HF_HUB_OFFLINE is set)")]
    return [
        Check(
            "hf.token",
            WARN,
            f"token {where} could not be checked: {h.error or 'Hub unreachable'}",
            "offline is fine for cached models; online, check the network or HF_ENDPOINT",
        )
    ]


def check_hf_cache(f: HostFacts) -> list[Check]:
    h = f.hf
    if h is None:
        return []
    if h.cache_size_mib is None:
        return [Check("hf.cache", PASS, f"cache {h.cache_dir} (empty)")]
    return [
        Check(
            "hf.cache",
            PASS,
            f"cache {h.cache_dir}: {_gib(h.cache_size_mib)} in {h.cache_repos} repo(s)",
        )
    ]


_TOOL_HINTS = {
    "cloudflared": (
        "`llmops tunnel --via cloudflared`",
        "install it from https://github.com/cloudflare/cloudflared/releases "
        "(Debian: the cloudflared .deb)",
    ),
    "ngrok": (
        "`llmops tunnel --via ngrok`",
        "install it from https://ngrok.com/download and `ngrok config add-authtoken TOKEN`",
    ),
}


def check_tools(f: HostFacts) -> list[Check]:
    if f.tools is None:
        return []
    out: list[Check] = []
    smi = f.tool("nvidia-smi")
    if smi is not None:
        driver = f.nvidia is not None and not f.nvidia.error
        if smi.path:
            out.append(
                Check("tools.nvidia-smi", PASS, f"nvidia-smi {smi.version or ''} at {smi.path}")
            )
        elif driver:
            out.append(
                Check(
                    "tools.nvidia-smi",
                    WARN,
                    "nvidia-smi is not on PATH although the driver is loaded",
                    "install the driver's utilities (Debian: `sudo apt install nvidia-smi`)",
                )
            )
        else:
            out.append(
                Check("tools.nvidia-smi", PASS, "nvidia-smi not installed (no NVIDIA driver)")
            )
    llama = f.tool("llama-server")
    if llama is not None:
        out.append(
            Check(
                "tools.llama-server",
                PASS,
                f"llama-server {llama.version or '?'} at {llama.path}"
                if llama.path
                else "llama-server not installed (native llama.cpp: "
                "`llmops engine install llamacpp`)",
            )
        )
    for name, (used_for, hint) in _TOOL_HINTS.items():
        t = f.tool(name)
        if t is None:
            continue
        if t.path:
            out.append(Check(f"tools.{name}", PASS, f"{name} {t.version or '?'} at {t.path}"))
        else:
            out.append(
                Check(f"tools.{name}", WARN, f"{name} not installed (needed for {used_for})", hint)
            )
    return out


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
