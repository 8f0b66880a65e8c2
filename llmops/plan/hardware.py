"""Hardware to plan for: ``--hw`` strings and probed HostFacts, as one list of devices.

``parse_hw("2x24GB")`` gives the same ``GpuInfo`` shape the NVML probe gives, so the estimator
cannot tell a described host from a probed one. Pure: no probing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops.errors import UsageError
from llmops.hw.facts import GpuInfo, HostFacts, NvidiaFacts, SystemFacts

MIB = 1024 * 1024
GIB = 1024 * MIB

# Known cards: name -> (memory MiB as NVML reports it, compute capability).
# "24GB" cards are 24 GiB; NVML totals are slightly below the marketing figure on some parts.
CARDS: dict[str, tuple[int, str | None]] = {
    "H200": (143771, "9.0"),
    "H100": (81559, "9.0"),
    "H100-80GB": (81559, "9.0"),
    "H100-94GB": (95830, "9.0"),
    "H100-NVL": (95830, "9.0"),
    "GH200": (97871, "9.0"),
    "B200": (183359, "10.0"),
    "A100": (81920, "8.0"),
    "A100-80GB": (81920, "8.0"),
    "A100-40GB": (40960, "8.0"),
    "A10G": (23028, "8.6"),
    "A10": (23028, "8.6"),
    "A40": (46068, "8.6"),
    "A6000": (49140, "8.6"),
    "RTX-A6000": (49140, "8.6"),
    "L40S": (46068, "8.9"),
    "L40": (46068, "8.9"),
    "L4": (23034, "8.9"),
    "RTX6000-ADA": (49140, "8.9"),
    "RTX5090": (32607, "12.0"),
    "RTX4090": (24564, "8.9"),
    "RTX4080": (16376, "8.9"),
    "RTX4070TI": (12282, "8.9"),
    "RTX4060TI-16GB": (16380, "8.9"),
    "RTX3090": (24576, "8.6"),
    "RTX3090TI": (24564, "8.6"),
    "RTX3080": (10240, "8.6"),
    "RTX3060": (12288, "8.6"),
    "RTX2080TI": (11264, "7.5"),
    "T4": (15360, "7.5"),
    "V100": (32768, "7.0"),
    "V100-32GB": (32768, "7.0"),
    "V100-16GB": (16384, "7.0"),
    "P100": (16384, "6.0"),
    "MI300X": (196608, None),
}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(G|GB|GIB|M|MB|MIB|T|TB|TIB)?$", re.I)
_GPU = re.compile(r"^(?:(\d+)\s*[x×*]\s*)?(.+)$", re.I)

HW_HELP = (
    "e.g. `--hw 2x24GB`, `--hw 1xA100-80GB`, `--hw 8xH100`, `--hw 24GB+12GB`, "
    "`--hw cpu`, `--hw cpu:64GB`, `--hw 1xRTX4090,ram:64GB`"
)


@dataclass(frozen=True)
class HwSpec:
    """Parsed ``--hw``: GPUs (as NVML would report them) and, if stated, the host RAM."""

    gpus: tuple[GpuInfo, ...]
    ram_mib: int | None = None
    cpu_only: bool = False


def _size_mib(text: str) -> int | None:
    m = _SIZE.match(text.strip())
    if not m:
        return None
    value = float(m.group(1))
    unit = (m.group(2) or "GB").upper()
    if unit.startswith("T"):
        return int(value * 1024 * 1024)
    if unit.startswith("M"):
        return int(value)
    return int(value * 1024)


def _card(text: str) -> tuple[str, int, str | None] | None:
    key = re.sub(r"[\s_]+", "-", text.strip().upper())
    key = key.removeprefix("NVIDIA-").removeprefix("GEFORCE-")
    key = re.sub(r"^RTX-(\d)", r"RTX\1", key)
    if key in CARDS:
        mib, cc = CARDS[key]
        return key, mib, cc
    # "A100-80GB"-like names whose size we can read even if the suffix form differs
    m = re.match(r"^([A-Z0-9-]+?)-?(\d+)(GB|G)$", key)
    if m and m.group(1).rstrip("-") in CARDS:
        _, cc = CARDS[m.group(1).rstrip("-")]
        return key, int(m.group(2)) * 1024, cc
    return None


def parse_hw(text: str) -> HwSpec:
    """Parse a ``--hw`` description into GPUs and host RAM.

    Accepted: ``2x24GB``, ``24GB``, ``1xA100-80GB``, ``8xH100``, ``2xRTX4090``, mixed lists
    joined by ``+`` or ``,`` (``24GB+12GB``), ``cpu``, ``cpu:64GB``, ``ram:64GB``.

    Raises:
        UsageError: naming the part that could not be read.
    """
    if not text or not text.strip():
        raise UsageError("--hw is empty", HW_HELP)
    gpus: list[GpuInfo] = []
    ram: int | None = None
    cpu_only = False
    for raw in re.split(r"[+,]", text):
        part = raw.strip()
        if not part:
            raise UsageError(f"malformed --hw {text!r}: an empty part", HW_HELP)
        low = part.lower()
        if low == "cpu" or low.startswith(("cpu:", "cpu-", "ram:", "ram-")):
            if low.startswith("cpu"):
                cpu_only = True
            if ":" in low or "-" in low:
                size = _size_mib(re.split(r"[:-]", part, maxsplit=1)[1])
                if size is None or size <= 0:
                    raise UsageError(f"malformed --hw part {part!r}: RAM size unreadable", HW_HELP)
                ram = size
            continue
        m = _GPU.match(part)
        if not m:
            raise UsageError(f"malformed --hw part {part!r}", HW_HELP)
        count = int(m.group(1)) if m.group(1) else 1
        if count <= 0 or count > 64:
            raise UsageError(f"malformed --hw part {part!r}: {count} GPUs", HW_HELP)
        what = m.group(2).strip()
        size = _size_mib(what)
        if size is not None:
            name, cc = f"{size // 1024}GB GPU", None
        else:
            card = _card(what)
            if card is None:
                raise UsageError(
                    f"malformed --hw part {part!r}: unknown GPU {what!r}",
                    f"give the memory per GPU (`--hw {count}x24GB`) or a known card: "
                    + ", ".join(sorted(CARDS)),
                )
            name, size, cc = card
        if size <= 0:
            raise UsageError(f"malformed --hw part {part!r}: zero memory", HW_HELP)
        for _ in range(count):
            gpus.append(
                GpuInfo(
                    index=len(gpus),
                    name=name,
                    memory_total_mib=size,
                    memory_used_mib=0,
                    memory_free_mib=size,
                    compute_capability=cc,
                )
            )
    if cpu_only and gpus:
        raise UsageError(f"malformed --hw {text!r}: `cpu` means no GPUs", HW_HELP)
    return HwSpec(gpus=tuple(gpus), ram_mib=ram, cpu_only=cpu_only or not gpus)


def facts_from_hw(spec: HwSpec, base: HostFacts) -> HostFacts:
    """``base`` (e.g. the local probe, or a bare HostFacts) with its GPUs/RAM replaced."""
    from dataclasses import replace

    system = base.system or SystemFacts()
    if spec.ram_mib is not None:
        system = replace(system, ram_total_mib=spec.ram_mib, ram_available_mib=spec.ram_mib)
    return replace(
        base,
        source="hw",
        nvidia=NvidiaFacts(gpus=spec.gpus, error=None if spec.gpus else "no GPUs (--hw)"),
        system=system,
    )


# ------------------------------------------------------------------------------ devices


@dataclass(frozen=True)
class Device:
    """Memory the estimator may place weights in: one GPU, or the host's RAM."""

    kind: str  # gpu | cpu
    index: int | None
    name: str
    capacity_bytes: int
    in_use_bytes: int = 0  # held by other processes (probed hosts only)
    compute_capability: str | None = None

    @property
    def label(self) -> str:
        return f"GPU {self.index}" if self.kind == "gpu" else "CPU RAM"


def devices_from_facts(facts: HostFacts) -> tuple[tuple[Device, ...], Device | None]:
    """The healthy GPUs and the host RAM (``None`` when unknown) of a HostFacts."""
    gpus: list[Device] = []
    if facts.nvidia is not None:
        for g in facts.nvidia.healthy_gpus:
            if not g.memory_total_mib:
                continue
            used = 0
            if g.memory_free_mib is not None:
                used = max(0, g.memory_total_mib - g.memory_free_mib)
            elif g.memory_used_mib is not None:
                used = g.memory_used_mib
            gpus.append(
                Device(
                    kind="gpu",
                    index=g.index,
                    name=g.name or f"GPU {g.index}",
                    capacity_bytes=g.memory_total_mib * MIB,
                    in_use_bytes=used * MIB,
                    compute_capability=g.compute_capability,
                )
            )
    host: Device | None = None
    sysf = facts.system
    if sysf is not None and sysf.ram_total_mib:
        avail = sysf.ram_available_mib if sysf.ram_available_mib is not None else sysf.ram_total_mib
        host = Device(
            kind="cpu",
            index=None,
            name=sysf.cpu_model or "CPU",
            capacity_bytes=sysf.ram_total_mib * MIB,
            in_use_bytes=max(0, sysf.ram_total_mib - avail) * MIB,
        )
    return tuple(gpus), host


def describe(gpus: tuple[Device, ...], host: Device | None) -> str:
    """``2x NVIDIA GeForce RTX 3090 (24.0 GiB)`` / ``CPU only (62.8 GiB RAM)``."""
    if not gpus:
        ram = f"{host.capacity_bytes / GIB:.1f} GiB RAM" if host else "RAM unknown"
        return f"CPU only ({ram})"
    names: dict[tuple[str, int], int] = {}
    for g in gpus:
        key = (g.name, g.capacity_bytes)
        names[key] = names.get(key, 0) + 1
    return ", ".join(f"{n}x {name} ({cap / GIB:.1f} GiB)" for (name, cap), n in names.items())
