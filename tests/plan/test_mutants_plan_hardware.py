"""plan/hardware.py: ``--hw`` sizes, units, limits and names, and how facts become devices,
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import pytest

from llmops.errors import UsageError
from llmops.hw.facts import GpuInfo, HostFacts, NvidiaFacts, SystemFacts
from llmops.plan.hardware import (
    GIB,
    MIB,
    Device,
    describe,
    devices_from_facts,
    facts_from_hw,
    parse_hw,
)


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("24", 24576),  # no unit: GB
        ("24G", 24576),
        ("24gib", 24576),
        ("1.5GB", 1536),
        ("2048M", 2048),
        ("2048 MiB", 2048),
        ("1TB", 1048576),
        ("0.5t", 524288),
    ],
)
def test_gpu_memory_units(text: str, mib: int) -> None:
    g = parse_hw(f"1x{text}").gpus[0]
    assert g.memory_total_mib == mib and g.memory_free_mib == mib and g.memory_used_mib == 0
    assert g.name == f"{mib // 1024}GB GPU" and g.compute_capability is None


@pytest.mark.parametrize(
    ("text", "mib"),
    [("ram:64GB", 65536), ("ram-512M", 512), ("cpu-16", 16384), ("cpu:1T", 1048576)],
)
def test_ram_sizes(text: str, mib: int) -> None:
    assert parse_hw(text).ram_mib == mib


def test_ram_alone_is_a_cpu_only_host_and_ram_with_gpus_is_not() -> None:
    r = parse_hw("ram:64GB")
    assert r.cpu_only and r.gpus == () and r.ram_mib == 65536
    g = parse_hw("1x24GB,ram:64GB")
    assert not g.cpu_only and len(g.gpus) == 1 and g.ram_mib == 65536


@pytest.mark.parametrize("bad", ["ram:0", "cpu:0GB", "ram:", "ram:-1"])
def test_a_zero_or_missing_ram_size_is_refused(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_hw(bad)
    assert "RAM size unreadable" in e.value.message


def test_gpu_count_limits() -> None:
    assert len(parse_hw("64x24GB").gpus) == 64
    with pytest.raises(UsageError) as e:
        parse_hw("65x24GB")
    assert "65 GPUs" in e.value.message
    with pytest.raises(UsageError):
        parse_hw("0xH100")


def test_zero_memory_is_refused() -> None:
    with pytest.raises(UsageError) as e:
        parse_hw("1x0GB")
    assert "zero memory" in e.value.message


def test_whitespace_only_is_empty() -> None:
    with pytest.raises(UsageError) as e:
        parse_hw("   ")
    assert e.value.message == "--hw is empty"


@pytest.mark.parametrize(
    ("text", "mib", "cc"),
    [
        ("NVIDIA GeForce RTX 4090", 24564, "8.9"),  # as nvidia-smi names it
        ("rtx 3090", 24576, "8.6"),
        ("RTX_A6000", 49140, "8.6"),
        ("a100_40gb", 40960, "8.0"),
        ("H100-80G", 81920, "9.0"),  # size read from the suffix of a known card
        ("L40S-48GB", 49152, "8.9"),
    ],
)
def test_card_names_as_people_write_them(text: str, mib: int, cc: str) -> None:
    g = parse_hw(text).gpus[0]
    assert (g.memory_total_mib, g.compute_capability) == (mib, cc)


def test_an_unknown_card_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as e:
        parse_hw("3xRTX9999")
    assert "unknown GPU 'RTX9999'" in e.value.message
    assert "`--hw 3x24GB`" in (e.value.hint or "") and "H100" in (e.value.hint or "")


def test_indices_run_across_mixed_parts() -> None:
    s = parse_hw("2x24GB+1xH100")
    assert [(g.index, g.memory_total_mib) for g in s.gpus] == [(0, 24576), (1, 24576), (2, 81559)]


def test_facts_from_hw_keeps_the_base_and_sets_ram() -> None:
    base = HostFacts(
        llmops_version="0",
        collected_at="t",
        system=SystemFacts(hostname="box", ram_total_mib=1000, ram_available_mib=500),
    )
    f = facts_from_hw(parse_hw("1x24GB,ram:64GB"), base)
    assert f.source == "hw" and f.system is not None and f.system.hostname == "box"
    assert (f.system.ram_total_mib, f.system.ram_available_mib) == (65536, 65536)
    assert f.nvidia is not None and f.nvidia.error is None and len(f.nvidia.gpus) == 1
    g = facts_from_hw(parse_hw("1x24GB"), base)
    assert g.system is not None and g.system.ram_total_mib == 1000  # RAM not given: kept
    c = facts_from_hw(parse_hw("cpu"), HostFacts(llmops_version="0", collected_at="t"))
    assert c.nvidia is not None and c.nvidia.gpus == () and c.nvidia.error == "no GPUs (--hw)"
    assert c.system == SystemFacts()


def _facts(gpus: tuple[GpuInfo, ...], system: SystemFacts | None = None) -> HostFacts:
    return HostFacts(
        llmops_version="0", collected_at="t", nvidia=NvidiaFacts(gpus=gpus), system=system
    )


def test_devices_count_what_others_hold() -> None:
    gpus = (
        GpuInfo(0, "A", memory_total_mib=1000, memory_free_mib=400, memory_used_mib=1),
        GpuInfo(1, None, memory_total_mib=1000, memory_used_mib=300),
        GpuInfo(2, "C", memory_total_mib=1000),
        GpuInfo(3, "D", memory_total_mib=0),  # no memory figure: not a device
        GpuInfo(4, "E", memory_total_mib=1000, memory_free_mib=1200),  # never negative
    )
    devs, host = devices_from_facts(_facts(gpus))
    assert [(d.index, d.name, d.in_use_bytes // MIB) for d in devs] == [
        (0, "A", 600),  # from free, preferred to used
        (1, "GPU 1", 300),
        (2, "C", 0),
        (4, "E", 0),
    ]
    assert all(d.capacity_bytes == 1000 * MIB and d.kind == "gpu" for d in devs)
    assert devs[0].label == "GPU 0" and host is None


def test_the_host_device_is_its_ram() -> None:
    s = SystemFacts(cpu_model="Xeon", ram_total_mib=2048, ram_available_mib=512)
    _, host = devices_from_facts(_facts((), s))
    assert host is not None
    assert (host.kind, host.index, host.name, host.label) == ("cpu", None, "Xeon", "CPU RAM")
    assert host.capacity_bytes == 2048 * MIB and host.in_use_bytes == 1536 * MIB
    _, h2 = devices_from_facts(_facts((), SystemFacts(ram_total_mib=2048)))
    assert h2 is not None and h2.name == "CPU" and h2.in_use_bytes == 0
    _, h3 = devices_from_facts(_facts((), SystemFacts(ram_total_mib=2048, ram_available_mib=4096)))
    assert h3 is not None and h3.in_use_bytes == 0
    assert devices_from_facts(_facts((), SystemFacts()))[1] is None


def test_describe() -> None:
    a = Device("gpu", 0, "RTX", 24 * GIB)
    b = Device("gpu", 1, "RTX", 24 * GIB)
    c = Device("gpu", 2, "T4", 15 * GIB)
    assert describe((a, b, c), None) == "2x RTX (24.0 GiB), 1x T4 (15.0 GiB)"
    host = Device("cpu", None, "CPU", int(62.8 * GIB))
    assert describe((), host) == "CPU only (62.8 GiB RAM)"
    assert describe((), None) == "CPU only (RAM unknown)"


def test_devices_without_nvidia_facts() -> None:
    f = HostFacts(llmops_version="0", collected_at="t", system=SystemFacts(ram_total_mib=1024))
    gpus, host = devices_from_facts(f)
    assert gpus == () and host is not None and host.capacity_bytes == 1024 * MIB


#: Every card ``--hw`` knows by name: ``memory.total`` in MiB as NVML reports it (nvidia-smi
#: ``--query-gpu=memory.total,compute_cap``; the marketing GB where NVML shows the full size)
#: and the compute capability (None: not an NVIDIA part).
_NVML = {
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


@pytest.mark.parametrize(("card", "nvml"), sorted(_NVML.items()))
def test_every_named_card_is_planned_with_its_nvml_memory_and_capability(
    card: str, nvml: tuple[int, str | None]
) -> None:
    (g,) = parse_hw(f"1x{card}").gpus
    assert (g.name, g.memory_total_mib, g.compute_capability) == (card, *nvml)
    assert g.memory_free_mib == nvml[0]
    # as typed by hand: lower case, spaces or underscores, the vendor's prefix
    loose = "nvidia " + card.lower().replace("-", " ")
    assert parse_hw(f"1x{loose}").gpus[0].memory_total_mib == nvml[0]


def test_the_smallest_gpu_is_one_mib_and_less_is_zero_memory() -> None:
    assert parse_hw("1x1MB").gpus[0].memory_total_mib == 1
    with pytest.raises(UsageError, match="zero memory"):
        parse_hw("1x0.5MB")
