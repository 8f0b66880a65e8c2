"""Shared inputs for the compose/k8s/multi-node render tests: plans, golden files, the
Kubernetes schema check."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from llmops.plan.launch import LaunchOptions, LaunchPlan, plan_launch
from tests.support.launch_cases import AWQ, FIX, FP16, GGUF, H100, RTX  # noqa: F401 - re-exported

GOLDEN = FIX / "golden"
DATA = "/home/u/.local/state/llmops"
K8S_VERSION = "1.30.0"  # a release every current managed cluster still offers
# The 2x3090 box with a driver for CUDA 12.9 (575 series): the snapshot's own 535 driver
# (CUDA 12.2) is older than the TGI (12.4), llama.cpp (12.8) and vLLM (12.9) images need.
assert RTX.nvidia is not None
RTX_CUDA129 = dataclasses.replace(
    RTX,
    nvidia=dataclasses.replace(RTX.nvidia, driver_version="575.51.03", cuda_driver_version="12.9"),
)


def vllm_plan(**kw: Any) -> LaunchPlan:
    opts = LaunchOptions(engine="vllm", name="l", context=16384, gpus=(0,), hf_token=True, **kw)
    return plan_launch(FP16, opts, H100)


def tgi_plan(**kw: Any) -> LaunchPlan:
    opts = LaunchOptions(engine="tgi", name="m", context=8192, gpus=(0, 1), **kw)
    return plan_launch(AWQ, opts, RTX_CUDA129)


def llamacpp_plan(**kw: Any) -> LaunchPlan:
    opts = LaunchOptions(engine="llamacpp", name="q", context=4096, gpus=(0,), **kw)
    return plan_launch(GGUF, opts, RTX_CUDA129)


def golden(filename: str, text: str) -> None:
    path = GOLDEN / filename
    if os.environ.get("LLMOPS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing; LLMOPS_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{filename} changed; LLMOPS_UPDATE_GOLDEN=1 to accept"


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _labels_in(obj: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            named = k in ("labels", "matchLabels", "selector", "nodeSelector")
            if named and isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
                out.append(v)
            out += _labels_in(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _labels_in(v)
    return out


def validate_k8s(docs: list[dict[str, Any]]) -> None:
    """Every manifest against the Kubernetes OpenAPI schema (kubernetes-validate ships the
    schemas; strict: unknown fields fail), plus what the schema leaves to the API server:
    label syntax and DNS-1123 object names."""
    import kubernetes_validate

    assert docs, "no manifests"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert _DNS_LABEL.match(doc["metadata"]["name"]), doc["metadata"]["name"]
        for labels in _labels_in(doc):
            for k, v in labels.items():
                assert _LABEL_KEY.match(k), k
                assert _LABEL_VALUE.match(v), (k, v)
