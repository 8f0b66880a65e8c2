"""The committed host snapshots (tests/fixtures/facts/*.json) against their raw NVML inputs.

``tests/hw/test_nvml.py`` checks the snapshots equal what the probe makes of the NVML fixtures,
which only proves they agree with the code that wrote them. Here each snapshot's GPU numbers
are derived again, by hand-written arithmetic, from the raw fixture (bytes → MiB, mW → W, the
[current, pending] pairs), so a probe bug that was frozen into a snapshot fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MIB = 1 << 20
NAMES = ("h100x8_nvlink", "rtx3090x2_pcie", "lost_gpu")


def _raw_devices(name: str) -> list[dict]:  # type: ignore[type-arg]
    raw = json.loads((FIX / "nvml" / f"{name}.json").read_text())
    out = []
    for dev in raw["devices"]:
        merged = json.loads(json.dumps(raw.get("device_defaults", {})))
        for k, v in dev.items():
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v
        out.append(merged)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_snapshot_gpu_numbers_follow_from_the_raw_nvml_values(name: str) -> None:
    snap = json.loads((FIX / "facts" / f"{name}.json").read_text())
    raw = json.loads((FIX / "nvml" / f"{name}.json").read_text())
    nv = snap["nvidia"]
    assert nv["driver_version"] == raw["driver_version"]
    cuda = int(raw["cuda_driver_version"])
    assert nv["cuda_driver_version"] == f"{cuda // 1000}.{cuda % 1000 // 10}"
    devices = _raw_devices(name)
    assert len(nv["gpus"]) == len(devices)
    for gpu, dev in zip(nv["gpus"], devices, strict=True):
        if dev.get("lost") or gpu.get("error"):
            assert gpu["error"] and gpu["memory_total_mib"] is None
            continue
        mem = dev["memory_bytes"]
        assert gpu["memory_total_mib"] == mem["total"] // MIB
        assert gpu["memory_used_mib"] == mem["used"] // MIB
        assert gpu["memory_free_mib"] == mem["free"] // MIB
        assert gpu["power_limit_w"] == dev["power_mw"]["enforced_limit"] / 1000
        assert gpu["power_draw_w"] == pytest.approx(dev["power_mw"]["usage"] / 1000)
        major, minor = dev["compute_capability"]
        assert gpu["compute_capability"] == f"{major}.{minor}"
        assert gpu["name"] == dev["name"] and gpu["pci_bus_id"] == dev["pci_bus_id"]
        used = {p["pid"]: p.get("used_bytes") for p in dev.get("processes") or []}
        got = {p["pid"]: p["used_memory_mib"] for p in gpu["processes"] or []}
        assert got == {pid: (b // MIB if b is not None else None) for pid, b in used.items()}
