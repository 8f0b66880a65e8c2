"""A plain fake of the ``pynvml`` module, driven by a JSON fixture (no GPU on CI machines).

It exposes the functions and constants ``llmops.hw.libnvml`` and its users (``llmops.hw.nvml``,
``llmops.run.gpu_admin``) call, with nvidia-ml-py's own names,
argument shapes, return types and units (bytes, milliwatts, ints, ``[current, pending]`` lists,
structs with ``busId`` as bytes) and raises the REAL ``pynvml`` exception classes. Like ctypes,
``nvmlDeviceGetP2PStatus`` raises ``ctypes.ArgumentError`` for a non-int caps index, which is
what happens with ``pynvml.NVML_P2P_CAPS_INDEX_READ == (0,)`` (ops.md §0 item 4).

Fixture format (``tests/fixtures/nvml/*.json``)::

    {
      "description": "...",
      "init_error": null,                       # or an error name, e.g. "LibraryNotFound"
      "driver_version": "550.54.15",
      "cuda_driver_version": 12040,
      "nvml_version": "12.550.54.15",
      "missing_functions": ["nvmlDeviceGetTemperatureV"],   # raise FunctionNotFound
      "errors": {"nvmlDeviceGetEccMode": "NotSupported"},   # for every device
      "device_defaults": { ...device fields shared by all devices... },
      "devices": [
        {
          "name": "...", "uuid": "GPU-...", "pci_bus_id": "00000000:18:00.0",
          "memory_bytes": {"total": 0, "reserved": 0, "used": 0, "free": 0},   # v2 fields
          "compute_capability": [9, 0],
          "power_mw": {"usage": 0, "limit": 0, "enforced_limit": 0, "default_limit": 0,
                       "min_limit": 0, "max_limit": 0},
          "temperature_c": 30,
          "utilization_pct": {"gpu": 0, "memory": 0},
          "ecc_mode": [1, 1], "mig_mode": [0, 0],
          "pcie": {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16},
          "processes": [{"pid": 1, "used_bytes": 0 | null, "visible_name": "python3" | null}],
          "nvlinks": [{"count": 18, "state": 1, "remote_type": "SWITCH" | "GPU",
                       "remote_pci_bus_id": "..."}],        # absent: NVLink NotSupported
          "errors": {"*": "GpuIsLost"}                       # "*" = every call on this device
        }
      ],
      "topology": [["X", "NODE"], ["NODE", "X"]],   # nvidia-smi topo -m names
      "p2p": {"read": "OK" | matrix, "nvlink": "NOT_SUPPORTED" | matrix}   # NVML_P2P_STATUS_*
    }

Error names are the ``pynvml.NVMLError_<Name>`` suffixes (``NotSupported``, ``GpuIsLost``...) or
integer NVML error codes.
"""

from __future__ import annotations

import copy
import ctypes
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

_TOPOLOGY = {
    "X": pynvml.NVML_TOPOLOGY_INTERNAL,
    "INTERNAL": pynvml.NVML_TOPOLOGY_INTERNAL,
    "PIX": pynvml.NVML_TOPOLOGY_SINGLE,
    "PXB": pynvml.NVML_TOPOLOGY_MULTIPLE,
    "PHB": pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    "NODE": pynvml.NVML_TOPOLOGY_NODE,
    "SYS": pynvml.NVML_TOPOLOGY_SYSTEM,
}
_NVLINK_DEVICE_TYPE = {
    "GPU": pynvml.NVML_NVLINK_DEVICE_TYPE_GPU,
    "IBMNPU": pynvml.NVML_NVLINK_DEVICE_TYPE_IBMNPU,
    "SWITCH": pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
    "UNKNOWN": pynvml.NVML_NVLINK_DEVICE_TYPE_UNKNOWN,
}


def nvml_error(name_or_code: str | int) -> pynvml.NVMLError:
    """A real pynvml exception instance: ``"GpuIsLost"`` or ``15`` → ``NVMLError_GpuIsLost()``."""
    if isinstance(name_or_code, int):
        return pynvml.NVMLError(name_or_code)
    cls = getattr(pynvml, f"NVMLError_{name_or_code}", None)
    if cls is None:
        raise ValueError(f"unknown NVML error name {name_or_code!r}")
    return cls()


@dataclass(frozen=True)
class FakeHandle:
    """What ``nvmlDeviceGetHandleByIndex`` returns (a ``c_nvmlDevice_t`` pointer in pynvml)."""

    index: int


class FakeNvml:
    """Stands in for the ``pynvml`` module. Records every call name in ``calls``."""

    # Exceptions and constants, taken from the real module (including its bugs).
    NVMLError = pynvml.NVMLError
    NVMLLibraryMismatchError = pynvml.NVMLLibraryMismatchError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_FEATURE_DISABLED = pynvml.NVML_FEATURE_DISABLED
    NVML_FEATURE_ENABLED = pynvml.NVML_FEATURE_ENABLED
    NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_NVLINK_MAX_LINKS = pynvml.NVML_NVLINK_MAX_LINKS
    NVML_NVLINK_DEVICE_TYPE_GPU = pynvml.NVML_NVLINK_DEVICE_TYPE_GPU
    NVML_NVLINK_DEVICE_TYPE_SWITCH = pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH
    NVML_P2P_CAPS_INDEX_READ = pynvml.NVML_P2P_CAPS_INDEX_READ  # the (0,) tuple bug, on purpose
    NVML_P2P_CAPS_INDEX_WRITE = pynvml.NVML_P2P_CAPS_INDEX_WRITE
    NVML_P2P_CAPS_INDEX_NVLINK = pynvml.NVML_P2P_CAPS_INDEX_NVLINK
    nvmlMemory_v2 = pynvml.nvmlMemory_v2
    nvmlTemperature_v1 = pynvml.nvmlTemperature_v1

    def __init__(self, data: dict[str, Any], *, name: str = "fake") -> None:
        self.name = name
        self.data = data
        defaults = data.get("device_defaults", {})
        self.devices: list[dict[str, Any]] = [_merge(defaults, d) for d in data.get("devices", [])]
        self.errors: dict[str, str | int] = dict(data.get("errors", {}))
        for fn in data.get("missing_functions", []):
            self.errors[fn] = "FunctionNotFound"
        self.initialized = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: list[str] = []
        self.writes: list[tuple[str, int, int]] = []

    @classmethod
    def from_fixture(cls, path: str | Path) -> FakeNvml:
        path = Path(path)
        return cls(json.loads(path.read_text()), name=path.stem)

    # ------------------------------------------------------------------ test helpers

    def set_error(self, function: str, error: str | int | None, device: int | None = None) -> None:
        """Make ``function`` raise ``error`` (None: stop raising), on one device or everywhere."""
        table = self.errors if device is None else self.devices[device].setdefault("errors", {})
        if error is None:
            table.pop(function, None)
        else:
            table[function] = error

    def visible_process_name(self, pid: int) -> str | None:
        """What psutil would see for ``pid`` on the fixture's host (None: not visible)."""
        for dev in self.devices:
            for proc in dev.get("processes") or []:
                if proc["pid"] == pid:
                    name = proc.get("visible_name")
                    return None if name is None else str(name)
        return None

    # ------------------------------------------------------------------ plumbing

    def _enter(self, function: str, *handles: Any) -> list[dict[str, Any]]:
        self.calls.append(function)
        if not self.initialized:
            raise nvml_error("Uninitialized")
        if function in self.errors:
            raise nvml_error(self.errors[function])
        devs = []
        for handle in handles:
            if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self.devices):
                raise nvml_error("InvalidArgument")
            dev = self.devices[handle.index]
            dev_errors = dev.get("errors", {})
            for key in (function, "*"):
                if key in dev_errors:
                    raise nvml_error(dev_errors[key])
            devs.append(dev)
        return devs

    def _field(self, dev: dict[str, Any], *path: str) -> Any:
        value: Any = dev
        for key in path:
            if not isinstance(value, dict) or value.get(key) is None:
                raise nvml_error("NotSupported")
            value = value[key]
        return value

    def _matrix(self, spec: Any, a: int, b: int, table: dict[str, int] | None = None) -> int:
        token = spec[a][b] if isinstance(spec, list) else spec
        if isinstance(token, int):
            return token
        if table is not None:
            return table[token]
        return int(getattr(pynvml, f"NVML_P2P_STATUS_{token}"))

    # ------------------------------------------------------------------ init / system

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        self.init_calls += 1
        if self.data.get("init_error"):
            raise nvml_error(self.data["init_error"])
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")
        self.shutdown_calls += 1
        if not self.initialized:
            raise nvml_error("Uninitialized")
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return str(self.data["driver_version"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return int(self.data["cuda_driver_version"])

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion")
        return str(self.data["nvml_version"])

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.devices):
            raise nvml_error("InvalidArgument")
        errors = self.devices[index].get("errors", {})
        for key in ("nvmlDeviceGetHandleByIndex", "*"):
            if key in errors:
                raise nvml_error(errors[key])
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeHandle:
        """Like pynvml (``convertStrBytes``: a str goes to NVML as bytes): NotFound when no GPU
        has that UUID (NVML_ERROR_NOT_FOUND in nvml.h)."""
        self._enter("nvmlDeviceGetHandleByUUID")
        wanted = uuid if isinstance(uuid, bytes) else str(uuid).encode()
        for index, dev in enumerate(self.devices):
            if dev.get("uuid") is not None and str(dev["uuid"]).encode() == wanted:
                errors = dev.get("errors", {})
                for key in ("nvmlDeviceGetHandleByUUID", "*"):
                    if key in errors:
                        raise nvml_error(errors[key])
                return FakeHandle(index)
        raise nvml_error("NotFound")

    # ------------------------------------------------------------------ per device

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        (dev,) = self._enter("nvmlDeviceGetName", handle)
        return str(self._field(dev, "name"))

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        (dev,) = self._enter("nvmlDeviceGetUUID", handle)
        return str(self._field(dev, "uuid"))

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> SimpleNamespace:
        (dev,) = self._enter("nvmlDeviceGetPciInfo", handle)
        bus_id = str(self._field(dev, "pci_bus_id")).encode()
        # nvmlPciInfo_t: busId is a c_char array, so bytes on py3.
        return SimpleNamespace(busId=bus_id, busIdLegacy=bus_id[4:])

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> Any:
        if version:
            (dev,) = self._enter("nvmlDeviceGetMemoryInfo_v2", handle)
            if version != pynvml.nvmlMemory_v2:
                raise nvml_error("ArgumentVersionMismatch")
            mem = self._field(dev, "memory_bytes")
            return SimpleNamespace(
                version=version,
                total=mem["total"],
                reserved=mem["reserved"],
                free=mem["free"],
                used=mem["used"],
            )
        (dev,) = self._enter("nvmlDeviceGetMemoryInfo", handle)
        mem = self._field(dev, "memory_bytes")
        # v1 counts the driver-reserved memory as used.
        return SimpleNamespace(
            total=mem["total"], free=mem["free"], used=mem["used"] + mem["reserved"]
        )

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        (dev,) = self._enter("nvmlDeviceGetCudaComputeCapability", handle)
        major, minor = self._field(dev, "compute_capability")
        return (int(major), int(minor))

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetPowerUsage", handle)
        return int(self._field(dev, "power_mw", "usage"))

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetPowerManagementLimit", handle)
        return int(self._field(dev, "power_mw", "limit"))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetEnforcedPowerLimit", handle)
        return int(self._field(dev, "power_mw", "enforced_limit"))

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        return int(self._field(dev, "power_mw", "default_limit"))

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: FakeHandle) -> list[int]:
        (dev,) = self._enter("nvmlDeviceGetPowerManagementLimitConstraints", handle)
        return [
            int(self._field(dev, "power_mw", "min_limit")),
            int(self._field(dev, "power_mw", "max_limit")),
        ]

    # ------------------------------------------------------------------ setters (root-only)
    # Like NVML: a value outside the constraints is InvalidArgument; permission problems are
    # injected with ``set_error(name, "NoPermission")``. ``writes`` records what was written.

    def nvmlDeviceSetPowerManagementLimit(self, handle: FakeHandle, limit: int) -> None:
        (dev,) = self._enter("nvmlDeviceSetPowerManagementLimit", handle)
        if not isinstance(limit, int):
            raise ctypes.ArgumentError("argument 2: TypeError: wrong type")
        lo = int(self._field(dev, "power_mw", "min_limit"))
        hi = int(self._field(dev, "power_mw", "max_limit"))
        if not lo <= limit <= hi:
            raise nvml_error("InvalidArgument")
        dev["power_mw"]["limit"] = dev["power_mw"]["enforced_limit"] = limit
        self.writes.append(("nvmlDeviceSetPowerManagementLimit", handle.index, limit))

    def nvmlDeviceSetEccMode(self, handle: FakeHandle, ecc: int) -> None:
        (dev,) = self._enter("nvmlDeviceSetEccMode", handle)
        mode = self._field(dev, "ecc_mode")
        if ecc not in (pynvml.NVML_FEATURE_DISABLED, pynvml.NVML_FEATURE_ENABLED):
            raise nvml_error("InvalidArgument")
        dev["ecc_mode"] = [mode[0], int(ecc)]  # pending until a reboot
        self.writes.append(("nvmlDeviceSetEccMode", handle.index, int(ecc)))

    def nvmlDeviceGetTemperatureV(
        self, handle: FakeHandle, sensor: int, version: int = pynvml.nvmlTemperature_v1
    ) -> int:
        (dev,) = self._enter("nvmlDeviceGetTemperatureV", handle)
        if version != pynvml.nvmlTemperature_v1:
            raise nvml_error("ArgumentVersionMismatch")
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise nvml_error("InvalidArgument")
        return int(self._field(dev, "temperature_c"))

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        (dev,) = self._enter("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise nvml_error("InvalidArgument")
        return int(self._field(dev, "temperature_c"))

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> SimpleNamespace:
        (dev,) = self._enter("nvmlDeviceGetUtilizationRates", handle)
        util = self._field(dev, "utilization_pct")
        return SimpleNamespace(gpu=int(util["gpu"]), memory=int(util["memory"]))

    def nvmlDeviceGetEccMode(self, handle: FakeHandle) -> list[int]:
        (dev,) = self._enter("nvmlDeviceGetEccMode", handle)
        return [int(v) for v in self._field(dev, "ecc_mode")]

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        (dev,) = self._enter("nvmlDeviceGetMigMode", handle)
        return [int(v) for v in self._field(dev, "mig_mode")]

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetCurrPcieLinkGeneration", handle)
        return int(self._field(dev, "pcie", "gen_current"))

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetMaxPcieLinkGeneration", handle)
        return int(self._field(dev, "pcie", "gen_max"))

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetCurrPcieLinkWidth", handle)
        return int(self._field(dev, "pcie", "width_current"))

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: FakeHandle) -> int:
        (dev,) = self._enter("nvmlDeviceGetMaxPcieLinkWidth", handle)
        return int(self._field(dev, "pcie", "width_max"))

    def _procs(self, dev: dict[str, Any]) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                pid=int(p["pid"]),
                usedGpuMemory=p.get("used_bytes"),  # None: NVML_VALUE_NOT_AVAILABLE
                gpuInstanceId=0xFFFFFFFF,
                computeInstanceId=0xFFFFFFFF,
            )
            for p in dev.get("processes") or []
        ]

    # pynvml's un-suffixed name calls the C symbol ..._v3, through the same version-mismatch
    # wrapper as nvidia-ml-py: on a driver without _v3 (older than 510), FunctionNotFound
    # becomes NVMLLibraryMismatchError, which is not an NVMLError.
    @pynvml.throwOnVersionMismatch
    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[SimpleNamespace]:
        (dev,) = self._enter("nvmlDeviceGetComputeRunningProcesses_v3", handle)
        return self._procs(dev)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeHandle) -> list[SimpleNamespace]:
        (dev,) = self._enter("nvmlDeviceGetComputeRunningProcesses_v2", handle)
        return self._procs(dev)

    # ------------------------------------------------------------------ links

    def _nvlinks(self, dev: dict[str, Any]) -> list[dict[str, Any]]:
        if dev.get("nvlinks") is None:
            raise nvml_error("NotSupported")
        expanded: list[dict[str, Any]] = []
        for entry in dev["nvlinks"]:
            expanded.extend([entry] * int(entry.get("count", 1)))
        return expanded

    def _nvlink(self, dev: dict[str, Any], link: int) -> dict[str, Any]:
        links = self._nvlinks(dev)
        if not isinstance(link, int) or not 0 <= link < len(links):
            raise nvml_error("InvalidArgument")
        return links[link]

    def nvmlDeviceGetNvLinkState(self, handle: FakeHandle, link: int) -> int:
        (dev,) = self._enter("nvmlDeviceGetNvLinkState", handle)
        return int(self._nvlink(dev, link).get("state", 1))

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: FakeHandle, link: int) -> int:
        (dev,) = self._enter("nvmlDeviceGetNvLinkRemoteDeviceType", handle)
        return int(_NVLINK_DEVICE_TYPE[self._nvlink(dev, link).get("remote_type", "GPU")])

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: FakeHandle, link: int) -> SimpleNamespace:
        (dev,) = self._enter("nvmlDeviceGetNvLinkRemotePciInfo_v2", handle)
        bus_id = str(self._nvlink(dev, link)["remote_pci_bus_id"]).encode()
        return SimpleNamespace(busId=bus_id, busIdLegacy=bus_id[4:])

    def nvmlDeviceGetTopologyCommonAncestor(self, a: FakeHandle, b: FakeHandle) -> int:
        self._enter("nvmlDeviceGetTopologyCommonAncestor", a, b)
        if "topology" not in self.data:
            raise nvml_error("NotSupported")
        return self._matrix(self.data["topology"], a.index, b.index, _TOPOLOGY)

    def nvmlDeviceGetP2PStatus(self, a: FakeHandle, b: FakeHandle, p2pIndex: Any) -> int:
        # ctypes converts only ints/bytes/None/ctypes instances for an argtypes-less foreign
        # function; pynvml.NVML_P2P_CAPS_INDEX_READ == (0,) fails here before NVML is reached.
        if not isinstance(p2pIndex, int):
            raise ctypes.ArgumentError(
                "argument 3: TypeError: Don't know how to convert parameter 3"
            )
        self._enter("nvmlDeviceGetP2PStatus", a, b)
        keys = {
            pynvml.NVML_P2P_CAPS_INDEX_READ[0]: "read",
            pynvml.NVML_P2P_CAPS_INDEX_WRITE: "write",
            pynvml.NVML_P2P_CAPS_INDEX_NVLINK: "nvlink",
            pynvml.NVML_P2P_CAPS_INDEX_ATOMICS: "atomics",
            pynvml.NVML_P2P_CAPS_INDEX_PCI: "pci",
        }
        if p2pIndex not in keys:
            raise nvml_error("InvalidArgument")
        spec = self.data.get("p2p", {}).get(keys[p2pIndex])
        if spec is None:
            return int(pynvml.NVML_P2P_STATUS_NOT_SUPPORTED)
        return self._matrix(spec, a.index, b.index)


def _merge(defaults: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    """Device fields over ``device_defaults``; dict-valued fields merge one level deep."""
    out = copy.deepcopy(defaults)
    for key, value in device.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out
