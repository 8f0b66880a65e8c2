"""plan/engines/base.py: what every LaunchPlan carries, pinned where the mutation benchmark
found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import pytest

from llmops.plan.launch import DEFAULT_HOST_PORT, LaunchOptions, plan_launch
from tests.support.launch_cases import GGUF, SMOL
from tests.support.scale_cases import tgi_plan, vllm_plan


@pytest.mark.parametrize(
    "make",
    [
        vllm_plan,
        tgi_plan,
        lambda: plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=4096), None),
        lambda: plan_launch(SMOL, LaunchOptions(engine="torch", context=2048), None),
    ],
)
def test_every_engine_is_probed_on_health(make) -> None:  # type: ignore[no-untyped-def]
    # vLLM's api_server, TGI's router, llama-server and llmops' backend (routes_ops.py) all
    # answer GET /health
    p = make()
    assert p.health.path == "/health"
    assert p.host_port == p.ports[0].host_port == DEFAULT_HOST_PORT[p.engine]


def test_no_hf_token_unless_asked() -> None:
    # LaunchOptions.hf_token defaults to False: no HF_TOKEN secret for a public model
    p = plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=4096), None)
    assert "HF_TOKEN" not in [s.env for s in p.secret_env]
