"""Doctor's host checks: RAM, /dev/shm, disk, platform, Docker, Hugging Face, tools.

Pure functions from HostFacts to Check rows; the registry is in ``llmops.plan.checks``.
"""

from __future__ import annotations

from llmops.hw.facts import HostFacts
from llmops.plan.checks_base import (
    DISK_FAIL_GIB,
    DISK_WARN_GIB,
    FAIL,
    GIB,
    GPU_ERROR_HINTS,
    PASS,
    RAM_WARN_GIB,
    SHM_WARN_GIB,
    WARN,
    Check,
    gib_text,
)

# --------------------------------------------------------------------------- system checks


def check_system_ram(f: HostFacts) -> list[Check]:
    s = f.system
    if s is None or s.ram_total_mib is None:
        return []
    msg = (
        f"{gib_text(s.ram_available_mib)} available of {gib_text(s.ram_total_mib)}, "
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
    return [Check("system.shm", PASS, f"/dev/shm {gib_text(s.shm_total_mib)}")]


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
        msg = f"{label} {d.path}: {gib_text(d.free_mib)} free"
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
            f"cache {h.cache_dir}: {gib_text(h.cache_size_mib)} in {h.cache_repos} repo(s)",
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
