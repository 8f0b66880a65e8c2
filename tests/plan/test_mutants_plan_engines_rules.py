"""plan/engines/rules.py: the driver, GPU-brand, bf16 and rope rules several engines share,
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import dataclasses

import pytest

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.engines import rules
from llmops.plan.launch import LaunchOptions, ModelArtifact
from llmops.plan.model import RopeScaling
from tests.support.launch_cases import RTX

assert RTX.nvidia is not None
NO_NVIDIA = dataclasses.replace(RTX, nvidia=None)


def _named(name: str) -> HostFacts:
    assert RTX.nvidia is not None
    gpus = tuple(dataclasses.replace(g, name=name) for g in RTX.nvidia.gpus)
    return dataclasses.replace(RTX, nvidia=dataclasses.replace(RTX.nvidia, gpus=gpus))


def test_bf16_needs_compute_capability_8_0() -> None:
    assert rules.no_bf16(7.5) and not rules.no_bf16(8.0) and not rules.no_bf16(None)


def test_geforce_and_titan_are_consumer_cards() -> None:
    # the CUDA bases list branches for brand=geforce/titan apart from datacenter brands
    assert rules.consumer_gpus(RTX, (0,)) is True  # GeForce RTX 3090
    assert rules.consumer_gpus(_named("NVIDIA TITAN RTX"), (0,)) is True
    assert rules.consumer_gpus(_named("NVIDIA A100-SXM4-80GB"), (0,)) is False
    assert rules.consumer_gpus(None, (0,)) is None


def test_driver_facts_missing_read_as_unknown() -> None:
    assert rules.driver_cuda(None) is None and rules.driver_cuda(NO_NVIDIA) is None
    assert rules.driver_branch(None) is None and rules.driver_branch(NO_NVIDIA) is None
    assert RTX.nvidia is not None
    blank = dataclasses.replace(RTX, nvidia=dataclasses.replace(RTX.nvidia, driver_version=""))
    assert rules.driver_branch(blank) is None
    assert rules.driver_branch(RTX) == int(str(RTX.nvidia.driver_version).split(".")[0])


def test_an_unlisted_branch_cannot_start_a_newer_image() -> None:
    assert RTX.nvidia is not None
    drv = rules.driver_cuda(RTX)
    assert drv is not None
    newer = rules.CudaImage("x:newer", (drv[0], drv[1] + 1), "test", admits=())
    assert rules.can_start(newer, RTX, (0,)) is False
    assert rules.can_start(newer, None, (0,)) is False


ART = ModelArtifact(model="m", repo="o/m", quant="bf16", format="safetensors", trained_context=4096)


def test_rope_extends_the_models_own_linear_or_yarn_scaling() -> None:
    for kind in ("linear", "yarn"):
        a = dataclasses.replace(ART, native_rope=RopeScaling(kind, 1.33333, 4096))
        o = LaunchOptions(engine="vllm", rope=RopeScaling(kind, 1.5))
        # factors multiply over the same original context, to 4 decimals
        assert rules.effective_rope(a, o, "vLLM") == RopeScaling(kind, 2.0, 4096)
    a = dataclasses.replace(ART, native_rope=RopeScaling("llama3", 8.0, 8192))
    with pytest.raises(UsageError):
        rules.effective_rope(a, LaunchOptions(engine="vllm", rope=RopeScaling("yarn", 2.0)), "x")
