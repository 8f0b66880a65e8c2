"""`--format k8s`: goldens, every manifest against the Kubernetes OpenAPI schema
(kubernetes-validate, strict), GPUs, probes, shm, cache and secrets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from llmops.errors import UsageError
from llmops.plan.k8s import K8sOptions, manifests, render_k8s
from llmops.plan.render import render
from llmops.resources import templates_dir
from tests.support.scale_cases import (
    DATA,
    golden,
    llamacpp_plan,
    tgi_plan,
    validate_k8s,
    vllm_plan,
)


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def _k8s(plan, opts: K8sOptions | None = None) -> str:  # type: ignore[no-untyped-def]
    return render(plan, "k8s", templates=templates_dir(), data_dir=DATA, k8s=opts)


@pytest.mark.parametrize(
    ("name", "make"), [("vllm", vllm_plan), ("tgi-2gpu", tgi_plan), ("llamacpp", llamacpp_plan)]
)
def test_golden_k8s_and_schema(name: str, make) -> None:  # type: ignore[no-untyped-def]
    text = _k8s(make())
    golden(f"k8s-{name}.yaml", text)
    docs = _docs(text)
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    validate_k8s(docs)


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    """The validator really validates: a typo and a wrong type both fail."""
    import kubernetes_validate

    docs = _docs(_k8s(vllm_plan()))
    dep = _by_kind(docs)["Deployment"]
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s([bad])
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s([bad])


def test_vllm_deployment_gpus_probes_shm_cache_secrets() -> None:
    plan = vllm_plan()
    kinds = _by_kind(_docs(_k8s(plan)))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == plan.image and c["command"] == ["vllm"] and c["args"] == list(plan.argv)
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["enableServiceLinks"] is False  # no VLLM_PORT from a Service named vllm
    # startup: long enough to download weights; readiness waits for /v1/models
    sp = c["startupProbe"]
    assert sp["httpGet"]["path"] == "/health"
    assert sp["failureThreshold"] * sp["periodSeconds"] >= 30 * 60
    rp = c["readinessProbe"]
    # vLLM protects /v1 with the key: the probe sends it from the container's own env
    assert "http://localhost:8000/v1/models" in " ".join(rp["exec"]["command"])
    assert "VLLM_API_KEY" in " ".join(rp["exec"]["command"])
    # /dev/shm in memory (host IPC is not a pod option), the HF cache on the claim
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16384Mi"}
    assert vols["hf-cache"]["persistentVolumeClaim"]["claimName"] == "l-hf-cache"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/dev/shm"] == "dshm" and mounts["/root/.cache/huggingface"] == "hf-cache"
    # secrets are references to the Secret named after the deployment, never values
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "l", "key": "api-key"}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "l", "key": "hf-token"}
    assert all("value" not in env[k] for k in ("VLLM_API_KEY", "HF_TOKEN"))
    svc = kinds["Service"]["spec"]
    assert svc["ports"][0]["port"] == 8000 and svc["ports"][0]["targetPort"] == "http"
    assert svc["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"] == "200Gi"


def test_tgi_readiness_is_a_plain_http_get_and_shm_follows_the_plan() -> None:
    plan = tgi_plan()
    pod = _by_kind(_docs(_k8s(plan)))["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": "http"}
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert c["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == f"{plan.shm_size_mib}Mi"


def test_without_an_api_key_vllm_readiness_is_an_http_get() -> None:
    c = manifests(vllm_plan(api_key=False))[1]["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"


def test_hostpath_cache_namespace_and_storage_class() -> None:
    opts = K8sOptions(namespace="llm", hf_cache="hostPath:/mnt/hf", storage_class="fast")
    docs = _docs(_k8s(vllm_plan(), opts))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]  # no claim for a hostPath
    validate_k8s(docs)
    assert all(d["metadata"]["namespace"] == "llm" for d in docs)
    pod = docs[0]["spec"]["template"]["spec"]
    cache = next(v for v in pod["volumes"] if v["name"] == "hf-cache")
    assert cache["hostPath"] == {"path": "/mnt/hf", "type": "DirectoryOrCreate"}
    pvc = manifests(vllm_plan(), K8sOptions(storage_class="fast", cache_size_gib=300))[0]
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "300Gi"


@pytest.mark.parametrize("cache", ["hostPath:relative", "nfs:/x", "bogus"])
def test_bad_cache_option(cache: str) -> None:
    with pytest.raises(UsageError, match="HF cache"):
        render_k8s(vllm_plan(), K8sOptions(hf_cache=cache))


def test_names_and_label_values_are_made_valid() -> None:
    plan = dataclasses.replace(
        vllm_plan(),
        name="My_Model.v2",
        labels=(
            ("llmops.deployment", "My_Model.v2"),
            ("llmops.model", "org/Model:7b"),
            ("llmops.engine", "vllm"),
            ("llmops.quant", "bf16"),
        ),
    )
    docs = manifests(plan)
    validate_k8s(docs)
    assert docs[1]["metadata"]["name"] == "my-model-v2"
    assert docs[1]["metadata"]["labels"]["llmops.model"] == "org-Model-7b"


def test_secret_creation_is_shown_without_values() -> None:
    text = _k8s(vllm_plan())
    assert "kubectl create secret generic l --from-literal=api-key=<api_key>" in text
    assert "sk-" not in text and "hf_" not in text.replace("hf_token", "")


def test_native_plan_is_refused() -> None:
    plan = dataclasses.replace(vllm_plan(), runtime="native", image=None)
    with pytest.raises(UsageError, match="native"):
        render_k8s(plan)
