"""Doctor's checks are pure: facts in, PASS/WARN/FAIL with hints out."""

from __future__ import annotations

import dataclasses

import pytest

from llmops.errors import UsageError
from llmops.hw.facts import (
    DiskInfo,
    DockerFacts,
    GpuInfo,
    GpuLink,
    GpuProcess,
    HfFacts,
    HostFacts,
    NvidiaFacts,
    PlatformFacts,
    SystemFacts,
    ToolInfo,
)
from llmops.plan import checks as chk


def facts(**kw) -> HostFacts:  # type: ignore[no-untyped-def]
    return HostFacts(llmops_version="test", collected_at="2026-01-01T00:00:00+00:00", **kw)


def gpu(i: int, **kw) -> GpuInfo:  # type: ignore[no-untyped-def]
    base = dict(
        name="NVIDIA H100 80GB HBM3",
        memory_total_mib=81559,
        memory_used_mib=0,
        memory_free_mib=81559,
        ecc_enabled=True,
        ecc_pending=True,
        pcie_width_current=16,
        pcie_width_max=16,
        mig_enabled=False,
        mig_pending=False,
        temperature_c=40,
    )
    base.update(kw)
    return GpuInfo(index=i, **base)  # type: ignore[arg-type]


def nvidia(*gpus: GpuInfo, links=(), cuda="12.4") -> NvidiaFacts:  # type: ignore[no-untyped-def]
    return NvidiaFacts(
        driver_version="550.54.15", cuda_driver_version=cuda, gpus=gpus, links=tuple(links)
    )


def by_name(results: list[chk.Check]) -> dict[str, chk.Check]:
    return {c.name: c for c in results}


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("no_driver", "warn"),
        ("no_library", "warn"),
        ("driver_not_loaded", "fail"),
        ("version_mismatch", "fail"),
        ("unknown", "fail"),
    ],
)
def test_driver_problems(kind: str, status: str) -> None:
    f = facts(nvidia=NvidiaFacts(error=f"NVML says {kind}", error_kind=kind))
    (c,) = chk.check_gpu_driver(f)
    assert c.status == status
    assert c.hint
    # no GPU checks run on top of a driver error
    assert chk.run_checks(f, chk.select(["gpu"])) == [c]


def test_lost_gpu_fails_and_names_it() -> None:
    f = facts(nvidia=nvidia(gpu(0), gpu(1), GpuInfo(index=2, error="GPU is lost (NVML: x)")))
    (c,) = chk.check_gpu_health(f)
    assert c.status == "fail"
    assert "GPU 2" in c.message and "2 of 3 usable" in c.message
    assert "nvidia-smi -q -i 2" in (c.hint or "")
    assert chk.exit_code([c]) == 1


def test_old_cuda_driver_fails_and_cuda12_picks_cu129() -> None:
    assert chk.check_gpu_cuda(facts(nvidia=nvidia(gpu(0), cuda="11.8")))[0].status == "fail"
    ok = chk.check_gpu_cuda(facts(nvidia=nvidia(gpu(0), cuda="12.4")))[0]
    assert ok.status == "pass" and "cu129" in ok.message
    assert "CUDA 13" in chk.check_gpu_cuda(facts(nvidia=nvidia(gpu(0), cuda="13.0")))[0].message


def test_memory_held_by_others_warns_with_pids() -> None:
    busy = gpu(1, memory_used_mib=40000, processes=(GpuProcess(pid=4242, used_memory_mib=39000),))
    res = by_name(chk.check_gpu_memory(facts(nvidia=nvidia(gpu(0), busy))))
    assert res["gpu.memory.1"].status == "warn"
    assert "4242" in res["gpu.memory.1"].message
    assert "gpu.memory.0" not in res


def test_mig_ecc_pcie_thermal() -> None:
    g = gpu(0, mig_enabled=True, ecc_pending=False, pcie_width_current=8, temperature_c=91)
    results = by_name(chk.run_checks(facts(nvidia=nvidia(g)), chk.select(["gpu"])))
    assert results["gpu.mig.0"].status == "warn"
    assert "pending" in results["gpu.ecc.0"].message
    assert "x8 of x16" in results["gpu.pcie.0"].message
    assert "91" in results["gpu.thermal.0"].message


def test_topology_without_p2p_warns_and_full_nvlink_passes() -> None:
    pcie = nvidia(
        gpu(0),
        gpu(1),
        links=[GpuLink(0, 1, topology="PHB", nvlink_count=0, p2p_read="chipset_not_supported")],
    )
    (c,) = chk.check_gpu_topology(facts(nvidia=pcie))
    assert c.status == "warn" and "0-1" in c.message and "PHB" in c.message
    nvl = nvidia(
        gpu(0), gpu(1), links=[GpuLink(0, 1, topology="SYS", nvlink_count=18, p2p_read="ok")]
    )
    (c,) = chk.check_gpu_topology(facts(nvidia=nvl))
    assert c.status == "pass" and "NVLinked" in c.message


def test_disk_thresholds() -> None:
    s = SystemFacts(
        disks=(
            DiskInfo("hf_cache", "/a", total_mib=10**6, free_mib=5 * 1024),
            DiskInfo("docker_root", "/b", total_mib=10**6, free_mib=30 * 1024),
            DiskInfo("state", "/c", total_mib=10**6, free_mib=30 * 1024),
        )
    )
    res = by_name(chk.check_system_disk(facts(system=s)))
    assert res["system.disk.hf_cache"].status == "fail"
    assert res["system.disk.docker_root"].status == "warn"
    assert res["system.disk.state"].status == "pass"


def test_small_shm_warns() -> None:
    (c,) = chk.check_system_shm(facts(system=SystemFacts(shm_total_mib=64)))
    assert c.status == "warn" and "64 MiB" in c.message and "--shm-size" in (c.hint or "")


@pytest.mark.parametrize(
    ("platform", "docker", "status", "needle"),
    [
        ("vast.ai", DockerFacts(error_kind="not_installed", error="x"), "warn", "native runtime"),
        ("runpod", DockerFacts(error_kind="daemon_down", error="x"), "warn", "native runtime"),
        ("container", DockerFacts(error_kind="not_installed", error="x"), "warn", "native runtime"),
        ("bare-metal", DockerFacts(error_kind="not_installed", error="x"), "warn", "not installed"),
        (
            "bare-metal",
            DockerFacts(error_kind="daemon_down", error="no engine"),
            "fail",
            "installed but",
        ),
        (
            "bare-metal",
            DockerFacts(error_kind="permission_denied", error="denied"),
            "fail",
            "denied",
        ),
        ("bare-metal", DockerFacts(reachable=True, server_version="27.0"), "pass", "Docker 27.0"),
    ],
)
def test_docker_engine_by_platform(platform, docker, status, needle) -> None:  # type: ignore[no-untyped-def]
    f = facts(docker=docker, platform=PlatformFacts(kind=platform))
    (c,) = chk.check_docker_engine(f)
    assert c.status == status, c
    assert needle in c.message
    (p,) = chk.check_platform(f)
    assert p.status == "pass"
    if status == "warn" and platform != "bare-metal":
        assert "native runtime will be used" in p.message


def test_docker_without_nvidia_runtime_fails_only_with_gpus() -> None:
    d = DockerFacts(reachable=True, runtimes=("runc",))
    (c,) = chk.check_docker_nvidia(facts(docker=d, nvidia=nvidia(gpu(0))))
    assert c.status == "fail" and "nvidia-ctk runtime configure" in (c.hint or "")
    (c,) = chk.check_docker_nvidia(
        facts(docker=d, nvidia=NvidiaFacts(error="x", error_kind="no_driver"))
    )
    assert c.status == "pass"
    cdi = dataclasses.replace(d, cdi_nvidia_specs=("/etc/cdi/nvidia.yaml",))
    (c,) = chk.check_docker_nvidia(facts(docker=cdi, nvidia=nvidia(gpu(0))))
    assert c.status == "pass" and "/etc/cdi/nvidia.yaml" in c.message
    rt = dataclasses.replace(d, runtimes=("nvidia", "runc"))
    assert chk.check_docker_nvidia(facts(docker=rt, nvidia=nvidia(gpu(0))))[0].status == "pass"


def test_hf_token_states_never_show_the_secret() -> None:
    assert chk.check_hf_token(facts(hf=HfFacts()))[0].status == "warn"
    base = HfFacts(token_present=True, token_source="env:HF_TOKEN", token_masked="hf_…wxyz")
    bad = dataclasses.replace(base, token_valid=False, online=True, error="HTTP 401")
    assert chk.check_hf_token(facts(hf=bad))[0].status == "fail"
    off = dataclasses.replace(base, online=False, error="Hub unreachable (offline?)")
    c = chk.check_hf_token(facts(hf=off))[0]
    assert c.status == "warn" and "offline" in c.message
    good = dataclasses.replace(base, token_valid=True, online=True, token_user="alice")
    c = chk.check_hf_token(facts(hf=good))[0]
    assert c.status == "pass" and "alice" in c.message and "hf_…wxyz" in c.message


def test_tools() -> None:
    tools = (
        ToolInfo("nvidia-smi"),
        ToolInfo("cloudflared", "/usr/bin/cloudflared", "2025.8.0"),
        ToolInfo("ngrok"),
    )
    res = by_name(chk.check_tools(facts(tools=tools, nvidia=nvidia(gpu(0)))))
    assert res["tools.nvidia-smi"].status == "warn"
    assert (
        res["tools.cloudflared"].status == "pass" and "2025.8.0" in res["tools.cloudflared"].message
    )
    assert res["tools.ngrok"].status == "warn" and "ngrok.com" in (res["tools.ngrok"].hint or "")


def test_select_by_group_and_name_and_unknown() -> None:
    assert {s.name for s in chk.select(["docker"])} == {
        "docker.engine",
        "docker.storage",
        "docker.nvidia",
        "docker.gpu-smoke-test",
    }
    assert [s.name for s in chk.select(["hf.token"])] == ["hf.token"]
    assert chk.sections_for(chk.select(["system.ram"])) == {"system"}
    with pytest.raises(UsageError) as e:
        chk.select(["dockr"])
    assert "docker.engine" in (e.value.hint or "")


def test_unprobed_sections_yield_no_checks() -> None:
    assert chk.run_checks(facts()) == []


def test_gpu_cuda_names_the_engine_images_this_driver_starts() -> None:
    """The 2x3090 snapshot (GeForce, driver 535 = CUDA 12.2): TGI's CUDA 12.4 image starts (its
    base admits branch 535 on GeForce); vLLM's (12.9/13.0) and llama.cpp's (12.8/13.x) do not."""
    from pathlib import Path

    from llmops.hw.facts import host_facts_from_json

    path = Path(__file__).resolve().parents[1] / "fixtures" / "facts" / "rtx3090x2_pcie.json"
    f = host_facts_from_json(path.read_text())
    (c,) = chk.check_gpu_cuda(f)
    assert c.status == chk.WARN
    assert (
        "TGI (maintenance mode) `ghcr.io/huggingface/text-generation-inference:3.3.7`" in c.message
    )
    assert "SGLang (needs CUDA 13.0)" in c.message
    assert "vLLM (needs CUDA 12.9)" in c.message and "llama.cpp (needs CUDA" in c.message
    h100 = Path(__file__).resolve().parents[1] / "fixtures" / "facts" / "h100x8_nvlink.json"
    (ok,) = chk.check_gpu_cuda(host_facts_from_json(h100.read_text()))
    assert ok.status == chk.PASS and "vLLM `vllm/vllm-openai:" in ok.message
    assert "not: SGLang (needs CUDA 13.0)" in ok.message  # optional: still a pass
