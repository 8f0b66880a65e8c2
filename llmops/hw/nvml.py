"""NVIDIA GPUs through NVML (``nvidia-ml-py``, import name ``pynvml``): the ``nvidia`` facts.

NVML itself is reached through :mod:`llmops.hw.libnvml` (the one adapter, shared with the power
and ECC settings in :mod:`llmops.run.gpu_admin`). Every read goes through its choke point
(:meth:`~llmops.hw.libnvml.Nvml.query`, after nvitop's ``nvmlQuery``) that turns "this field is
not available here" errors (NotSupported, NoPermission, FunctionNotFound, InvalidArgument) into
``None``, so consumer GPUs, vGPUs, MIG slices and old drivers still produce facts. Errors that
mean the GPU itself is broken (GpuIsLost, Unknown, ...) turn that GPU into an error row; the
other GPUs still report.

Units: NVML reports bytes and milliwatts; the facts carry MiB and watts.
Facts about NVML itself (function names, error codes, the P2P tuple bug) are from
``/work/shared/reference/ops.md`` section 5 (nvidia-ml-py 13.615.71).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmops.hw.facts import GpuInfo, GpuLink, GpuProcess, NvidiaFacts
from llmops.hw.libnvml import (
    ERR_GPU_IS_LOST,
    ERR_RESET_REQUIRED,
    FIELD_UNAVAILABLE,
    TRY_OLDER_CALL,
    Nvml,
    NvmlStartError,
    session,
)
from llmops.hw.libnvml import error_code as _code
from llmops.hw.libnvml import text as _text

MIB = 1024 * 1024

# Argument values (pynvml.py constants; NVML C ABI).
_NVML_TEMPERATURE_GPU = 0
_NVML_FEATURE_ENABLED = 1
_NVML_DEVICE_MIG_ENABLE = 1
_NVML_NVLINK_DEVICE_TYPE_SWITCH = 2
_NVML_NVLINK_MAX_LINKS_DEFAULT = 36
# pynvml defines NVML_P2P_CAPS_INDEX_READ as the tuple ``(0,)`` (a stray trailing comma at
# pynvml.py l.369 in nvidia-ml-py 13.615.71); ctypes rejects a tuple argument with
# ctypes.ArgumentError. So pass the integer 0 ourselves. See ops.md section 0 item 4 and §5.2.
_NVML_P2P_CAPS_INDEX_READ = 0
_NVML_P2P_CAPS_INDEX_NVLINK = 2

#: nvmlDeviceGetTopologyCommonAncestor values → the names ``nvidia-smi topo -m`` prints.
TOPOLOGY_NAMES: dict[int, str] = {
    0: "INTERNAL",  # NVML_TOPOLOGY_INTERNAL: same board (e.g. a dual-GPU card)
    10: "PIX",  # NVML_TOPOLOGY_SINGLE: one PCIe switch
    20: "PXB",  # NVML_TOPOLOGY_MULTIPLE: several PCIe switches, no host bridge
    30: "PHB",  # NVML_TOPOLOGY_HOSTBRIDGE: through a PCIe host bridge
    40: "NODE",  # NVML_TOPOLOGY_NODE (=CPU): host bridges within one NUMA node
    50: "SYS",  # NVML_TOPOLOGY_SYSTEM: across NUMA nodes (SMP interconnect)
}

#: nvmlDeviceGetP2PStatus values (NVML_P2P_STATUS_*, pynvml.py l.382-389).
P2P_STATUS_NAMES: dict[int, str] = {
    0: "ok",
    1: "chipset_not_supported",
    2: "gpu_not_supported",
    3: "ioh_topology_not_supported",
    4: "disabled_by_regkey",
    5: "not_supported",
    6: "unknown",
}

ProcessNameFn = Callable[[int], "str | None"]


def _mib(value: Any) -> int | None:
    return None if value is None else int(value) // MIB


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else round(int(milliwatts) / 1000.0, 3)


def cuda_version_string(version: int) -> str:
    """``12040`` → ``"12.4"`` (nvitop ``api/device.py``: ``major=v//1000, minor=(v%1000)//10``)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def _bus_key(bus_id: str | None) -> tuple[int, ...] | str | None:
    """Normalise a PCI bus id so ``00000000:2A:00.0`` and ``0000:2a:00.0`` compare equal."""
    if not bus_id:
        return None
    text = bus_id.strip().lower()
    try:
        domain, bus, devfn = text.split(":")
        dev, fn = devfn.split(".")
        return (int(domain, 16), int(bus, 16), int(dev, 16), int(fn, 16))
    except ValueError:
        return text


def _psutil_process_name(pid: int) -> str | None:
    """The name of ``pid`` as this host's process table shows it, or None when not visible.

    In a container NVML reports host PIDs, which are usually not visible (or are a different
    process) inside the container's PID namespace; the name is best effort.
    """
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    try:
        return str(psutil.Process(pid).name())
    except (psutil.Error, OSError, ValueError):
        return None


def _gpu_error(exc: Exception) -> str:
    code = _code(exc)
    if code == ERR_GPU_IS_LOST:
        return f"GPU is lost (NVML: {exc})"
    if code == ERR_RESET_REQUIRED:
        return f"GPU requires a reset (NVML: {exc})"
    return f"GPU query failed (NVML: {exc})"


# --------------------------------------------------------------------------- per-GPU probes


def _memory(nv: Nvml, handle: Any) -> Any:
    """Memory info struct (bytes): ``nvidia-smi --query-gpu=memory.total,memory.used,memory.free``.

    Tries ``nvmlDeviceGetMemoryInfo_v2`` (driver >= 515; ``used`` excludes the driver's reserved
    memory, as nvidia-smi shows it) and falls back to v1 on FunctionNotFound or
    ArgumentVersionMismatch (gpustat ``nvml.py`` does the same).
    """
    v2 = nv.constant("nvmlMemory_v2", None)
    if v2 is not None:
        try:
            return nv.call("nvmlDeviceGetMemoryInfo", handle, version=v2)
        except nv.error as exc:
            if _code(exc) not in TRY_OLDER_CALL:
                if _code(exc) in FIELD_UNAVAILABLE:
                    return None
                raise
    return nv.query("nvmlDeviceGetMemoryInfo", handle)


def _temperature(nv: Nvml, handle: Any) -> int | None:
    """GPU core temperature in °C: ``nvidia-smi --query-gpu=temperature.gpu``.

    ``nvmlDeviceGetTemperature`` is deprecated (to be removed in CUDA 14), so try
    ``nvmlDeviceGetTemperatureV`` first and fall back when the driver lacks it.
    """
    try:
        value = nv.call("nvmlDeviceGetTemperatureV", handle, _NVML_TEMPERATURE_GPU)
    except nv.error as exc:
        if _code(exc) not in TRY_OLDER_CALL:
            if _code(exc) in FIELD_UNAVAILABLE:
                return None
            raise
        value = nv.query("nvmlDeviceGetTemperature", handle, _NVML_TEMPERATURE_GPU)
    return None if value is None else int(value)


def _processes(nv: Nvml, handle: Any, process_name: ProcessNameFn) -> tuple[GpuProcess, ...] | None:
    """Compute processes: ``nvidia-smi --query-compute-apps=pid,used_memory,process_name``.

    ``usedGpuMemory`` is bytes, or None when NVML cannot tell (WDDM, some containers).
    Drivers older than 510 lack the v3 call that pynvml uses; fall back to ``_v2``.
    """
    try:
        procs = nv.call("nvmlDeviceGetComputeRunningProcesses", handle)
    except nv.mismatch_error as exc:
        # The driver lacks the call these bindings use (an old driver, new nvidia-ml-py).
        if not nv.mismatches:
            nv.mismatches.append(str(exc))
        procs = nv.query("nvmlDeviceGetComputeRunningProcesses_v2", handle)
    except nv.error as exc:
        if _code(exc) not in TRY_OLDER_CALL:
            if _code(exc) in FIELD_UNAVAILABLE:
                return None
            raise
        procs = nv.query("nvmlDeviceGetComputeRunningProcesses_v2", handle)
    if procs is None:
        return None
    out = []
    for proc in procs:
        pid = int(proc.pid)
        used = getattr(proc, "usedGpuMemory", None)
        out.append(GpuProcess(pid=pid, used_memory_mib=_mib(used), name=process_name(pid)))
    return tuple(out)


def _pair(value: Any) -> tuple[Any, Any]:
    """NVML ``[current, pending]`` lists (ECC mode, MIG mode)."""
    if value is None:
        return (None, None)
    current, pending = value
    return (current, pending)


def _probe_gpu(nv: Nvml, index: int, process_name: ProcessNameFn) -> tuple[GpuInfo, Any | None]:
    """One GPU, as ``nvidia-smi -q -i INDEX`` shows it. Returns the info and its handle.

    A fatal NVML error on any query (GpuIsLost, Unknown, ResetRequired, ...) makes the GPU an
    error row, keeping whatever identity (name, UUID, bus id) was read before it.
    """
    got: dict[str, Any] = {}
    try:
        handle = nv.handle(index)
        got["name"] = _text(nv.query("nvmlDeviceGetName", handle))  # name
        got["uuid"] = _text(nv.query("nvmlDeviceGetUUID", handle))  # uuid
        pci = nv.query("nvmlDeviceGetPciInfo", handle)  # pci.bus_id
        got["pci_bus_id"] = None if pci is None else _text(pci.busId)

        mem = _memory(nv, handle)  # memory.total, memory.used, memory.free
        got["memory_total_mib"] = None if mem is None else _mib(mem.total)
        got["memory_used_mib"] = None if mem is None else _mib(mem.used)
        got["memory_free_mib"] = None if mem is None else _mib(mem.free)

        cc = nv.query("nvmlDeviceGetCudaComputeCapability", handle)  # compute_cap
        got["compute_capability"] = None if cc is None else f"{cc[0]}.{cc[1]}"

        got["power_draw_w"] = _watts(nv.query("nvmlDeviceGetPowerUsage", handle))  # power.draw
        # power.limit: what the driver enforces; the management limit when that is unknown.
        limit = nv.query("nvmlDeviceGetEnforcedPowerLimit", handle)
        if limit is None:
            limit = nv.query("nvmlDeviceGetPowerManagementLimit", handle)
        got["power_limit_w"] = _watts(limit)
        got["power_default_limit_w"] = _watts(  # power.default_limit
            nv.query("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        )
        # power.min_limit, power.max_limit
        limits = nv.query("nvmlDeviceGetPowerManagementLimitConstraints", handle)
        got["power_min_limit_w"] = None if limits is None else _watts(limits[0])
        got["power_max_limit_w"] = None if limits is None else _watts(limits[1])

        got["temperature_c"] = _temperature(nv, handle)  # temperature.gpu
        util = nv.query("nvmlDeviceGetUtilizationRates", handle)  # utilization.gpu
        got["utilization_gpu_pct"] = None if util is None else int(util.gpu)

        ecc_cur, ecc_pend = _pair(nv.query("nvmlDeviceGetEccMode", handle))  # ecc.mode.*
        got["ecc_enabled"] = None if ecc_cur is None else ecc_cur == _NVML_FEATURE_ENABLED
        got["ecc_pending"] = None if ecc_pend is None else ecc_pend == _NVML_FEATURE_ENABLED

        # pcie.link.gen.current, pcie.link.gen.max, pcie.link.width.current, .max
        got["pcie_gen_current"] = nv.query("nvmlDeviceGetCurrPcieLinkGeneration", handle)
        got["pcie_gen_max"] = nv.query("nvmlDeviceGetMaxPcieLinkGeneration", handle)
        got["pcie_width_current"] = nv.query("nvmlDeviceGetCurrPcieLinkWidth", handle)
        got["pcie_width_max"] = nv.query("nvmlDeviceGetMaxPcieLinkWidth", handle)

        mig_cur, mig_pend = _pair(nv.query("nvmlDeviceGetMigMode", handle))  # mig.mode.*
        got["mig_enabled"] = None if mig_cur is None else mig_cur == _NVML_DEVICE_MIG_ENABLE
        got["mig_pending"] = None if mig_pend is None else mig_pend == _NVML_DEVICE_MIG_ENABLE

        got["processes"] = _processes(nv, handle, process_name)
    except nv.error as exc:
        keep = {k: got[k] for k in ("name", "uuid", "pci_bus_id") if k in got}
        return GpuInfo(index=index, error=_gpu_error(exc), **keep), None
    return GpuInfo(index=index, **got), handle


# --------------------------------------------------------------------------- links


class _NvLinkSurvey:
    """Active NVLinks of one GPU: ``nvidia-smi nvlink --status`` / ``nvlink -R``.

    ``direct`` counts links per remote GPU (by normalised PCI bus id); ``switch`` counts links
    to NVSwitches (HGX/DGX boards), which reach every other GPU on the fabric.
    """

    def __init__(self, nv: Nvml, handle: Any) -> None:
        self.direct: dict[Any, int] = {}
        self.switch = 0
        self.failed = False
        max_links = int(nv.constant("NVML_NVLINK_MAX_LINKS", _NVML_NVLINK_MAX_LINKS_DEFAULT))
        for link in range(max_links):
            try:
                state = nv.call("nvmlDeviceGetNvLinkState", handle, link)
            except nv.error as exc:
                if _code(exc) in FIELD_UNAVAILABLE:  # no such link / no NVLink at all
                    continue
                self.failed = True
                return
            if state != 1:  # NVML_FEATURE_ENABLED: link is active
                continue
            try:
                kind = nv.query("nvmlDeviceGetNvLinkRemoteDeviceType", handle, link)
                if kind == _NVML_NVLINK_DEVICE_TYPE_SWITCH:
                    self.switch += 1
                    continue
                remote = nv.query("nvmlDeviceGetNvLinkRemotePciInfo", handle, link)
            except nv.error:
                continue
            key = None if remote is None else _bus_key(_text(remote.busId))
            if key is not None:
                self.direct[key] = self.direct.get(key, 0) + 1

    def count_to(self, other: _NvLinkSurvey, other_bus_id: str | None) -> int | None:
        if self.failed:
            return None
        count = self.direct.get(_bus_key(other_bus_id), 0)
        if self.switch and other.switch:
            count += min(self.switch, other.switch)
        return count


def _link_query(nv: Nvml, name: str, *args: Any) -> Any:
    """Link fields never make a GPU an error row: any NVML error gives None."""
    try:
        return nv.query(name, *args)
    except nv.error:
        return None


def _p2p(nv: Nvml, a: Any, b: Any, caps_index: int) -> str | None:
    status = _link_query(nv, "nvmlDeviceGetP2PStatus", a, b, caps_index)
    return None if status is None else P2P_STATUS_NAMES.get(int(status), "unknown")


def _probe_links(nv: Nvml, gpus: list[tuple[GpuInfo, Any]]) -> tuple[GpuLink, ...]:
    """Every pair of healthy GPUs: ``nvidia-smi topo -m`` and ``nvidia-smi topo -p2p r|n``."""
    surveys = [_NvLinkSurvey(nv, handle) for _, handle in gpus]
    links: list[GpuLink] = []
    for i, (gpu_a, ha) in enumerate(gpus):
        for j in range(i + 1, len(gpus)):
            gpu_b, hb = gpus[j]
            ancestor = _link_query(nv, "nvmlDeviceGetTopologyCommonAncestor", ha, hb)
            links.append(
                GpuLink(
                    gpu_a=gpu_a.index,
                    gpu_b=gpu_b.index,
                    topology=None if ancestor is None else TOPOLOGY_NAMES.get(int(ancestor)),
                    nvlink_count=surveys[i].count_to(surveys[j], gpu_b.pci_bus_id),
                    p2p_read=_p2p(nv, ha, hb, _NVML_P2P_CAPS_INDEX_READ),
                    p2p_nvlink=_p2p(nv, ha, hb, _NVML_P2P_CAPS_INDEX_NVLINK),
                )
            )
    return tuple(links)


# --------------------------------------------------------------------------- entry point


def _probe(nv: Nvml, process_name: ProcessNameFn) -> NvidiaFacts:
    # nvidia-smi --query-gpu=driver_version; the "CUDA Version" in nvidia-smi's header.
    driver = _text(nv.query("nvmlSystemGetDriverVersion"))
    cuda = nv.query("nvmlSystemGetCudaDriverVersion")
    nvml_version = _text(nv.query("nvmlSystemGetNVMLVersion"))
    versions: dict[str, Any] = {
        "driver_version": driver,
        "cuda_driver_version": None if cuda is None else cuda_version_string(int(cuda)),
        "nvml_version": nvml_version,
    }
    try:
        count = nv.count()  # nvidia-smi --query-gpu=count
    except nv.error as exc:
        return NvidiaFacts(
            **versions, error=f"could not count GPUs (NVML: {exc})", error_kind="unknown"
        )
    probed = [_probe_gpu(nv, i, process_name) for i in range(count)]
    healthy = [(info, handle) for info, handle in probed if handle is not None]
    links = _probe_links(nv, healthy) if len(healthy) > 1 else ()
    return NvidiaFacts(
        **versions,
        gpus=tuple(info for info, _ in probed),
        links=links,
        library_mismatch=nv.mismatches[0] if nv.mismatches else None,
    )


def probe_nvidia(
    nvml: Any | None = None, *, process_name: ProcessNameFn | None = None
) -> NvidiaFacts:
    """The NVIDIA driver, its GPUs and how they are linked (``nvidia-smi -q`` + ``topo -m``).

    Never raises for hardware problems: a missing library or driver, a driver/library version
    mismatch, missing permissions or a lost GPU are reported in the facts (``error``,
    ``error_kind``, ``GpuInfo.error``).

    Args:
        nvml: a pynvml-compatible module (tests pass a fake); default the real ``pynvml``.
        process_name: pid → process name (default: psutil, None when not visible here).
    """
    try:
        with session(nvml) as nv:
            return _probe(nv, process_name or _psutil_process_name)
    except NvmlStartError as exc:
        return NvidiaFacts(error=exc.explanation, error_kind=exc.kind)


__all__ = ["MIB", "P2P_STATUS_NAMES", "TOPOLOGY_NAMES", "cuda_version_string", "probe_nvidia"]
