"""--hw parsing gives the probe's GpuInfo shape; facts become devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts, host_facts_from_json
from llmops.plan.hardware import MIB, describe, devices_from_facts, facts_from_hw, parse_hw

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "facts"


@pytest.mark.parametrize(
    ("text", "n", "mib", "cc"),
    [
        ("2x24GB", 2, 24576, None),
        ("24GB", 1, 24576, None),
        ("1xA100-80GB", 1, 81920, "8.0"),
        ("8xH100", 8, 81559, "9.0"),
        ("2X rtx4090", 2, 24564, "8.9"),
        ("1xA100-40GB", 1, 40960, "8.0"),
        ("4xL40S", 4, 46068, "8.9"),
        ("2x 16384MB", 2, 16384, None),
    ],
)
def test_parse_hw(text: str, n: int, mib: int, cc: str | None) -> None:
    spec = parse_hw(text)
    assert len(spec.gpus) == n and not spec.cpu_only
    assert [g.index for g in spec.gpus] == list(range(n))
    assert all(g.memory_total_mib == mib and g.memory_free_mib == mib for g in spec.gpus)
    assert spec.gpus[0].compute_capability == cc


def test_parse_mixed_and_cpu() -> None:
    spec = parse_hw("24GB+12GB,ram:64GB")
    assert [g.memory_total_mib for g in spec.gpus] == [24576, 12288] and spec.ram_mib == 65536
    cpu = parse_hw("cpu")
    assert cpu.cpu_only and cpu.gpus == () and cpu.ram_mib is None
    assert parse_hw("cpu:32GB").ram_mib == 32768


@pytest.mark.parametrize(
    "bad",
    ["", "2x", "x24GB", "0x24GB", "2xFOO9000", "cpu+24GB", "24GB++12GB", "cpu:lots", "-1xH100"],
)
def test_malformed_hw(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_hw(bad)
    assert e.value.hint and "--hw" in e.value.hint


def test_devices_from_probe_fixture() -> None:
    facts = host_facts_from_json((FIXTURES / "rtx3090x2_pcie.json").read_text())
    gpus, host = devices_from_facts(facts)
    assert len(gpus) == 2 and gpus[0].kind == "gpu"
    assert gpus[0].capacity_bytes == facts.nvidia.gpus[0].memory_total_mib * MIB  # type: ignore[union-attr]
    assert "3090" in describe(gpus, host)


def test_hw_replaces_probe() -> None:
    base = HostFacts(llmops_version="0", collected_at="")
    f = facts_from_hw(parse_hw("2x24GB"), base)
    gpus, host = devices_from_facts(f)
    assert len(gpus) == 2 and host is None
    assert describe(gpus, host) == "2x 24GB GPU (24.0 GiB)"
