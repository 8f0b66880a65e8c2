"""The estimator against the seeds' VRAM tables, published file sizes, and its own rules."""

from __future__ import annotations

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.hardware import GIB, devices_from_facts, facts_from_hw, parse_hw
from llmops.plan.memory import FitOptions, FitReport, estimate, kv_bytes_per_token, rope_plan
from llmops.plan.quant import active_param_count, param_count, weight_inventory

CAT = load_catalog()


def fit(model: str, quant: str, engine: str, context: int, hw: str, **kw: object) -> FitReport:
    facts = facts_from_hw(parse_hw(hw), HostFacts(llmops_version="0", collected_at=""))
    gpus, host = devices_from_facts(facts)
    opts = FitOptions(quant=quant, engine=engine, context=context, **kw)  # type: ignore[arg-type]
    return estimate(CAT.get(model), gpus, host, opts)


def total_gib(r: FitReport) -> float:
    return sum(d.total_bytes for d in r.per_gpu) / GIB


# ----------------------------------------------------------------------------- seed 000
# debgpt's table: the torch backend (transformers + bitsandbytes), figures in GB = card GiB.
# Tolerance: our total at a short (2k) context is within -10 % / +15 % of the seed's "at least".


@pytest.mark.parametrize(
    ("model", "quant", "seed_gb", "hw"),
    [
        ("mistral7b", "fp16", 16, "1x24GB"),  # "24+GB preferred": 14.5 GB weights, fits a 24GB card
        ("mistral7b", "8bit", 8, "1x12GB"),  # "at least 12+GB": fits a 12GB card
        ("mistral7b", "4bit", 5, "1x6GB"),  # "at least 6+GB": fits a 6GB card
        ("mixtral8x7b", "fp16", 90, "2x48GB"),  # "90+GB"
        ("mixtral8x7b", "8bit", 45, "1x48GB"),  # "45+GB"
    ],
)
def test_seed000_rows(model: str, quant: str, seed_gb: float, hw: str) -> None:
    r = fit(model, quant, "torch", 2048, hw)
    assert r.fits, r
    assert 0.90 * seed_gb <= total_gib(r) <= 1.15 * seed_gb, total_gib(r)


def test_seed000_mixtral_4bit_differs_on_purpose() -> None:
    """Seed: "Mixtral 4bit 23+GB" = 46.7 B x 4 bits. NF4 stores an fp32 absmax per 64 weights
    (4.5 bits) and keeps embeddings/norms/router at fp16: ~26 GiB, so 24 GB cards do NOT fit."""
    r = fit("mixtral8x7b", "4bit", "torch", 2048, "1x24GB")
    assert not r.fits
    assert 23 < total_gib(r) < 23 * 1.2
    inv = weight_inventory(CAT.get("mixtral8x7b").arch, "4bit")
    assert inv.total_bytes / param_count(CAT.get("mixtral8x7b").arch) == pytest.approx(
        0.57, abs=0.01
    )  # 4.56 bpw


def test_seed000_long_context_demos() -> None:
    """~10k-token demos: 4bit fits 12 GB and 8bit fits 24 GB as the seed prefers; Mixtral 4bit
    fits 2x48GB. The seed asks 48 GB for fp16 because HF eager attention materialises
    heads x n^2 scores; we plan SDPA (memory-efficient), so fp16 at 10k fits 24 GB: on purpose."""
    assert fit("mistral7b", "4bit", "torch", 10240, "1x12GB").fits
    assert fit("mistral7b", "8bit", "torch", 10240, "1x24GB").fits
    assert fit("mistral7b", "fp16", "torch", 10240, "1x24GB").fits
    assert fit("mixtral8x7b", "4bit", "torch", 10240, "2x48GB").fits


# ----------------------------------------------------------------------------- seed 001
# "assuming 4bit quant and groupsize128" (exllama: GPTQ, fp16 cache, prompt in 2048-token
# chunks -> prefill_tokens=2048). Seed figures are card sizes (GiB). Tolerance: our total is
# within -20 % / +5 % of the figure (rows name the card that fits, not the exact need).

SEED001 = [
    ("llama2-7b", 8192, "1x8GB", 8.0, False),  # see test_seed001_llama2_7b_differs_on_purpose
    ("llama2-13b", 8192, "1x14GB", 14.0, None),  # 14 GB is no card; 1.4 % under it
    ("vicuna-33b", 3584, "1x24GB", 24.0, True),
    ("codellama-34b", 16384, "1x24GB", 24.0, True),  # "thanks to GQA"
    ("llama2-70b", 16384, "2x24GB", 48.0, True),
]


@pytest.mark.parametrize(("model", "ctx", "hw", "seed_gib", "fits"), SEED001)
def test_seed001_rows(model: str, ctx: int, hw: str, seed_gib: float, fits: bool | None) -> None:
    r = fit(model, "gptq", "torch", ctx, hw, prefill_tokens=2048)
    assert 0.80 * seed_gib <= total_gib(r) <= 1.05 * seed_gib, total_gib(r)
    if fits is not None:
        assert r.fits is fits


def test_seed001_llama2_7b_differs_on_purpose() -> None:
    """A Llama-2 7B is multi-head: 512 KiB/token, so 8k tokens is 4 GiB of cache on top of
    3.6 GiB of GPTQ weights and the CUDA context: 8.4 GiB, just over an 8 GiB card. The
    seed's 8 GB leaves out the CUDA context. Within +5 % of the figure all the same."""
    r = fit("llama2-7b", "gptq", "torch", 8192, "1x8GB", prefill_tokens=2048)
    assert not r.fits
    assert 8.0 < total_gib(r) <= 8.0 * 1.05
    assert r.rope is not None and r.rope.factor == 2.0  # 8k on a 4k model
    assert r.max_context >= 6144


def test_seed001_gqa_7b_fits_8gb_easily() -> None:
    """The seed's 7B is a Llama-2 (MHA); Mistral 7B (GQA, 128 KiB/token) needs ~5.6 GiB."""
    r = fit("mistral7b", "gptq", "torch", 8192, "1x8GB", prefill_tokens=2048)
    assert r.fits and total_gib(r) < 6.0 and r.rope is None


def test_seed001_70b_rope_and_split() -> None:
    r = fit("llama2-70b", "gptq", "torch", 16384, "2x24GB", prefill_tokens=2048)
    assert r.gpus_used == 2 and r.parallelism == "layers"
    assert sum(d.layers for d in r.per_gpu) == 80
    assert r.rope is not None and r.rope.factor == 4.0 and r.rope.original_context == 4096
    assert any("rope scaling" in w for w in r.warnings)


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("model", "quant"),
    [
        ("mistral7b", "q4_k_m"),
        ("llama2-7b", "q4_k_m"),
        ("llama2-13b", "q5_k_m"),
        ("llama2-70b", "q4_k_m"),
        ("llama3.1-8b", "q4_k_m"),
        ("llama3.1-8b", "q8_0"),
        ("mixtral8x7b", "q4_k_m"),
        ("qwen2.5-72b", "q4_k_m"),
        ("codellama-34b", "q4_k_m"),
        ("gemma2-9b", "q4_k_m"),
        ("yi-34b", "q8_0"),
        ("vicuna-33b", "q5_k_m"),
    ],
)
def test_gguf_mix_matches_published_file_sizes(model: str, quant: str) -> None:
    """Our per-tensor K-quant mix reproduces the repos' listed file sizes within 1 %."""
    spec = CAT.get(model)
    listed = spec.formats.gguf_file(quant)
    assert listed is not None and listed.size_bytes
    computed = weight_inventory(spec.arch, quant).total_bytes
    assert computed == pytest.approx(listed.size_bytes, rel=0.01)


def test_llama3_gptq_embeddings_stay_fp16() -> None:
    """B.1: with a 128k vocabulary the fp16 embedding + head make 4-bit GPTQ ~5.7 bpw."""
    arch = CAT.get("llama3.1-8b").arch
    inv = weight_inventory(arch, "gptq")
    bpw = inv.total_bytes * 8 / param_count(arch)
    assert 5.5 < bpw < 5.9
    assert inv.embed_bytes == 128256 * 4096 * 2 == inv.lm_head_bytes
    mistral = CAT.get("mistral7b").arch
    assert 4.4 < weight_inventory(mistral, "gptq").total_bytes * 8 / param_count(mistral) < 4.7


def test_every_recipe_param_count_matches_published() -> None:
    for m in CAT.models:
        if m.params is None:
            # 2025-26 entries are pinned to their model cards' rounded counts in
            # tests/catalog/test_catalog_2026.py
            assert m.released >= "2024-12", m.name
            continue
        assert param_count(m.arch) == m.params, m.name


# ----------------------------------------------------------------------------- KV cache


def test_kv_is_gqa_aware_never_hidden_size() -> None:
    kib = {m: kv_bytes_per_token(CAT.get(m), 2.0) / 1024 for m in CAT.names()}
    # peers-and-estimation.md B.2 table
    assert kib["mistral7b"] == 128
    assert kib["llama2-13b"] == 800
    assert kib["llama3.1-8b"] == 128
    assert kib["llama3.1-70b"] == 320
    assert kib["mixtral8x7b"] == 128
    assert kib["qwen2.5-7b"] == 56
    # a naive hidden x layers calculator would say 512 KiB for Mistral: 4x too much
    a = CAT.get("mistral7b").arch
    assert kib["mistral7b"] * 1024 * 4 == 2 * 2 * a.hidden_size * a.layers


def test_kv_scales_with_context_concurrency_and_dtype() -> None:
    base = fit("llama3.1-8b", "bf16", "vllm", 8192, "1xA100-80GB")
    assert base.per_gpu[0].kv_cache_bytes == 8192 * 128 * 1024
    four = fit("llama3.1-8b", "bf16", "vllm", 8192, "1xA100-80GB", concurrency=4)
    assert four.per_gpu[0].kv_cache_bytes == 4 * base.per_gpu[0].kv_cache_bytes
    fp8 = fit("llama3.1-8b", "bf16", "vllm", 8192, "1xA100-80GB", kv_dtype="fp8")
    assert fp8.per_gpu[0].kv_cache_bytes * 2 == base.per_gpu[0].kv_cache_bytes
    q8 = fit("llama3.1-8b", "q4_k_m", "llamacpp", 8192, "1x24GB", kv_dtype="q8_0")
    assert q8.per_gpu[0].kv_cache_bytes == 8192 * 128 * 1024 * 34 // 32 // 2


def test_sliding_window_layers_are_capped() -> None:
    # vLLM v0.33.0 holds min(window - 1 + max_in_flight_tokens, max_model_len) tokens in whole
    # 16-token blocks plus one (SlidingWindowSpec.max_admission_blocks_per_request,
    # vllm/v1/kv_cache_interface.py); max_in_flight_tokens = 2 batches (async scheduling,
    # vllm/config/vllm.py max_concurrent_batches) x max_num_batched_tokens, 2048 below 70 GiB
    r = fit("gemma2-9b", "bf16", "vllm", 16384, "1x48GB")
    a = CAT.get("gemma2-9b").arch
    per_tok_layer = 2 * a.kv_heads * a.head_dim * 2
    local = (-(-(4096 - 1 + 2 * 2048) // 16) + 1) * 16
    assert local == 8208
    assert r.per_gpu[0].kv_cache_bytes == per_tok_layer * (21 * 16384 + 21 * local)
    # llama.cpp keeps the window plus one ubatch (512); torch keeps the window, TGI the context
    r = fit("gemma2-9b", "q4_k_m", "llamacpp", 8192, "1x48GB")
    assert r.per_gpu[0].kv_cache_bytes == per_tok_layer * (21 * 8192 + 21 * (4096 + 512))


# ----------------------------------------------------------------------------- MoE, TP


def test_moe_holds_all_experts_reads_active_ones() -> None:
    arch = CAT.get("mixtral8x7b").arch
    assert param_count(arch) == 46_702_792_704
    assert 12.8e9 < active_param_count(arch) < 13.0e9
    r = fit("mixtral8x7b", "bf16", "vllm", 4096, "2xA100-80GB")
    assert r.fits and r.tensor_parallel == 2
    assert r.weights_total_bytes == pytest.approx(93.4e9, rel=0.01)


def test_tensor_parallel_divides_weights_and_kv_heads() -> None:
    one = fit("llama3.1-70b", "fp8", "vllm", 8192, "1xH100", gpus=1)
    four = fit("llama3.1-70b", "fp8", "vllm", 8192, "4xH100", gpus=4)
    assert four.tensor_parallel == 4
    assert four.per_gpu[0].weights_bytes == pytest.approx(
        one.per_gpu[0].weights_bytes / 4, rel=0.001
    )
    assert four.per_gpu[0].kv_cache_bytes * 4 == one.per_gpu[0].kv_cache_bytes  # 8 heads -> 2
    assert four.fits and not one.fits


def test_kv_heads_replicated_when_tp_exceeds_them() -> None:
    """Falcon-7B has one KV head (MQA): under TP each GPU still holds a full copy of it."""
    one = fit("falcon-7b", "bf16", "tgi", 2048, "1x24GB", gpus=1)
    # 71 heads: TP must divide them, so 2 GPUs is refused with the valid choices
    with pytest.raises(UsageError, match="tensor parallel"):
        fit("falcon-7b", "bf16", "tgi", 2048, "2x24GB", gpus=2)
    f40_1 = fit("falcon-40b", "bf16", "vllm", 2048, "8xH100", gpus=8)
    f40_16 = fit("falcon-40b", "bf16", "vllm", 2048, "16xH100", gpus=16)
    assert f40_16.per_gpu[0].kv_cache_bytes == f40_1.per_gpu[0].kv_cache_bytes  # 8 heads, TP16
    assert one.per_gpu[0].kv_cache_bytes == 2048 * 2 * 32 * 1 * 64 * 2


def test_fewest_gpus_chosen_and_vllm_reserve() -> None:
    r = fit("llama3.1-70b", "bf16", "vllm", 8192, "8xH100")
    assert r.fits and r.gpus_used == 2
    d = r.per_gpu[0]
    assert d.reserve_bytes == int(d.capacity_bytes * 0.10)
    assert d.overhead_bytes >= 512 * 2**20  # CUDA context per GPU


def test_llamacpp_layer_split_embeddings_on_host() -> None:
    r = fit("llama3.1-70b", "q4_k_m", "llamacpp", 1024, "24GB+24GB")
    assert r.parallelism == "layers" and r.fits
    inv = weight_inventory(CAT.get("llama3.1-70b").arch, "q4_k_m")
    assert r.host_bytes == inv.embed_bytes
    assert r.per_gpu[-1].weights_bytes > r.per_gpu[0].weights_bytes  # output head on the last


# ----------------------------------------------------------------------------- rope, errors


def test_rope_factor() -> None:
    spec = CAT.get("llama2-7b")
    assert rope_plan(spec, 4096, "dynamic") is None
    rp = rope_plan(spec, 8192, "linear")
    assert (
        rp is not None and rp.kind == "linear" and rp.factor == 2.0 and rp.original_context == 4096
    )
    rp = rope_plan(spec, 10000, "dynamic")
    assert rp is not None and rp.factor == 2.45
    with pytest.raises(UsageError, match="beyond any rope scaling"):
        rope_plan(spec, 4096 * 9, "dynamic")
    with pytest.raises(UsageError, match="positive"):
        rope_plan(spec, 0, "dynamic")


def test_engine_quant_mismatch_is_usage_error() -> None:
    with pytest.raises(UsageError, match="does not serve"):
        fit("mistral7b", "q4_k_m", "vllm", 4096, "1x24GB")
    with pytest.raises(UsageError, match="needs an NVIDIA GPU"):
        fit("mistral7b", "bf16", "vllm", 4096, "cpu:64GB")


def test_cpu_only_host() -> None:
    r = fit("mistral7b", "q4_k_m", "llamacpp", 4096, "cpu:16GB")
    assert r.fits and r.parallelism == "cpu" and r.gpus_used == 0
    assert r.per_gpu[0].device == "cpu"
    big = fit("llama2-70b", "q4_k_m", "llamacpp", 4096, "cpu:16GB")
    assert not big.fits and big.max_context == 0
    t = fit("smollm2-135m", "bf16", "torch", 2048, "cpu:4GB")
    assert t.fits and t.per_gpu[0].weights_bytes == 134_515_008 * 2


def test_suggestions_when_not_fitting() -> None:
    r = fit("llama3.1-8b", "bf16", "vllm", 131072, "1x24GB")
    assert not r.fits
    text = " ".join(r.suggestions)
    assert "--context" in text and "--quant" in text
    assert 0 < r.max_context < 131072
    assert fit("llama3.1-8b", "bf16", "vllm", r.max_context, "1x24GB").fits
    assert not fit("llama3.1-8b", "bf16", "vllm", r.max_context + 512, "1x24GB").fits


def test_other_processes_memory_counts_as_unavailable() -> None:
    from dataclasses import replace

    facts = facts_from_hw(parse_hw("1x24GB"), HostFacts(llmops_version="0", collected_at=""))
    assert facts.nvidia is not None
    busy = replace(facts.nvidia.gpus[0], memory_free_mib=4096)
    facts = replace(facts, nvidia=replace(facts.nvidia, gpus=(busy,)))
    gpus, host = devices_from_facts(facts)
    r = estimate(CAT.get("mistral7b"), gpus, host, FitOptions("awq", "vllm", 4096))
    assert not r.fits and r.per_gpu[0].in_use_bytes == 20 * GIB
