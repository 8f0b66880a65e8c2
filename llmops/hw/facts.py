"""HostFacts: frozen, JSON-serialisable snapshots of what a host is.

Units are in field names (``memory_total_mib``, ``power_limit_w``); ``None`` means "not
supported / not known". The same shape comes from the local probe, from a remote host over SSH
and from a fixture file, so everything downstream (doctor checks, fit, launch plans) works on
any of them. This module is pure: it imports nothing with side effects.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

SCHEMA_VERSION = 1

T = TypeVar("T")


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a GPU (``nvidia-smi --query-compute-apps``)."""

    pid: int
    used_memory_mib: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class GpuInfo:
    """One GPU, as NVML reports it. ``error`` is set (and most fields None) for a lost GPU."""

    index: int
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    memory_free_mib: int | None = None
    compute_capability: str | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    power_default_limit_w: float | None = None
    power_min_limit_w: float | None = None
    power_max_limit_w: float | None = None
    temperature_c: int | None = None
    utilization_gpu_pct: int | None = None
    ecc_enabled: bool | None = None
    ecc_pending: bool | None = None
    pcie_gen_current: int | None = None
    pcie_gen_max: int | None = None
    pcie_width_current: int | None = None
    pcie_width_max: int | None = None
    mig_enabled: bool | None = None
    mig_pending: bool | None = None
    processes: tuple[GpuProcess, ...] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class GpuLink:
    """How two GPUs talk: common ancestor in the PCIe tree, NVLink count, P2P support."""

    gpu_a: int
    gpu_b: int
    topology: str | None = (
        None  # NVLINK | PIX | PXB | PHB | NODE | SYS | INTERNAL (nvidia-smi topo -m)
    )
    nvlink_count: int | None = None
    p2p_read: str | None = (
        None  # ok | not_supported | chipset_not_supported | ... (NVML P2P status)
    )
    p2p_nvlink: str | None = None


@dataclass(frozen=True)
class NvidiaFacts:
    """The NVIDIA driver and its GPUs. ``error`` explains why there are none."""

    driver_version: str | None = None
    cuda_driver_version: str | None = None  # "12.4"
    nvml_version: str | None = None
    gpus: tuple[GpuInfo, ...] = ()
    links: tuple[GpuLink, ...] = ()
    error: str | None = None
    error_kind: str | None = (
        None  # no_driver | driver_not_loaded | version_mismatch | no_permission | unknown
    )
    # nvidia-ml-py is newer than the driver's NVML: an unversioned call raised
    # NVMLLibraryMismatchError (older calls were used where there is one).
    library_mismatch: str | None = None

    @property
    def healthy_gpus(self) -> tuple[GpuInfo, ...]:
        return tuple(g for g in self.gpus if g.ok)


@dataclass(frozen=True)
class DiskInfo:
    """Free space where something large will be written."""

    purpose: str  # hf_cache | docker_root | state
    path: str
    total_mib: int | None = None
    free_mib: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SystemFacts:
    hostname: str | None = None
    os_name: str | None = None  # "Debian GNU/Linux 12 (bookworm)"
    kernel: str | None = None
    arch: str | None = None
    python_version: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None  # physical
    cpu_threads: int | None = None  # logical
    # CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (a container
    # limited to 8 CPUs on a 128-thread host sees cpu_threads 128 and cpu_usable 8)
    cpu_usable: int | None = None
    ram_total_mib: int | None = None
    ram_available_mib: int | None = None
    swap_total_mib: int | None = None
    swap_used_mib: int | None = None
    shm_total_mib: int | None = None
    shm_free_mib: int | None = None
    in_container: bool = False
    container_evidence: tuple[str, ...] = ()
    is_root: bool | None = None
    disks: tuple[DiskInfo, ...] = ()

    def disk(self, purpose: str) -> DiskInfo | None:
        return next((d for d in self.disks if d.purpose == purpose), None)


@dataclass(frozen=True)
class GpuSmokeTest:
    """Result of running a container that requests GPUs (``doctor --gpu-smoke-test``)."""

    ok: bool
    image: str
    output: str | None = None
    error: str | None = None
    diagnosis: str | None = (
        None  # no_runtime | cdi_no_vendor | cdi_unresolvable | nvml_permission | no_image | other
    )


@dataclass(frozen=True)
class DockerFacts:
    reachable: bool = False
    error: str | None = None
    error_kind: str | None = None  # not_installed | daemon_down | permission_denied | other
    host: str | None = None  # the socket or DOCKER_HOST used
    server_version: str | None = None
    api_version: str | None = None
    os_name: str | None = None
    storage_driver: str | None = None
    root_dir: str | None = None
    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    cdi_spec_dirs: tuple[str, ...] = ()
    cdi_nvidia_specs: tuple[str, ...] = ()
    nvidia_ctk: str | None = None  # path of nvidia-ctk on PATH
    gpu_smoke_test: GpuSmokeTest | None = None

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes

    @property
    def cdi_gpus(self) -> bool:
        return bool(self.cdi_nvidia_specs)


@dataclass(frozen=True)
class PlatformFacts:
    kind: str = "bare-metal"  # vast.ai | runpod | container | bare-metal
    evidence: tuple[str, ...] = ()
    instance_id: str | None = None
    virtualization: str | None = None  # kvm, vmware, ... when on a VM


@dataclass(frozen=True)
class HfFacts:
    token_present: bool = False
    token_source: str | None = None  # env:HF_TOKEN | file:/root/.cache/huggingface/token
    token_masked: str | None = None
    token_valid: bool | None = None  # None: not checked (offline)
    token_user: str | None = None
    online: bool | None = None
    offline_mode: bool = False  # HF_HUB_OFFLINE set
    error: str | None = None
    cache_dir: str | None = None
    cache_size_mib: int | None = None
    cache_repos: int | None = None


@dataclass(frozen=True)
class ToolInfo:
    name: str
    path: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """Everything llmops knows about one host. Sections are None when not probed."""

    llmops_version: str
    collected_at: str  # ISO-8601, UTC
    source: str = "local"  # local | ssh:HOST | file:PATH
    nvidia: NvidiaFacts | None = None
    system: SystemFacts | None = None
    docker: DockerFacts | None = None
    platform: PlatformFacts | None = None
    hf: HfFacts | None = None
    tools: tuple[ToolInfo, ...] | None = None

    def tool(self, name: str) -> ToolInfo | None:
        return next((t for t in self.tools or () if t.name == name), None)


# --------------------------------------------------------------------------- serialisation


def to_jsonable(obj: Any) -> Any:
    """Dataclasses → dicts, tuples → lists, recursively (property values are not included)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def _convert(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _convert(args[0], value, where)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, *_) = get_args(tp)
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return from_dict(typing.cast(type, tp), value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build a facts dataclass from its JSON form; unknown keys are ignored (newer writers).

    Raises:
        ValueError: naming the field path and what was expected.
    """
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}".lstrip("."))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where or cls.__name__}: missing field {f.name!r}")
    return cls(**kwargs)


def host_facts_from_json(text: str) -> HostFacts:
    """Parse ``llmops doctor --json`` output (or a bare HostFacts object) into HostFacts."""
    data = json.loads(text)
    if isinstance(data, dict) and "facts" in data and isinstance(data["facts"], dict):
        data = data["facts"]
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return from_dict(HostFacts, data)


__all__ = [
    "SCHEMA_VERSION",
    "DiskInfo",
    "DockerFacts",
    "GpuInfo",
    "GpuLink",
    "GpuProcess",
    "GpuSmokeTest",
    "HfFacts",
    "HostFacts",
    "NvidiaFacts",
    "PlatformFacts",
    "SystemFacts",
    "ToolInfo",
    "field",
    "from_dict",
    "host_facts_from_json",
    "to_jsonable",
]
