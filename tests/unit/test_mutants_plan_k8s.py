"""plan/k8s.py: labels, volumes and mounts of the engine pod, pinned where the mutation
benchmark found gaps (benchmarks/MUTATION.md). The golden manifests (test_render_k8s.py) show
whole documents; these state one rule each."""

from __future__ import annotations

import dataclasses

from llmops.plan.k8s import K8sOptions, labels, manifests, pod_volumes
from llmops.plan.launch import Mount
from tests.unit.scale_cases import validate_k8s, vllm_plan


def test_a_label_llmops_did_not_set_is_not_made_up() -> None:
    plan = vllm_plan()
    no_quant = tuple((k, v) for k, v in plan.labels if k != "llmops.quant")
    out = labels(dataclasses.replace(plan, labels=no_quant))
    assert "llmops.quant" not in out
    assert out["llmops.deployment"] == "l" and out["llmops.engine"] == "vllm"


def test_a_label_value_with_nothing_label_safe_left_is_dropped() -> None:
    # a label value is alphanumeric at both ends: "..." has nothing left, so no label at all
    plan = vllm_plan()
    odd = tuple((k, "..." if k == "llmops.model" else v) for k, v in plan.labels)
    out = labels(dataclasses.replace(plan, labels=odd))
    assert "llmops.model" not in out
    assert "" not in out.values()


def test_a_read_only_bind_is_mounted_read_only() -> None:
    plan = dataclasses.replace(vllm_plan(), mounts=(Mount("/m", "/models", read_only=True),))
    _vols, mounts = pod_volumes(plan, K8sOptions())
    assert {"name": "hf-cache", "mountPath": "/models", "readOnly": True} in mounts
    plan = dataclasses.replace(vllm_plan(), mounts=(Mount("/m", "/models"),))
    _vols, mounts = pod_volumes(plan, K8sOptions())
    assert {"name": "hf-cache", "mountPath": "/models"} in mounts


def test_no_cache_volume_or_claim_without_a_bind_mount() -> None:
    plan = dataclasses.replace(vllm_plan(), mounts=())
    vols, mounts = pod_volumes(plan, K8sOptions())
    assert [v["name"] for v in vols] == ["dshm"] and [m["name"] for m in mounts] == ["dshm"]
    docs = manifests(plan, K8sOptions())
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    validate_k8s(docs)
