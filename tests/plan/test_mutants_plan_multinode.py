"""plan/multinode.py at its limits (node counts, layers, runtime), pinned where the mutation
benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import dataclasses

import pytest

from llmops.errors import UsageError
from llmops.plan.launch import LaunchOptions, plan_launch
from llmops.plan.multinode import MAX_NODES, NodeHost, head_script, plan_multinode, split_nodes
from tests.support.launch_cases import FP16
from tests.support.scale_cases import RTX_CUDA129


def test_node_counts_from_one_to_the_maximum() -> None:
    assert split_nodes("1x8xH100") == (1, "8xH100")
    assert split_nodes(f"{MAX_NODES}x8xH100") == (MAX_NODES, "8xH100")
    for bad in ("0x8xH100", f"{MAX_NODES + 1}x8xH100"):
        with pytest.raises(UsageError):
            split_nodes(bad)


def _vllm(runtime: str = "docker"):  # type: ignore[no-untyped-def]
    return plan_launch(
        FP16, LaunchOptions(engine="vllm", gpus=(0, 1), runtime=runtime), RTX_CUDA129
    )


def test_as_many_pipeline_stages_as_layers_is_allowed() -> None:
    mp = plan_multinode(_vllm(), nodes=4, gpus_per_node=2, layers=4)
    assert mp.pipeline_parallel == 4
    with pytest.raises(UsageError):
        plan_multinode(_vllm(), nodes=5, gpus_per_node=2, layers=4)


def test_a_native_plan_is_refused() -> None:
    with pytest.raises(UsageError) as e:
        plan_multinode(_vllm("native"), nodes=2, gpus_per_node=2)
    assert "--runtime docker" in (e.value.hint or "")


@pytest.mark.parametrize(
    "ssh",
    [
        "ssh root@10.0.0.5 -J bastion",  # the jump host's name comes last: still not the target
        "ssh -p 41022 root@10.0.0.5 -i key",
        "ssh -o StrictHostKeyChecking=yes root@10.0.0.5 -l root",
        "root@10.0.0.5:22",
        "ssh root@[10.0.0.5]:22",
    ],
)
def test_a_nodes_address_is_its_ssh_targets_host(ssh: str) -> None:
    assert NodeHost("gpu-a", ssh).address == "10.0.0.5"


def test_a_plan_without_an_entrypoint_serves_with_vllm() -> None:
    mp = plan_multinode(_vllm(), nodes=2, gpus_per_node=2)
    bare = dataclasses.replace(mp, serve=dataclasses.replace(mp.serve, entrypoint=None))
    last = head_script(bare).splitlines()[-1]
    assert last.startswith("exec vllm serve ") and last == head_script(mp).splitlines()[-1]
