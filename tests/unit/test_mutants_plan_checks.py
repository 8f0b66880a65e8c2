"""plan/checks.py: doctor's thresholds at their edges and each GPU/system row, pinned where the
mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

from llmops.hw.facts import (
    DiskInfo,
    GpuInfo,
    GpuLink,
    GpuProcess,
    HostFacts,
    NvidiaFacts,
    SystemFacts,
)
from llmops.plan import checks as c


def _gpu_facts(*gpus: GpuInfo, links: tuple[GpuLink, ...] = ()) -> HostFacts:
    return HostFacts(
        llmops_version="0",
        collected_at="t",
        nvidia=NvidiaFacts(
            driver_version="550.1", cuda_driver_version="12.4", gpus=gpus, links=links
        ),
    )


def _sys(**kw: object) -> HostFacts:
    return HostFacts(llmops_version="0", collected_at="t", system=SystemFacts(**kw))  # type: ignore[arg-type]


def _rows(checks: list[c.Check]) -> list[tuple[str, str]]:
    return [(x.name, x.status) for x in checks]


def test_gpu_memory_warns_from_ten_percent_in_use() -> None:
    below = GpuInfo(0, "A", memory_total_mib=1000, memory_used_mib=99, memory_free_mib=901)
    at = GpuInfo(
        1,
        "B",
        memory_total_mib=1000,
        memory_used_mib=100,
        memory_free_mib=900,
        processes=(GpuProcess(42), GpuProcess(43)),
    )
    assert _rows(c.check_gpu_memory(_gpu_facts(below))) == [("gpu.memory", "pass")]
    assert c.check_gpu_memory(_gpu_facts(below))[0].message == "901 MiB free across 1 GPU(s)"
    rows = c.check_gpu_memory(_gpu_facts(below, at))
    assert _rows(rows) == [("gpu.memory.1", "warn")]
    assert rows[0].message == "GPU 1 (B): 100 of 1000 MiB already in use (10%) by PID 42, 43"
    unknown = GpuInfo(2, None, memory_total_mib=1000, memory_used_mib=500)
    assert c.check_gpu_memory(_gpu_facts(unknown))[0].message.endswith("by unknown processes")
    assert c.check_gpu_memory(_gpu_facts(unknown))[0].message.startswith("GPU 2:")
    no_used = GpuInfo(3, "D", memory_total_mib=1000, memory_free_mib=10)
    assert _rows(c.check_gpu_memory(_gpu_facts(no_used))) == [("gpu.memory", "pass")]


def test_gpu_thermal_warns_from_85_degrees() -> None:
    assert c.check_gpu_thermal(_gpu_facts(GpuInfo(0, "A", temperature_c=84))) == []
    hot = c.check_gpu_thermal(_gpu_facts(GpuInfo(0, "A", temperature_c=85)))
    assert _rows(hot) == [("gpu.thermal.0", "warn")] and "85 °C" in hot[0].message
    assert c.check_gpu_thermal(_gpu_facts(GpuInfo(0, "A"))) == []


def test_gpu_pcie_warns_on_a_narrow_link_only() -> None:
    assert c.check_gpu_pcie(_gpu_facts(GpuInfo(0, pcie_width_current=16, pcie_width_max=16))) == []
    narrow = c.check_gpu_pcie(_gpu_facts(GpuInfo(0, pcie_width_current=4, pcie_width_max=16)))
    assert _rows(narrow) == [("gpu.pcie.0", "warn")] and "x4 of x16" in narrow[0].message
    assert c.check_gpu_pcie(_gpu_facts(GpuInfo(0, pcie_width_current=4))) == []


def test_gpu_ecc_pending_change() -> None:
    assert c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=True, ecc_pending=True))) == []
    assert c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=None, ecc_pending=True))) == []
    on = c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=False, ecc_pending=True)))
    assert _rows(on) == [("gpu.ecc.0", "warn")] and "ECC will be on" in on[0].message
    off = c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=True, ecc_pending=False)))
    assert "ECC will be off" in off[0].message


def test_gpu_mig() -> None:
    on = c.check_gpu_mig(_gpu_facts(GpuInfo(3, "H100", mig_enabled=True)))
    assert _rows(on) == [("gpu.mig.3", "warn")] and "-i 3 -mig 0" in (on[0].hint or "")
    pending = c.check_gpu_mig(_gpu_facts(GpuInfo(1, mig_enabled=False, mig_pending=True)))
    assert _rows(pending) == [("gpu.mig.1", "warn")] and "pending" in pending[0].message
    assert c.check_gpu_mig(_gpu_facts(GpuInfo(1, mig_enabled=False, mig_pending=False))) == []
    assert c.check_gpu_mig(_gpu_facts(GpuInfo(1, mig_enabled=False))) == []


def test_gpu_topology() -> None:
    a, b = GpuInfo(0), GpuInfo(1)
    assert c.check_gpu_topology(_gpu_facts(a)) == []  # one GPU: nothing to say
    nv = (GpuLink(0, 1, "NVLINK", nvlink_count=4, p2p_read="ok"),)
    assert c.check_gpu_topology(_gpu_facts(a, b, links=nv))[0].message == (
        "every GPU pair is NVLinked (1 pairs)"
    )
    p2p = (GpuLink(0, 1, "PIX", nvlink_count=0, p2p_read="ok"),)
    assert c.check_gpu_topology(_gpu_facts(a, b, links=p2p))[0].message == (
        "peer-to-peer available on 1 GPU pair(s)"
    )
    slow = tuple(GpuLink(0, i, "SYS", 0, "not_supported") for i in range(1, 7))
    rows = c.check_gpu_topology(_gpu_facts(a, b, links=slow))
    assert _rows(rows) == [("gpu.topology", "warn")]
    assert "GPUs 0-1, 0-2, 0-3, 0-4 and 2 more (SYS, P2P not_supported)" in rows[0].message
    four = c.check_gpu_topology(_gpu_facts(a, b, links=slow[:4]))
    assert "0-4 (SYS" in four[0].message and "more" not in four[0].message
    unknown = (GpuLink(0, 1, None, None, None),)
    assert _rows(c.check_gpu_topology(_gpu_facts(a, b, links=unknown))) == [
        ("gpu.topology", "pass")
    ]


def test_system_ram_warns_below_8_gib_available() -> None:
    assert c.check_system_ram(_sys()) == []
    ok = c.check_system_ram(_sys(ram_total_mib=16384, ram_available_mib=8192, cpu_threads=8))
    assert _rows(ok) == [("system.ram", "pass")]
    assert ok[0].message == "8.0 GiB available of 16.0 GiB, 8 CPU threads"
    low = c.check_system_ram(_sys(ram_total_mib=16384, ram_available_mib=8191))
    assert _rows(low) == [("system.ram", "warn")] and ", ? CPU threads" in low[0].message
    unknown = c.check_system_ram(_sys(ram_total_mib=16384))
    assert _rows(unknown) == [("system.ram", "pass")] and unknown[0].message.startswith(
        "? available"
    )


def test_system_shm_warns_below_1_gib_or_missing() -> None:
    assert c.check_system_shm(HostFacts(llmops_version="0", collected_at="t")) == []
    assert _rows(c.check_system_shm(_sys())) == [("system.shm", "warn")]
    assert "missing" in c.check_system_shm(_sys())[0].message
    small = c.check_system_shm(_sys(shm_total_mib=1023))
    assert _rows(small) == [("system.shm", "warn")] and "only 1023 MiB" in small[0].message
    assert c.check_system_shm(_sys(shm_total_mib=1024)) == [
        c.Check("system.shm", "pass", "/dev/shm 1.0 GiB")
    ]


def test_system_disk_thresholds_and_the_state_dir() -> None:
    disks = (
        DiskInfo("hf_cache", "/hf", free_mib=10 * 1024 - 1),
        DiskInfo("docker_root", "/d", free_mib=10 * 1024),
        DiskInfo("state", "/s", free_mib=10 * 1024),  # small is fine for llmops' own state
        DiskInfo("hf_cache", "/hf2", free_mib=50 * 1024),
        DiskInfo("other", "/o", free_mib=50 * 1024 - 1),
        DiskInfo("state", "/bad", error="permission denied"),
        DiskInfo("state", "/none"),
    )
    rows = c.check_system_disk(_sys(disks=disks))
    assert _rows(rows) == [
        ("system.disk.hf_cache", "fail"),
        ("system.disk.docker_root", "warn"),
        ("system.disk.state", "pass"),
        ("system.disk.hf_cache", "pass"),
        ("system.disk.other", "warn"),
        ("system.disk.state", "warn"),
        ("system.disk.state", "warn"),
    ]
    assert (
        rows[0].message
        == "Hugging Face cache /hf: 10.0 GiB free (< 10 GiB: even a 7B model will not download)"
    )
    assert rows[1].message.startswith("Docker root /d: 10.0 GiB free (< 50 GiB")
    assert rows[2].message == "llmops state /s: 10.0 GiB free"
    assert rows[4].message.startswith("other /o:")
    assert rows[5].message == "cannot read free space at /bad: permission denied"


def test_exit_code_follows_the_worst_row() -> None:
    p, w, f = (c.Check("a", s, "m") for s in ("pass", "warn", "fail"))
    assert c.exit_code([p]) == 0 and c.exit_code([]) == 0
    assert c.exit_code([p, w]) == 0  # a warning is not a failure
    assert c.exit_code([p, w, f]) == 1
