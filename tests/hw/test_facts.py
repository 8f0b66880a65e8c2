"""HostFacts round-trips through JSON, and malformed files give errors naming the field."""

from __future__ import annotations

import json

import pytest

from llmops.hw.facts import (
    GpuInfo,
    GpuProcess,
    HostFacts,
    NvidiaFacts,
    SystemFacts,
    from_dict,
    host_facts_from_json,
    to_jsonable,
)


def sample() -> HostFacts:
    return HostFacts(
        llmops_version="0.1.0",
        collected_at="2026-01-01T00:00:00+00:00",
        nvidia=NvidiaFacts(
            driver_version="550.54.15",
            cuda_driver_version="12.4",
            gpus=(
                GpuInfo(
                    0,
                    name="H100",
                    memory_total_mib=81559,
                    power_limit_w=700.0,
                    processes=(GpuProcess(12, None, "python"),),
                ),
                GpuInfo(1, error="GPU is lost"),
            ),
        ),
        system=SystemFacts(ram_total_mib=1000, container_evidence=("/.dockerenv exists",)),
    )


def test_round_trip_is_exact() -> None:
    f = sample()
    text = json.dumps(to_jsonable(f))
    assert host_facts_from_json(text) == f
    # doctor --json documents are accepted as well as bare facts
    assert (
        host_facts_from_json(json.dumps({"schema": 1, "facts": to_jsonable(f), "checks": []})) == f
    )


def test_int_watts_are_accepted_as_float() -> None:
    g = from_dict(GpuInfo, {"index": 0, "power_limit_w": 350})
    assert g.power_limit_w == 350.0 and isinstance(g.power_limit_w, float)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"collected_at": "x"}, "llmops_version"),
        ({"llmops_version": "1", "collected_at": "x", "nvidia": {"gpus": {}}}, "nvidia.gpus"),
        (
            {"llmops_version": "1", "collected_at": "x", "nvidia": {"gpus": [{"index": "zero"}]}},
            "nvidia.gpus[0].index",
        ),
    ],
)
def test_malformed_facts_name_the_field(doc: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        host_facts_from_json(json.dumps(doc))
    assert needle in str(e.value)
