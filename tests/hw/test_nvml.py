"""probe_nvidia through the fake pynvml (fixtures in tests/fixtures/nvml), and once for real."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pynvml
import pytest

from llmops.hw.facts import GpuInfo, GpuProcess, NvidiaFacts, host_facts_from_json, to_jsonable
from llmops.hw.nvml import cuda_version_string, probe_nvidia
from tests.support.fakes import FakeHandle, FakeNvml, fake_nvml, nvml_error

FACTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "facts"
FIXTURES = ("h100x8_nvlink", "rtx3090x2_pcie", "lost_gpu", "no_driver")


def probe(fake: FakeNvml) -> NvidiaFacts:
    return probe_nvidia(fake, process_name=fake.visible_process_name)


# --------------------------------------------------------------------------- 8x H100


def test_h100x8_driver_and_every_gpu() -> None:
    facts = probe(fake_nvml("h100x8_nvlink"))
    assert facts.error is None and facts.error_kind is None
    assert facts.driver_version == "550.54.15"
    assert facts.cuda_driver_version == "12.4"
    assert facts.nvml_version == "12.550.54.15"
    assert [g.index for g in facts.gpus] == list(range(8))
    assert len(facts.healthy_gpus) == 8
    for gpu in facts.gpus:
        assert gpu.name == "NVIDIA H100 80GB HBM3"
        assert gpu.memory_total_mib == 81559
        assert gpu.compute_capability == "9.0"
        assert (gpu.power_limit_w, gpu.power_default_limit_w) == (700.0, 700.0)
        assert (gpu.power_min_limit_w, gpu.power_max_limit_w) == (200.0, 700.0)
        assert (gpu.pcie_gen_max, gpu.pcie_width_current, gpu.pcie_width_max) == (5, 16, 16)
        assert (gpu.ecc_enabled, gpu.ecc_pending) == (True, True)
        assert (gpu.mig_enabled, gpu.mig_pending) == (False, False)
    assert [g.pci_bus_id for g in facts.gpus][:2] == ["00000000:18:00.0", "00000000:2A:00.0"]
    assert len({g.uuid for g in facts.gpus}) == 8


def test_h100x8_busy_and_idle_gpu_values() -> None:
    gpu0, gpu1 = probe(fake_nvml("h100x8_nvlink")).gpus[:2]
    # GPU 0: a vLLM server holding 74012 MiB; v2 memory info so "used" excludes reserved.
    assert (gpu0.memory_used_mib, gpu0.memory_free_mib) == (74018, 6962)
    assert gpu0.power_draw_w == pytest.approx(312.847)
    assert (gpu0.temperature_c, gpu0.utilization_gpu_pct, gpu0.pcie_gen_current) == (44, 87, 5)
    assert gpu0.processes == (GpuProcess(pid=48213, used_memory_mib=74012, name="python3"),)
    # GPU 1 idles: PCIe link trained down to gen 1, nothing running.
    assert (gpu1.memory_used_mib, gpu1.memory_free_mib) == (1, 80979)
    assert gpu1.power_draw_w == pytest.approx(69.542)
    assert (gpu1.pcie_gen_current, gpu1.processes) == (1, ())


def test_h100x8_links_all_pairs_nv18_p2p_ok() -> None:
    links = probe(fake_nvml("h100x8_nvlink")).links
    assert len(links) == 28
    assert [(lk.gpu_a, lk.gpu_b) for lk in links] == [
        (a, b) for a in range(8) for b in range(a + 1, 8)
    ]
    assert {lk.nvlink_count for lk in links} == {18}  # nvidia-smi topo -m: NV18 everywhere
    assert {(lk.p2p_read, lk.p2p_nvlink) for lk in links} == {("ok", "ok")}
    topo = {(lk.gpu_a, lk.gpu_b): lk.topology for lk in links}
    assert topo[(0, 3)] == "NODE"  # same CPU socket
    assert topo[(0, 4)] == "SYS"  # across sockets
    assert topo[(4, 7)] == "NODE"


def test_nvswitch_links_need_both_ends_on_the_fabric() -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.devices[5]["nvlinks"] = None  # GPU 5 lost its NVLinks (NotSupported)
    links = {(lk.gpu_a, lk.gpu_b): lk.nvlink_count for lk in probe(fake).links}
    assert links[(0, 5)] == 0 and links[(5, 7)] == 0
    assert links[(0, 1)] == 18


# --------------------------------------------------------------------------- 2x RTX 3090


def test_rtx3090x2_pcie_host() -> None:
    facts = probe(fake_nvml("rtx3090x2_pcie"))
    assert (facts.driver_version, facts.cuda_driver_version) == ("535.183.01", "12.2")
    gpu0, gpu1 = facts.gpus
    for gpu in (gpu0, gpu1):
        assert gpu.name == "NVIDIA GeForce RTX 3090"
        assert gpu.memory_total_mib == 24576
        assert gpu.compute_capability == "8.6"
        assert gpu.power_limit_w == 350.0
        assert (gpu.power_min_limit_w, gpu.power_max_limit_w) == (100.0, 400.0)
        # GeForce: ECC and MIG are NotSupported → None, not an error row.
        assert (gpu.ecc_enabled, gpu.ecc_pending, gpu.mig_enabled, gpu.mig_pending) == (
            None,
            None,
            None,
            None,
        )
        assert gpu.error is None
    assert (gpu0.pcie_gen_current, gpu0.pcie_width_current) == (4, 16)
    assert (gpu1.pcie_gen_max, gpu1.pcie_width_current, gpu1.pcie_width_max) == (4, 8, 16)
    assert gpu0.memory_used_mib == 21872 and gpu0.utilization_gpu_pct == 96
    (link,) = facts.links
    assert (link.gpu_a, link.gpu_b, link.topology, link.nvlink_count) == (0, 1, "PHB", 0)
    assert (link.p2p_read, link.p2p_nvlink) == ("chipset_not_supported", "not_supported")


def test_processes_with_unknown_memory_and_invisible_name() -> None:
    gpu0, gpu1 = probe(fake_nvml("rtx3090x2_pcie")).gpus
    assert gpu0.processes == (GpuProcess(pid=3170, used_memory_mib=21864, name="llama-server"),)
    # NVML reports usedGpuMemory None (NVML_VALUE_NOT_AVAILABLE); psutil cannot see the pid.
    assert gpu1.processes == (GpuProcess(pid=91544, used_memory_mib=None, name=None),)


def test_process_name_defaults_to_psutil_lookup() -> None:
    import os

    fake = fake_nvml("rtx3090x2_pcie")
    fake.devices[0]["processes"] = [{"pid": os.getpid(), "used_bytes": 1 << 20}]
    gpu0 = probe_nvidia(fake).gpus[0]  # no process_name: the real process table
    assert gpu0.processes is not None
    assert gpu0.processes[0].name is not None and "python" in gpu0.processes[0].name.lower()


def test_processes_fall_back_to_v2_on_old_drivers() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceGetComputeRunningProcesses_v3", "FunctionNotFound")
    gpu0 = probe(fake).gpus[0]
    assert gpu0.processes == (GpuProcess(pid=3170, used_memory_mib=21864, name="llama-server"),)
    assert "nvmlDeviceGetComputeRunningProcesses_v2" in fake.calls
    facts = probe(fake)
    assert facts.error is None and facts.library_mismatch is not None
    assert facts.library_mismatch.startswith("Unversioned function called")


def test_the_fake_raises_what_nvidia_ml_py_raises_on_an_old_driver() -> None:
    """Real nvidia-ml-py wraps the unversioned call in throwOnVersionMismatch: on a driver
    without the _v3 symbol it raises NVMLLibraryMismatchError, which is not an NVMLError."""
    import pynvml

    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceGetComputeRunningProcesses_v3", "FunctionNotFound")
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLLibraryMismatchError) as e:
        fake.nvmlDeviceGetComputeRunningProcesses(handle)
    assert not isinstance(e.value, pynvml.NVMLError)


def test_library_mismatch_is_a_doctor_warning_not_a_crash() -> None:
    from llmops.plan.checks import WARN, check_gpu_driver

    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceGetComputeRunningProcesses_v3", "FunctionNotFound")
    fake.set_error("nvmlDeviceGetComputeRunningProcesses_v2", "FunctionNotFound")
    nv = probe(fake)  # neither call exists: no process list, and no exception
    assert nv.gpus[0].processes is None and nv.library_mismatch
    import dataclasses

    from tests.fixtures.regen_facts import host_facts

    facts = dataclasses.replace(host_facts("rtx3090x2_pcie"), nvidia=nv)
    (row,) = check_gpu_driver(facts)
    assert row.status == WARN
    assert "nvidia-ml-py is newer than this driver's NVML" in row.message
    assert "Unversioned function called" in row.message
    driver = nv.driver_version or ""
    cuda_major = (nv.cuda_driver_version or "").split(".")[0]
    assert f"nvidia-ml-py=={cuda_major}.{driver.split('.')[0]}.*" in (row.hint or "")


# --------------------------------------------------------------------------- lost GPU


def test_lost_gpu_is_an_error_row_and_the_others_report() -> None:
    facts = probe(fake_nvml("lost_gpu"))
    assert facts.error is None
    assert facts.cuda_driver_version == "12.6"
    assert len(facts.gpus) == 4
    lost = facts.gpus[2]
    assert lost == GpuInfo(index=2, error="GPU is lost (NVML: GPU is lost)")
    assert not lost.ok
    assert [g.index for g in facts.healthy_gpus] == [0, 1, 3]
    for gpu in facts.healthy_gpus:
        assert gpu.name == "NVIDIA A100-SXM4-80GB"
        assert (gpu.memory_total_mib, gpu.compute_capability) == (81920, "8.0")
        assert gpu.power_limit_w == 400.0
    assert (facts.gpus[3].ecc_enabled, facts.gpus[3].ecc_pending) == (True, False)
    # Links only between healthy GPUs; direct GPU-to-GPU NVLinks counted by remote bus id.
    assert [(lk.gpu_a, lk.gpu_b, lk.nvlink_count, lk.topology) for lk in facts.links] == [
        (0, 1, 4, "SYS"),
        (0, 3, 4, "SYS"),
        (1, 3, 4, "SYS"),
    ]


def test_gpu_lost_midway_keeps_identity() -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.set_error("nvmlDeviceGetPowerUsage", "GpuIsLost", device=6)
    gpu6 = probe(fake).gpus[6]
    assert gpu6.error == "GPU is lost (NVML: GPU is lost)"
    assert gpu6.uuid == "GPU-1d7e4a8f-9b0c-2d3e-4f5a-6b7c8d9e0f1a"
    assert gpu6.memory_total_mib is None


def test_unknown_error_is_fatal_for_the_gpu_not_for_the_probe() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceGetMemoryInfo_v2", "Unknown", device=1)
    facts = probe(fake)
    assert facts.gpus[1].error == "GPU query failed (NVML: Unknown Error)"
    assert facts.gpus[0].ok and facts.links == ()  # one healthy GPU: no pairs


def test_field_errors_become_none() -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.set_error("nvmlDeviceGetPowerUsage", "NoPermission")
    fake.set_error("nvmlDeviceGetPowerManagementLimitConstraints", "NotSupported")
    fake.set_error("nvmlDeviceGetUtilizationRates", "InvalidArgument")
    gpu = probe(fake).gpus[0]
    assert gpu.ok
    assert (gpu.power_draw_w, gpu.power_min_limit_w, gpu.power_max_limit_w) == (None, None, None)
    assert gpu.utilization_gpu_pct is None
    assert gpu.power_limit_w == 700.0


def test_function_missing_from_the_binding_is_none() -> None:
    class OldBinding(FakeNvml):
        nvmlDeviceGetMigMode = None  # type: ignore[assignment]  # binding lacks it

    data = json.loads((FACTS_DIR.parent / "nvml" / "lost_gpu.json").read_text())
    gpu = probe(OldBinding(data)).gpus[0]
    assert gpu.ok and gpu.mig_enabled is None and gpu.ecc_enabled is True


# --------------------------------------------------------------------------- init failures


def test_no_driver_fixture() -> None:
    fake = fake_nvml("no_driver")
    facts = probe(fake)
    assert facts == NvidiaFacts(
        error="no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)",
        error_kind="no_driver",
    )
    assert fake.calls == ["nvmlInit"]  # nothing else, and no shutdown of a failed init


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        ("DriverNotLoaded", "driver_not_loaded", "kernel module is not loaded"),
        ("LibRmVersionMismatch", "version_mismatch", "upgraded without a reboot"),
        ("NoPermission", "no_permission", "Insufficient Permissions"),
        ("Unknown", "unknown", "Unknown Error"),
    ],
)
def test_init_errors_map_to_kinds(error: str, kind: str, words: str) -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.data["init_error"] = error
    facts = probe(fake)
    assert facts.error_kind == kind
    assert facts.error is not None and words in facts.error
    assert facts.gpus == ()


def test_missing_nvidia_ml_py(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    facts = probe_nvidia()
    assert facts.error_kind == "no_library"
    assert facts.error is not None and "nvidia-ml-py" in facts.error


def test_device_count_failure_keeps_driver_versions() -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.set_error("nvmlDeviceGetCount", "Unknown")
    facts = probe(fake)
    assert (facts.driver_version, facts.error_kind, facts.gpus) == ("550.54.15", "unknown", ())
    assert fake.initialized == 0


@pytest.mark.parametrize("name", FIXTURES[:3])
def test_shutdown_always_follows_a_successful_init(name: str) -> None:
    fake = fake_nvml(name)
    probe(fake)
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, 0)
    assert fake.calls[0] == "nvmlInit" and fake.calls[-1] == "nvmlShutdown"


def test_shutdown_runs_when_the_probe_crashes() -> None:
    fake = fake_nvml("rtx3090x2_pcie")

    def boom(handle: FakeHandle) -> str:
        raise RuntimeError("bug")

    fake.nvmlDeviceGetName = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        probe(fake)
    assert fake.initialized == 0


# --------------------------------------------------------------------------- NVML quirks


def test_p2p_caps_index_read_is_a_tuple_and_ctypes_rejects_it() -> None:
    """ops.md §0 item 4: pynvml.NVML_P2P_CAPS_INDEX_READ == (0,) (stray comma)."""
    assert pynvml.NVML_P2P_CAPS_INDEX_READ == (0,)
    fake = fake_nvml("h100x8_nvlink")
    fake.nvmlInit()
    a, b = fake.nvmlDeviceGetHandleByIndex(0), fake.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(ctypes.ArgumentError):
        fake.nvmlDeviceGetP2PStatus(a, b, pynvml.NVML_P2P_CAPS_INDEX_READ)
    assert fake.nvmlDeviceGetP2PStatus(a, b, 0) == pynvml.NVML_P2P_STATUS_OK
    fake.nvmlShutdown()
    # ... and probe_nvidia passes the integer, so it gets a real answer instead of a crash.
    facts = probe(fake_nvml("h100x8_nvlink"))
    assert facts.links[0].p2p_read == "ok"


def test_real_ctypes_rejects_a_tuple_argument() -> None:
    """The fake's ArgumentError is what ctypes really does with an argtypes-less function."""
    libc = ctypes.CDLL(None)
    with pytest.raises(ctypes.ArgumentError):
        libc.abs(pynvml.NVML_P2P_CAPS_INDEX_READ)


def test_memory_info_falls_back_from_v2_to_v1() -> None:
    fake = fake_nvml("h100x8_nvlink")
    fake.set_error("nvmlDeviceGetMemoryInfo_v2", "FunctionNotFound")  # driver < 515
    gpu0 = probe(fake).gpus[0]
    assert "nvmlDeviceGetMemoryInfo" in fake.calls
    # v1's "used" includes the 579 MiB the driver reserves.
    assert (gpu0.memory_total_mib, gpu0.memory_used_mib, gpu0.memory_free_mib) == (
        81559,
        74018 + 579,
        6962,
    )


def test_memory_info_v2_version_mismatch_also_falls_back() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceGetMemoryInfo_v2", "ArgumentVersionMismatch")
    assert probe(fake).gpus[1].memory_used_mib == 1540 + 257


def test_memory_info_prefers_v2() -> None:
    fake = fake_nvml("h100x8_nvlink")
    probe(fake)
    assert "nvmlDeviceGetMemoryInfo_v2" in fake.calls
    assert "nvmlDeviceGetMemoryInfo" not in fake.calls


def test_temperature_prefers_v_when_the_driver_has_it() -> None:
    fake = fake_nvml("lost_gpu")  # driver 560 has nvmlDeviceGetTemperatureV
    facts = probe(fake)
    assert facts.gpus[0].temperature_c == 33
    assert "nvmlDeviceGetTemperatureV" in fake.calls
    assert "nvmlDeviceGetTemperature" not in fake.calls


def test_temperature_falls_back_to_the_deprecated_call() -> None:
    fake = fake_nvml("lost_gpu")
    fake.set_error("nvmlDeviceGetTemperatureV", "FunctionNotFound")
    facts = probe(fake)
    assert [g.temperature_c for g in facts.gpus] == [33, 33, None, 33]
    assert "nvmlDeviceGetTemperature" in fake.calls


def test_temperature_not_supported_is_none_without_fallback() -> None:
    fake = fake_nvml("lost_gpu")
    fake.set_error("nvmlDeviceGetTemperatureV", "NotSupported")
    assert probe(fake).gpus[0].temperature_c is None
    assert "nvmlDeviceGetTemperature" not in fake.calls


@pytest.mark.parametrize(
    ("version", "text"), [(12040, "12.4"), (12020, "12.2"), (11080, "11.8"), (13000, "13.0")]
)
def test_cuda_version_string(version: int, text: str) -> None:
    assert cuda_version_string(version) == text


def test_fake_raises_real_pynvml_classes() -> None:
    assert type(nvml_error("GpuIsLost")) is pynvml.NVMLError_GpuIsLost
    assert type(nvml_error(13)) is pynvml.NVMLError_FunctionNotFound
    fake = fake_nvml("rtx3090x2_pcie")
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("name", FIXTURES)
def test_facts_snapshot_matches_the_probe(name: str) -> None:
    """tests/fixtures/facts/<name>.json: loads as HostFacts; its nvidia section is current."""
    snapshot = host_facts_from_json((FACTS_DIR / f"{name}.json").read_text())
    assert snapshot.nvidia == probe(fake_nvml(name)), "run tests/fixtures/regen_facts.py"
    assert snapshot.system is not None and snapshot.platform is not None
    assert (
        to_jsonable(snapshot.nvidia)["gpus"]
        == json.loads((FACTS_DIR / f"{name}.json").read_text())["nvidia"]["gpus"]
    )


# --------------------------------------------------------------------------- the real pynvml


def test_real_pynvml_on_this_machine_reports_no_driver() -> None:
    """No fake: the real nvidia-ml-py on a machine without libnvidia-ml.so.1."""
    import ctypes.util

    facts = probe_nvidia()
    if facts.error_kind is None or ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has an NVIDIA driver")
    assert facts.error_kind == "no_driver"
    assert facts.error == "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)"
    assert facts.gpus == ()
