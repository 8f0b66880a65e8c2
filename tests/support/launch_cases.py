"""Model artifacts and host snapshots shared by the launch, render and scale tests."""

from __future__ import annotations

from pathlib import Path

from llmops.hw.facts import host_facts_from_json
from llmops.plan.launch import ModelArtifact

FIX = Path(__file__).resolve().parent.parent / "fixtures"
H100 = host_facts_from_json((FIX / "facts" / "h100x8_nvlink.json").read_text())
RTX = host_facts_from_json((FIX / "facts" / "rtx3090x2_pcie.json").read_text())

AWQ = ModelArtifact(
    model="mistral7b",
    repo="TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
    quant="awq",
    format="awq",
    trained_context=32768,
)
FP16 = ModelArtifact(
    model="llama3.1-8b",
    repo="meta-llama/Llama-3.1-8B-Instruct",
    quant="bf16",
    format="safetensors",
    gated=True,
    trained_context=131072,
)
GGUF = ModelArtifact(
    model="qwen2.5-7b",
    repo="Qwen/Qwen2.5-7B-Instruct-GGUF",
    quant="q4_k_m",
    format="gguf",
    file="qwen2.5-7b-instruct-q4_k_m.gguf",
    trained_context=32768,
)
SMOL = ModelArtifact(
    model="smollm2-135m", repo="smollm2", quant="fp32", format="bundled", trained_context=8192
)
