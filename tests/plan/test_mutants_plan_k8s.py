"""plan/k8s.py: labels, volumes and mounts of the engine pod, pinned where the mutation
benchmark found gaps (benchmarks/MUTATION.md). The golden manifests (test_render_k8s.py) show
whole documents; these state one rule each."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from llmops.plan.k8s import (
    K8sOptions,
    labels,
    manifests,
    pod_volumes,
    render_k8s,
    render_k8s_multinode,
    secret_comment,
)
from llmops.plan.launch import Mount
from llmops.plan.multinode import plan_multinode
from tests.support.scale_cases import validate_k8s, vllm_plan


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
    vols, mounts = pod_volumes(plan, K8sOptions())
    assert {"name": "hf-cache", "mountPath": "/models", "readOnly": True} in mounts
    # the cache volume comes with it unless a StatefulSet's claim template provides it
    assert "hf-cache" in [v["name"] for v in vols]
    vols, _mounts = pod_volumes(plan, K8sOptions(), cache=False)
    assert "hf-cache" not in [v["name"] for v in vols]
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


def test_no_secret_no_secret_comment() -> None:
    plan = dataclasses.replace(vllm_plan(), secret_env=())
    assert secret_comment(plan, K8sOptions()) == ""
    assert "kubectl create secret" not in render_k8s(plan, K8sOptions())


def _multinode_docs(opts: K8sOptions) -> list[dict[str, Any]]:
    mp = plan_multinode(vllm_plan(), nodes=2, gpus_per_node=4, attention_heads=32, layers=32)
    return [d for d in yaml.safe_load_all(render_k8s_multinode(mp, opts)) if d]


def test_multinode_on_a_host_path_cache_claims_nothing() -> None:
    docs = _multinode_docs(K8sOptions(hf_cache="hostPath:/mnt/hf"))
    validate_k8s(docs)
    assert "PersistentVolumeClaim" not in [d["kind"] for d in docs]
    for d in docs:
        assert "volumeClaimTemplates" not in (d.get("spec") or {})
    text = yaml.safe_dump_all(docs)
    assert "path: /mnt/hf" in text
    # with the default (a claim), each StatefulSet claims its cache
    pvc = _multinode_docs(K8sOptions())
    assert any("volumeClaimTemplates" in (d.get("spec") or {}) for d in pvc)
