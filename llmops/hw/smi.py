"""Pure parsers of ``nvidia-smi`` text: the ``nvidia`` facts of a host without llmops on it.

Remote hosts that have no llmops are probed pyinfra-style: one ``nvidia-smi --query-gpu``
command runs there, and these functions turn its CSV text into the same ``GpuInfo`` /
``NvidiaFacts`` that the local NVML probe (``hw/nvml.py``) builds. Nothing here runs a command.

Shell equivalents::

    nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits
    nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory,process_name --format=csv,noheader,nounits
    nvidia-smi -q | grep -m1 'CUDA Version'

With ``nounits`` nvidia-smi prints MiB for memory and watts for power; a field the GPU does not
support reads ``[N/A]`` or ``[Not Supported]`` and becomes ``None``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence

from llmops.hw.facts import GpuInfo, GpuProcess, NvidiaFacts

#: What a modern driver answers (``nvidia-smi --help-query-gpu`` names), in GpuInfo order.
QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "memory.used",
    "memory.free",
    "compute_cap",
    "power.draw",
    "power.limit",
    "power.default_limit",
    "power.min_limit",
    "power.max_limit",
    "temperature.gpu",
    "utilization.gpu",
    "ecc.mode.current",
    "ecc.mode.pending",
    "pcie.link.gen.current",
    "pcie.link.gen.max",
    "pcie.link.width.current",
    "pcie.link.width.max",
    "mig.mode.current",
    "mig.mode.pending",
    "driver_version",
)

#: Fields every driver of the last decade answers; used when the full query is rejected
#: (``Field "compute_cap" is not a valid field to query.`` on drivers before 510).
BASIC_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "memory.used",
    "memory.free",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "utilization.gpu",
    "driver_version",
)

APPS_FIELDS: tuple[str, ...] = ("gpu_uuid", "pid", "used_memory", "process_name")

_INT_FIELDS = {
    "index": "index",
    "memory.total": "memory_total_mib",
    "memory.used": "memory_used_mib",
    "memory.free": "memory_free_mib",
    "temperature.gpu": "temperature_c",
    "utilization.gpu": "utilization_gpu_pct",
    "pcie.link.gen.current": "pcie_gen_current",
    "pcie.link.gen.max": "pcie_gen_max",
    "pcie.link.width.current": "pcie_width_current",
    "pcie.link.width.max": "pcie_width_max",
}
_FLOAT_FIELDS = {
    "power.draw": "power_draw_w",
    "power.limit": "power_limit_w",
    "power.default_limit": "power_default_limit_w",
    "power.min_limit": "power_min_limit_w",
    "power.max_limit": "power_max_limit_w",
}
_STR_FIELDS = {
    "name": "name",
    "uuid": "uuid",
    "pci.bus_id": "pci_bus_id",
    "compute_cap": "compute_capability",
}
_BOOL_FIELDS = {
    "ecc.mode.current": "ecc_enabled",
    "ecc.mode.pending": "ecc_pending",
    "mig.mode.current": "mig_enabled",
    "mig.mode.pending": "mig_pending",
}

# Per-GPU failures nvidia-smi prints instead of a CSV row, or inside one.
_LOST_LINE = re.compile(
    r"Unable to determine the device handle for GPU\s*([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f])?"
)
_ROW_ERRORS = ("[GPU requires reset]", "[Unknown Error]", "[GPU is lost]")


def _na(value: str) -> bool:
    v = value.strip()
    return (
        not v
        or v.startswith("[N/A")
        or v in ("N/A", "[Not Supported]", "Not Supported", "[Unknown Error]")
        or v.startswith("[Insufficient Permissions")
    )


def _int(value: str) -> int | None:
    if _na(value):
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


def _float(value: str) -> float | None:
    if _na(value):
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v == "enabled":
        return True
    if v == "disabled":
        return False
    return None


def _rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in row]
        for row in csv.reader(io.StringIO(text), skipinitialspace=True)
        if row
    ]


def parse_gpu_row(row: Sequence[str], fields: Sequence[str] = QUERY_FIELDS) -> GpuInfo:
    """One CSV row of ``--query-gpu`` output (in ``fields`` order) as a GpuInfo.

    Raises:
        ValueError: when the row has the wrong number of columns or no index.
    """
    if len(row) != len(fields):
        raise ValueError(f"expected {len(fields)} columns, got {len(row)}")
    values = dict(zip(fields, row, strict=True))
    index = _int(values.get("index", ""))
    if index is None:
        raise ValueError(f"no GPU index in row {list(row)!r}")
    for cell in row:
        if cell in _ROW_ERRORS:
            return GpuInfo(
                index=index,
                pci_bus_id=values.get("pci.bus_id") or None,
                error=f"nvidia-smi reports {cell.strip('[]')}",
            )
    kw: dict[str, object] = {}
    for f, v in values.items():
        if f in _INT_FIELDS and f != "index":
            kw[_INT_FIELDS[f]] = _int(v)
        elif f in _FLOAT_FIELDS:
            kw[_FLOAT_FIELDS[f]] = _float(v)
        elif f in _STR_FIELDS:
            kw[_STR_FIELDS[f]] = None if _na(v) else v
        elif f in _BOOL_FIELDS:
            kw[_BOOL_FIELDS[f]] = _bool(v)
    return GpuInfo(index=index, **kw)  # type: ignore[arg-type]


def parse_compute_apps(text: str) -> dict[str, list[GpuProcess]]:
    """``--query-compute-apps=gpu_uuid,pid,used_memory,process_name`` → processes per GPU UUID."""
    out: dict[str, list[GpuProcess]] = {}
    for row in _rows(text):
        if len(row) != len(APPS_FIELDS):
            continue
        uuid, pid, mem, name = row
        pid_i = _int(pid)
        if pid_i is None:
            continue
        out.setdefault(uuid, []).append(
            GpuProcess(pid=pid_i, used_memory_mib=_int(mem), name=None if _na(name) else name)
        )
    return out


def parse_cuda_version(text: str) -> str | None:
    """``CUDA Version : 12.4`` (``nvidia-smi -q``) or ``CUDA Version: 12.4`` (the banner)."""
    m = re.search(r"CUDA Version\s*:\s*([0-9]+\.[0-9]+)", text)
    return m.group(1) if m else None


def failure_facts(output: str, exit_code: int | None) -> NvidiaFacts | None:
    """NvidiaFacts explaining why nvidia-smi gave no GPUs, or None when it did not fail.

    The ``error_kind`` values match the NVML probe's, so the same doctor checks apply.
    """
    low = output.lower()
    text = " ".join(output.split())
    if exit_code == 127 or "command not found" in low or "nvidia-smi: not found" in low:
        return NvidiaFacts(
            error="no NVIDIA driver found (nvidia-smi is not installed)", error_kind="no_driver"
        )
    if "driver/library version mismatch" in low:
        return NvidiaFacts(
            error=(
                "NVIDIA driver/library version mismatch: the driver was upgraded without a "
                f"reboot (nvidia-smi: {text})"
            ),
            error_kind="version_mismatch",
        )
    if "couldn't communicate with the nvidia driver" in low or "driver not loaded" in low:
        return NvidiaFacts(
            error=(
                "the NVIDIA driver is installed but its kernel module is not loaded "
                f"(nvidia-smi: {text})"
            ),
            error_kind="driver_not_loaded",
        )
    if "insufficient permissions" in low and "failed to initialize nvml" in low:
        return NvidiaFacts(
            error=f"no permission to open the NVIDIA devices /dev/nvidia* (nvidia-smi: {text})",
            error_kind="no_permission",
        )
    if "no devices were found" in low:
        return NvidiaFacts(error="the NVIDIA driver is loaded but reports no GPUs", gpus=())
    return None


def parse_query_gpu(
    text: str,
    fields: Sequence[str] = QUERY_FIELDS,
    *,
    exit_code: int | None = 0,
    apps_text: str = "",
    cuda_text: str = "",
) -> NvidiaFacts:
    """``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` output → NvidiaFacts.

    Args:
        text: stdout and stderr of the query (error lines are recognised).
        fields: the query's field list, in order.
        exit_code: nvidia-smi's exit status (127: not installed).
        apps_text: output of ``--query-compute-apps`` (processes per GPU), optional.
        cuda_text: text containing ``CUDA Version`` (``nvidia-smi -q``), optional.

    A line nvidia-smi prints for a GPU it cannot reach (``Unable to determine the device handle
    for GPU 0000:41:00.0: Unknown Error``) becomes a GpuInfo with ``error`` set; the others
    still report.
    """
    failed = failure_facts(text, exit_code)
    if failed is not None:
        return failed
    gpus: list[GpuInfo] = []
    lost: list[tuple[str | None, str]] = []
    driver = None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LOST_LINE.search(line)
        if m:
            lost.append((m.group(1), " ".join(line.split())))
            continue
        (row,) = _rows(line) or [[]]
        try:
            gpu = parse_gpu_row(row, fields)
        except ValueError:
            continue
        if "driver_version" in fields and driver is None:
            v = row[list(fields).index("driver_version")]
            driver = None if _na(v) else v
        gpus.append(gpu)
    used = {g.index for g in gpus}
    next_index = 0
    for bus_id, line in lost:
        while next_index in used:
            next_index += 1
        used.add(next_index)
        gpus.append(GpuInfo(index=next_index, pci_bus_id=bus_id, error=f"nvidia-smi: {line}"))
    if apps_text:
        apps = parse_compute_apps(apps_text)
        gpus = [
            g
            if g.error or g.uuid is None
            else dataclasses.replace(g, processes=tuple(apps.get(g.uuid, ())))
            for g in gpus
        ]
    gpus.sort(key=lambda g: g.index)
    if not gpus and exit_code not in (0, None):
        detail = " ".join(text.split()) or "no output"
        return NvidiaFacts(
            error=f"nvidia-smi failed (exit {exit_code}): {detail}", error_kind="unknown"
        )
    return NvidiaFacts(
        driver_version=driver,
        cuda_driver_version=parse_cuda_version(cuda_text),
        gpus=tuple(gpus),
    )


__all__ = [
    "APPS_FIELDS",
    "BASIC_FIELDS",
    "QUERY_FIELDS",
    "failure_facts",
    "parse_compute_apps",
    "parse_cuda_version",
    "parse_gpu_row",
    "parse_query_gpu",
]
