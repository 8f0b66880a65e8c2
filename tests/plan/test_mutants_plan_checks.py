"""plan/checks.py: doctor's thresholds at their edges and each GPU/system row, pinned where the
mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import dataclasses

import pytest

from llmops.hw.facts import (
    DiskInfo,
    DockerFacts,
    GpuInfo,
    GpuLink,
    GpuProcess,
    GpuSmokeTest,
    HfFacts,
    HostFacts,
    NvidiaFacts,
    PlatformFacts,
    SystemFacts,
    ToolInfo,
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


# ------------------------------------------------------------------------- driver and CUDA


def _nv(**kw: object) -> HostFacts:
    return HostFacts(llmops_version="0", collected_at="t", nvidia=NvidiaFacts(**kw))  # type: ignore[arg-type]


def test_each_driver_error_kind_gets_its_own_row() -> None:
    loaded = c.check_gpu_driver(_nv(error="nvidia.ko missing", error_kind="driver_not_loaded"))
    assert loaded == [
        c.Check(
            "gpu.driver",
            "fail",
            "the NVIDIA kernel module is not loaded: nvidia.ko missing",
            "run `sudo modprobe nvidia` (or reboot), then `nvidia-smi`",
        )
    ]
    mismatch = c.check_gpu_driver(_nv(error="550 vs 535", error_kind="version_mismatch"))
    assert mismatch == [
        c.Check(
            "gpu.driver",
            "fail",
            "driver/library version mismatch: 550 vs 535",
            "the driver was upgraded without reloading it: reboot the host",
        )
    ]
    other = c.check_gpu_driver(_nv(error="GPU is lost", error_kind="other"))
    assert [(x.status, x.message) for x in other] == [("fail", "NVML failed: GPU is lost")]


def test_a_lost_gpu_is_a_gpu_health_row() -> None:
    f = _gpu_facts(GpuInfo(0, "A"), GpuInfo(1, "B", error="fell off the bus"))
    (row,) = c.check_gpu_health(f)
    assert (row.name, row.status) == ("gpu.health", "fail")
    assert row.message == "GPU 1: fell off the bus; 1 of 2 usable"


def _cuda(driver: str, cuda: str) -> HostFacts:
    gpu = GpuInfo(0, "NVIDIA H100 80GB HBM3", memory_total_mib=81559, compute_capability="9.0")
    return _nv(driver_version=driver, cuda_driver_version=cuda, gpus=(gpu,))


def test_cuda_12_1_is_the_oldest_driver_checked_against_the_images() -> None:
    (old,) = c.check_gpu_cuda(_cuda("525.60", "12.0"))
    assert (old.name, old.status) == ("gpu.cuda", "fail")
    (edge,) = c.check_gpu_cuda(_cuda("530.30", "12.1"))  # not refused outright: per image
    assert (edge.name, edge.status) == ("gpu.cuda", "warn")
    assert edge.message == (
        "CUDA 12.1 driver: no pinned engine image starts; not: vLLM (needs CUDA 12.9), "
        "SGLang (needs CUDA 13.0), llama.cpp (needs CUDA 12.8), "
        "TGI (maintenance mode) (needs CUDA 12.4)"
    )


def test_a_driver_that_starts_every_image_lists_nothing_refused() -> None:
    (row,) = c.check_gpu_cuda(_cuda("580.65.06", "13.0"))
    assert (row.name, row.status, row.hint) == ("gpu.cuda", "pass", None)
    assert row.message.startswith("CUDA 13.0 driver: images it starts: vLLM `vllm/vllm-openai:")
    assert "; not:" not in row.message


# ------------------------------------------------------------------------- GPU rows


def test_gpu_memory_percentage_is_exact() -> None:
    just_below = GpuInfo(0, "A", memory_total_mib=10000, memory_used_mib=995)  # 9.95 %
    assert _rows(c.check_gpu_memory(_gpu_facts(just_below))) == [("gpu.memory", "pass")]
    sixty = GpuInfo(0, "A", memory_total_mib=100, memory_used_mib=60)
    assert "(60%)" in c.check_gpu_memory(_gpu_facts(sixty))[0].message


def test_gpu_memory_without_a_healthy_gpu_says_nothing() -> None:
    assert c.check_gpu_memory(_gpu_facts()) == []
    lost = GpuInfo(0, "A", memory_total_mib=1000, memory_used_mib=0, error="lost")
    assert c.check_gpu_memory(_gpu_facts(lost)) == []


def test_gpu_ecc_without_a_pending_state_says_nothing() -> None:
    assert c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=True))) == []
    assert c.check_gpu_ecc(_gpu_facts(GpuInfo(0, ecc_enabled=False))) == []


def test_gpu_topology_all_nvlinked_row_name() -> None:
    nv = (GpuLink(0, 1, "NV4", nvlink_count=4, p2p_read="ok"),)
    assert _rows(c.check_gpu_topology(_gpu_facts(GpuInfo(0), GpuInfo(1), links=nv))) == [
        ("gpu.topology", "pass")
    ]


# ------------------------------------------------------------------------- platform / Docker


def _pd(kind: str | None, docker: DockerFacts | None, instance: str | None = None) -> HostFacts:
    plat = None if kind is None else PlatformFacts(kind=kind, instance_id=instance)
    return HostFacts(llmops_version="0", collected_at="t", platform=plat, docker=docker)


DOWN = DockerFacts(error="the daemon is not running", error_kind="daemon_down")
MISSING = DockerFacts(error="no docker", error_kind="not_installed")


@pytest.mark.parametrize(
    ("kind", "instance", "docker", "message"),
    [
        (
            "vast.ai",
            "1234",
            DOWN,
            "vast.ai instance 1234: vast.ai instances are containers "
            "without Docker inside, the native runtime will be used",
        ),
        (
            "runpod",
            None,
            DOWN,
            "RunPod pod: runpod instances are containers without Docker "
            "inside, the native runtime will be used",
        ),
        (
            "container",
            None,
            DOWN,
            "a container: this is a container without a Docker daemon, "
            "the native runtime will be used",
        ),
        (
            "bare-metal",
            None,
            MISSING,
            "bare metal: Docker is not installed, the native runtime will be used",
        ),
        ("bare-metal", None, DOWN, "bare metal"),
        (
            "bare-metal",
            None,
            DockerFacts(reachable=True),
            "bare metal: Docker available, containers will be used",
        ),
        ("bare-metal", None, None, "bare metal"),
    ],
)
def test_platform_row_says_which_runtime_will_be_used(
    kind: str, instance: str | None, docker: DockerFacts | None, message: str
) -> None:
    assert c.check_platform(_pd(kind, docker, instance)) == [c.Check("platform", "pass", message)]


def test_docker_permission_denied_says_how_to_join_the_group() -> None:
    d = DockerFacts(
        error="permission denied on /var/run/docker.sock", error_kind="permission_denied"
    )
    assert c.check_docker_engine(_pd("bare-metal", d)) == [
        c.Check(
            "docker.engine",
            "fail",
            "Docker: permission denied on /var/run/docker.sock",
            "add yourself to the docker group: `sudo usermod -aG docker $USER`, then log in again",
        )
    ]


def test_docker_down_in_a_container_is_a_warning_without_a_hint() -> None:
    (row,) = c.check_docker_engine(_pd("container", DOWN))
    assert (row.name, row.status, row.hint) == ("docker.engine", "warn", None)
    assert row.message == (
        "no Docker engine (this is a container without a Docker daemon): the native runtime "
        "will be used"
    )
    (bare,) = c.check_docker_engine(_pd("bare-metal", MISSING))
    assert bare.status == "warn" and "sudo apt install docker.io" in (bare.hint or "")
    (down,) = c.check_docker_engine(_pd("bare-metal", DOWN))
    assert (down.status, down.message) == (
        "fail",
        "Docker is installed but the daemon is not running",
    )


def test_docker_unreachable_for_another_reason_fails_as_unreachable() -> None:
    d = DockerFacts(error="TLS handshake failed", error_kind="other")
    for kind in ("bare-metal", None):
        (row,) = c.check_docker_engine(_pd(kind, d))
        assert (row.name, row.status) == ("docker.engine", "fail")
        assert row.message == "Docker engine unreachable: TLS handshake failed"
        assert "DOCKER_HOST" in (row.hint or "")


def test_docker_storage_is_judged_only_on_a_reachable_engine() -> None:
    vfs = DockerFacts(reachable=False, storage_driver="vfs", error="x", error_kind="other")
    assert c.check_docker_storage(_pd(None, vfs)) == []
    up = DockerFacts(reachable=True, storage_driver="vfs")
    assert _rows(c.check_docker_storage(_pd(None, up))) == [("docker.storage", "warn")]


def test_docker_nvidia_names_the_cdi_spec() -> None:
    d = DockerFacts(reachable=True, cdi_nvidia_specs=("/etc/cdi/nvidia.yaml", "/var/run/cdi/x"))
    assert c.check_docker_nvidia(_pd(None, d)) == [
        c.Check("docker.nvidia", "pass", "containers can get GPUs: CDI spec /etc/cdi/nvidia.yaml")
    ]


@pytest.mark.parametrize(
    ("diagnosis", "needle"),
    [
        ("no_runtime", "sudo nvidia-ctk runtime configure"),
        ("no_image", "--smoke-image IMAGE"),
        ("cdi_no_vendor", "generate the CDI spec"),
        ("nvml_permission", "run dockerd on the host"),
        (None, "reproduces it"),
    ],
)
def test_a_failed_gpu_smoke_test_gets_the_hint_of_its_diagnosis(
    diagnosis: str | None, needle: str
) -> None:
    t = GpuSmokeTest(ok=False, image="busybox", error="boom", diagnosis=diagnosis)
    (row,) = c.check_docker_gpu_smoke(_pd(None, DockerFacts(reachable=True, gpu_smoke_test=t)))
    assert row.status == "fail" and needle in (row.hint or "")
    if diagnosis is not None:
        assert row.hint == c.GPU_ERROR_HINTS[diagnosis] != c.GPU_ERROR_HINTS["other"]


def test_no_hf_token_is_a_warning_about_gated_models() -> None:
    f = HostFacts(llmops_version="0", collected_at="t", hf=HfFacts())
    (row,) = c.check_hf_token(f)
    assert (row.name, row.status) == ("hf.token", "warn")
    assert row.message.startswith("no Hugging Face token: gated models")


# ------------------------------------------------------------------------- the check table

_SECTIONS = ("nvidia", "system", "docker", "platform", "hf", "tools")


def _everything() -> HostFacts:
    """A host with something to say in every check (one warning GPU, a driverless smi, ...)."""
    gpus = (
        GpuInfo(0, "A", memory_total_mib=1000, memory_used_mib=500, memory_free_mib=500),
        GpuInfo(
            1,
            "B",
            memory_total_mib=1000,
            memory_used_mib=0,
            memory_free_mib=1000,
            mig_enabled=True,
            ecc_enabled=False,
            ecc_pending=True,
            pcie_width_current=8,
            pcie_width_max=16,
            temperature_c=90,
        ),
    )
    return HostFacts(
        llmops_version="0",
        collected_at="t",
        nvidia=NvidiaFacts(
            driver_version="550.54.15",
            cuda_driver_version="12.4",
            gpus=gpus,
            links=(GpuLink(0, 1, "NV4", nvlink_count=4, p2p_read="ok"),),
        ),
        system=SystemFacts(
            ram_total_mib=65536,
            ram_available_mib=60000,
            shm_total_mib=8192,
            disks=(DiskInfo("hf_cache", "/hf", free_mib=1 << 20),),
        ),
        docker=DockerFacts(
            reachable=True,
            storage_driver="vfs",
            runtimes=("runc",),
            gpu_smoke_test=GpuSmokeTest(ok=True, image="busybox", output="GPU 0: A"),
        ),
        platform=PlatformFacts(kind="bare-metal"),
        hf=HfFacts(
            token_present=True,
            token_source="env:HF_TOKEN",
            token_masked="hf_…wxyz",
            token_valid=True,
            token_user="alice",
        ),
        tools=(ToolInfo("nvidia-smi"), ToolInfo("cloudflared", "/usr/bin/cloudflared", "2025.8.0")),
    )


def test_every_check_names_its_rows_after_itself() -> None:
    """`--check NAME` selects a spec by name: the rows it prints must carry that name."""
    f = _everything()
    seen = set()
    for spec in c.CHECKS:
        rows = c.run_checks(f, c.select([spec.name]))
        assert rows, spec.name  # the fixture has something to say everywhere
        for row in rows:
            assert row.name == spec.name or row.name.startswith(spec.name + "."), (spec, row)
            seen.add(row.name)
    assert {
        "gpu.memory.0",
        "hf.token",
        "system.shm",
        "system.disk.hf_cache",
        "tools.cloudflared",
    } <= seen


def test_every_check_declares_exactly_the_sections_it_reads() -> None:
    """doctor probes only a check's sections: with the others left out, its rows are the same."""
    f = _everything()
    for spec in c.CHECKS:
        assert set(spec.sections) <= set(_SECTIONS), spec
        only = dataclasses.replace(
            f, **{s: getattr(f, s) if s in spec.sections else None for s in _SECTIONS}
        )
        assert spec.fn(only) == spec.fn(f), spec.name
    assert c.sections_for(c.select(["tools"])) == {"tools", "nvidia"}
    assert c.sections_for(c.select(["platform"])) == {"platform", "docker"}
    assert c.sections_for(c.select(["docker.nvidia"])) == {"docker", "nvidia"}
    assert c.sections_for(c.select(["gpu"])) == {"nvidia"}


def test_check_names_are_the_checks_and_their_groups() -> None:
    names = c.check_names()
    assert {"gpu", "system", "docker", "hf", "tools", "platform"} <= set(names)
    assert set(names) == {s.name for s in c.CHECKS} | {s.name.split(".")[0] for s in c.CHECKS}
    assert names == sorted(names)


def test_tools_rows_only_for_the_tools_probed() -> None:
    only_ngrok = HostFacts(llmops_version="0", collected_at="t", tools=(ToolInfo("ngrok"),))
    assert _rows(c.check_tools(only_ngrok)) == [("tools.ngrok", "warn")]
    found = dataclasses.replace(only_ngrok, tools=(ToolInfo("ngrok", "/bin/ngrok", "3.1"),))
    assert c.check_tools(found) == [c.Check("tools.ngrok", "pass", "ngrok 3.1 at /bin/ngrok")]


# ------------------------------------------------------------------------- rows no test reached


def test_an_unreadable_cuda_version_is_a_warning() -> None:
    for version in (None, "twelve", "12.x"):
        rows = c.check_gpu_cuda(_nv(driver_version="550.1", cuda_driver_version=version))
        assert rows == [c.Check("gpu.cuda", "warn", "the driver did not report its CUDA version")]


def test_bindings_newer_than_the_driver_say_which_release_to_pin() -> None:
    f = _nv(
        driver_version="535.183.01",
        cuda_driver_version="12.2",
        gpus=(GpuInfo(0, "A"),),
        library_mismatch="570.86.15",
    )
    (row,) = c.check_gpu_driver(f)
    assert (row.name, row.status) == ("gpu.driver", "warn")
    assert row.message == (
        "driver 535.183.01, CUDA 12.2, 1 GPU(s), but nvidia-ml-py is newer than this driver's "
        "NVML (570); older NVML calls were used"
    )
    assert row.hint == (
        "upgrade the NVIDIA driver, or install the bindings of driver 535.183.01: "
        "`pip install 'nvidia-ml-py==12.535.*'`"
    )
    odd = dataclasses.replace(f, nvidia=dataclasses.replace(f.nvidia, driver_version=None))  # type: ignore[arg-type]
    (row,) = c.check_gpu_driver(odd)
    assert (row.hint or "").endswith("the nvidia-ml-py release named after your driver branch")


def test_a_driver_without_gpus_fails_gpu_health() -> None:
    assert c.check_gpu_health(_nv(driver_version="550.1", gpus=())) == [
        c.Check(
            "gpu.health",
            "fail",
            "the NVIDIA driver is loaded but reports no GPUs",
            "check `nvidia-smi -L` and `dmesg | grep -i nvidia`",
        )
    ]


def test_a_gpu_smoke_test_that_ran_shows_its_first_line() -> None:
    def row(output: str | None) -> c.Check:
        t = GpuSmokeTest(ok=True, image="busybox", output=output)
        (r,) = c.check_docker_gpu_smoke(_pd(None, DockerFacts(reachable=True, gpu_smoke_test=t)))
        return r

    assert row("GPU 0: H100 (UUID: GPU-1)\nGPU 1: H100") == c.Check(
        "docker.gpu-smoke-test", "pass", "a GPU container ran on busybox: GPU 0: H100 (UUID: GPU-1)"
    )
    assert row(None).message == "a GPU container ran on busybox: ok"
    t = GpuSmokeTest(ok=False, image="busybox", error="boom", diagnosis="no_such_kind")
    (r,) = c.check_docker_gpu_smoke(_pd(None, DockerFacts(reachable=True, gpu_smoke_test=t)))
    assert (r.name, r.hint) == ("docker.gpu-smoke-test", c.GPU_ERROR_HINTS["other"])


def _hf(**kw: object) -> HostFacts:
    return HostFacts(llmops_version="0", collected_at="t", hf=HfFacts(**kw))  # type: ignore[arg-type]


def test_an_unchecked_token_offline_passes() -> None:
    f = _hf(
        token_present=True, token_source="env:HF_TOKEN", token_masked="hf_…wxyz", offline_mode=True
    )
    assert c.check_hf_token(f) == [
        c.Check(
            "hf.token",
            "pass",
            "token hf_…wxyz from env:HF_TOKEN (not checked: HF_HUB_OFFLINE is set)",
        )
    ]


def test_hf_cache_row() -> None:
    assert c.check_hf_cache(_hf(cache_dir="/hf")) == [
        c.Check("hf.cache", "pass", "cache /hf (empty)")
    ]
    assert c.check_hf_cache(_hf(cache_dir="/hf", cache_size_mib=2048, cache_repos=3)) == [
        c.Check("hf.cache", "pass", "cache /hf: 2.0 GiB in 3 repo(s)")
    ]


def test_installed_nvidia_smi_and_llama_server_rows() -> None:
    tools = (
        ToolInfo("nvidia-smi", "/usr/bin/nvidia-smi", "550.54.15"),
        ToolInfo("llama-server", "/opt/llama-server", "b11434"),
    )
    f = HostFacts(llmops_version="0", collected_at="t", tools=tools)
    assert c.check_tools(f) == [
        c.Check("tools.nvidia-smi", "pass", "nvidia-smi 550.54.15 at /usr/bin/nvidia-smi"),
        c.Check("tools.llama-server", "pass", "llama-server b11434 at /opt/llama-server"),
    ]
    absent = dataclasses.replace(f, tools=(ToolInfo("nvidia-smi"), ToolInfo("llama-server")))
    assert _rows(c.check_tools(absent)) == [
        ("tools.nvidia-smi", "pass"),  # no driver either: nothing missing
        ("tools.llama-server", "pass"),
    ]
