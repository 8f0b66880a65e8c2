"""The estimator on the 2025-26 architectures, each formula pinned to a third-party figure or to
the engine's own code (named next to each assertion)."""

from __future__ import annotations

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.hw.facts import HostFacts
from llmops.plan.hardware import GIB, devices_from_facts, facts_from_hw, parse_hw
from llmops.plan.memory import FitOptions, FitReport, estimate, kv_bytes_per_token
from llmops.plan.model import Architecture
from llmops.plan.quant import _linear_bytes, _Matrix, layer_matrices, weight_inventory

CAT = load_catalog()


def fit(model: str, quant: str, engine: str, context: int, hw: str, **kw: object) -> FitReport:
    facts = facts_from_hw(parse_hw(hw), HostFacts(llmops_version="0", collected_at=""))
    gpus, host = devices_from_facts(facts)
    opts = FitOptions(quant=quant, engine=engine, context=context, **kw)  # type: ignore[arg-type]
    return estimate(CAT.get(model), gpus, host, opts)


def kv_layer(arch: Architecture, b: float = 2.0) -> float:
    return 2 * arch.kv_heads * arch.head_dim * b


# ----------------------------------------------------------------------------- MLA


def test_mla_kv_is_one_latent_per_token_per_layer() -> None:
    """DeepSeek-V2 paper (arXiv 2405.04434, table 1): MLA caches (d_c + d_h^R) x l elements per
    token; vLLM's MLA cache has num_kv_heads 1 and head_size kv_lora_rank + qk_rope_head_dim
    (MLAAttentionSpec). DeepSeek-V3: (512 + 64) x 61 layers x 2 bytes = 70,272 B per token;
    standard MHA with 128 heads of 192/128 would hold 61 x 128 x (192 + 128) x 2 = 4.77 MiB."""
    spec = CAT.get("deepseek-v3")
    assert kv_bytes_per_token(spec, 2.0) == (512 + 64) * 61 * 2 == 70272
    assert kv_bytes_per_token(spec, 1.0) == 35136  # fp8 KV


def test_mla_cache_is_not_split_by_tensor_parallel() -> None:
    """vLLM replicates the MLA latent on every TP rank (one KV head; get_num_kv_heads returns 1
    for MLA), so each of 8 GPUs holds the whole per-token latent."""
    r = fit("deepseek-r1", "awq", "vllm", 32768, "8xH100")
    assert r.fits and r.tensor_parallel == 8
    assert r.per_gpu[0].kv_cache_bytes == 70272 * 32768


def test_fp8_block_checkpoint_scales() -> None:
    """DeepSeek-V3 inference/model.py (deepseek-ai/DeepSeek-V3): an FP8 Linear stores e4m3
    weights and one fp32 ``scale`` per 128x128 block, shape (ceil(out/128), ceil(in/128));
    config quantization_config weight_block_size [128, 128]."""
    m = _Matrix("o", 16384, 7168)
    assert _linear_bytes("fp8-block", m, 128) == 16384 * 7168 + 4 * 128 * 56
    arch = CAT.get("deepseek-v3").arch
    inv = weight_inventory(arch, "bf16")  # the checkpoint as published
    # 671.0B parameters at ~1 byte plus bf16 embedding/head/norms: 673.2 GB
    assert inv.total_bytes / 1e9 == pytest.approx(673.15, abs=0.01)


# ----------------------------------------------------------------------------- MXFP4


def test_mxfp4_is_4_25_bits_per_weight() -> None:
    """OCP Microscaling spec: an MXFP4 block is 32 E2M1 values (4 bits) sharing one E8M0 scale
    (8 bits): 4.25 bits per weight. gpt-oss stores its expert weights so (model card)."""
    m = _Matrix("up", 2880, 2880, 32)
    assert _linear_bytes("mxfp4", m, 128) * 8 / m.n == 4.25


def test_gpt_oss_20b_weights_match_the_published_files() -> None:
    """huggingface.co/openai/gpt-oss-20b file listing: model-00000/1/2-of-00002.safetensors are
    4.79 + 4.8 + 4.17 GB = 13.76 GB (MXFP4 experts, bf16 attention/embeddings/router)."""
    inv = weight_inventory(CAT.get("gpt-oss-20b").arch, "bf16")
    assert inv.total_bytes / 1e9 == pytest.approx(13.76, rel=0.01)
    # the same model in bf16 throughout would be 41.8 GB
    experts = [m for m in layer_matrices(CAT.get("gpt-oss-20b").arch) if m.count > 1]
    assert sum(m.n for m in experts) * 24 * 2 / 1e9 > 38


def test_gpt_oss_120b_fits_one_80gb_gpu() -> None:
    """OpenAI's model card: gpt-oss-120b "runs on a single 80GB GPU" (H100) thanks to MXFP4."""
    r = fit("gpt-oss-120b", "bf16", "vllm", 32768, "1x80GB")
    assert r.fits
    assert r.per_gpu[0].weights_bytes / 1e9 == pytest.approx(65.2, rel=0.02)


# ----------------------------------------------------------------------------- sliding window


def test_gemma3_local_layers_on_vllm() -> None:
    """Gemma 3: 52 of 62 layers local (window 1024). vLLM v0.33.0 vllm/v1/kv_cache_interface.py
    SlidingWindowSpec.max_admission_blocks_per_request: cdiv(min(1024 - 1 +
    max_in_flight_tokens, max_model_len), 16) + 1 blocks, max_in_flight_tokens = 2 (async
    scheduling: vllm/config/vllm.py max_concurrent_batches) x 8192 batched tokens on an H100
    (EngineArgs.get_batch_defaults); full layers: cdiv(max_model_len, 16) blocks."""
    a = CAT.get("gemma3-27b").arch
    r = fit("gemma3-27b", "bf16", "vllm", 32768, "1xH100")
    local = (-(-(1024 - 1 + 2 * 8192) // 16) + 1) * 16
    assert local == 17424
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(a) * (10 * 32768 + 52 * local)
    # a naive formula counting every layer at full length is 1.6x bigger at 32k (3.7x at 128k)
    naive = kv_layer(a) * 62 * 32768
    assert naive / r.per_gpu[0].kv_cache_bytes == pytest.approx(1.65, abs=0.01)


def test_gemma3_local_layers_on_llamacpp() -> None:
    """llama.cpp llama_kv_cache_iswa: the SWA cache is GGML_PAD(min(n_ctx, n_swa * n_seq +
    n_ubatch), 256) cells: 1024 + 512 = 1536."""
    a = CAT.get("gemma3-27b").arch
    r = fit("gemma3-27b", "q4_k_m", "llamacpp", 32768, "1x48GB")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(a) * (10 * 32768 + 52 * 1536)


def test_gpt_oss_alternating_window_and_sinks() -> None:
    """gpt-oss: even layers slide over 128 tokens, odd ones see everything; one sink logit per
    head per layer (64 x 24 parameters in gpt-oss-20b)."""
    a = CAT.get("gpt-oss-20b").arch
    r = fit("gpt-oss-20b", "bf16", "vllm", 32768, "1x24GB")
    local = (-(-(128 - 1 + 2 * 2048) // 16) + 1) * 16  # 2 x 2048 in flight below 70 GiB
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(a) * (12 * 32768 + 12 * local)
    assert r.fits and r.max_context == 131072


def test_llama4_chunked_layers_on_vllm() -> None:
    """Llama 4 attends in aligned chunks of attention_chunk_size 8192 on 3 of 4 layers (the
    NoPE every 4th is global). vLLM v0.33.0 gives those layers ChunkedLocalAttentionSpec
    (model_executor/layers/attention/chunked_local_attention.py get_kv_cache_spec) in the hybrid
    manager (VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1, vllm/envs.py;
    config/vllm.py l.2236-2255 disables it only with EAGLE), whose
    max_admission_blocks_per_request (v1/kv_cache_interface.py l.864-881) is
    cdiv(min(8192 + max_in_flight_tokens, max_model_len), 16), with no extra block: 8192 + 2 x
    8192 on an H100 = 24576 tokens per sequence; a sliding window of 8192 would be 24592."""
    s = CAT.get("llama4-scout").arch
    assert s.local_kind == "chunked" and len(s.local_layers) == 36
    r = fit("llama4-scout", "4bit", "vllm", 65536, "1xH100")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(s) * (12 * 65536 + 36 * 24576)
    short = fit("llama4-scout", "4bit", "vllm", 16000, "1xH100")  # capped at max_model_len
    assert short.per_gpu[0].kv_cache_bytes == kv_layer(s) * 48 * 16000


def test_llama4_chunked_layers_on_llamacpp() -> None:
    """llama.cpp builds Llama 4 with LLAMA_SWA_TYPE_CHUNKED (n_swa = the chunk, 8192): the
    type only changes the mask (llama-hparams is_masked_swa: p0 < (p1 / n_swa) x n_swa); the
    cache is the same llama_kv_cache_iswa, size_swa = GGML_PAD(min(n_ctx, n_swa x n_seq +
    n_ubatch), 256) (src/llama-kv-cache-iswa.cpp): 8192 + 512 = 8704 cells."""
    s = CAT.get("llama4-scout").arch
    r = fit("llama4-scout", "q4_k_m", "llamacpp", 32768, "2x80GB")
    assert sum(g.kv_cache_bytes for g in r.per_gpu) == kv_layer(s) * (12 * 32768 + 36 * 8704)


def test_tgi_caches_deepseek_mla_decompressed() -> None:
    """TGI 3.3.7 does not cache the MLA latent: flash_deepseek_v3_modeling.py l.313-325 pads
    the decompressed per-head key (qk_nope 128 + qk_rope 64 = 192) and value (v_head_dim 128)
    to head_pad_size 192 and stores both in the KVCache, whose tensors are (blocks, 16,
    num_kv_heads, head_size) for K and for V (layers/attention/kv_cache.py l.96-116), built
    with head_size max(128 + 64, v_head_dim) (models/__init__.py l.694-713) and
    num_key_value_heads 128 // tp heads (flash_causal_lm.py l.1291-1295): 2 x 128 x 192 x
    61 layers x 2 B = 5.72 MiB per token, 85x vLLM's latent (70,272 B)."""
    spec = CAT.get("deepseek-v3")
    assert kv_bytes_per_token(spec, 2.0, engine="tgi") == 2 * 128 * 192 * 61 * 2 == 5996544
    assert kv_bytes_per_token(spec, 2.0, engine="vllm") == 70272
    r = fit("deepseek-r1", "awq", "tgi", 4096, "8xH100")
    assert r.tensor_parallel == 8
    assert r.per_gpu[0].kv_cache_bytes == 2 * 16 * 192 * 61 * 2 * 4096


def test_tgi_holds_the_whole_context_on_local_layers_torch_the_window() -> None:
    """TGI 3.3.7's server answers the router's Info with window_size=None ("Setting this
    parameter to None disabled the block logic with sliding window",
    server/text_generation_server/models/model.py l.113), so backends/v3/src/block_allocator.rs
    allocates the blocks of the whole sequence, and every layer's KVCache has the same blocks
    (flash_causal_lm.py init_kv_cache): a local layer saves nothing. The torch engine
    (transformers' sliding cache) keeps the window."""
    a = CAT.get("gemma3-12b").arch
    r = fit("gemma3-12b", "bf16", "tgi", 8192, "1x48GB")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(a) * a.layers * 8192
    t = fit("gemma3-12b", "bf16", "torch", 8192, "1x48GB")
    local = len(a.local_layers)
    assert t.per_gpu[0].kv_cache_bytes == kv_layer(a) * ((a.layers - local) * 8192 + local * 1024)


def test_full_attention_rounds_to_vllm_blocks() -> None:
    """vLLM FullAttentionSpec.max_memory_usage_bytes: cdiv(max_model_len, block_size) pages."""
    a = CAT.get("qwen3-8b").arch
    r = fit("qwen3-8b", "bf16", "vllm", 1000, "1x48GB")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(a) * 36 * 1008


# ----------------------------------------------------------------------------- MoE


def test_moe_weights_are_all_resident_but_read_sparsely() -> None:
    """Qwen3-30B-A3B: all 128 experts sit in memory (30.5B params -> 61 GB bf16) although a token
    reads 8 of them; the KV is 48 layers x 4 KV heads x 128 x 2 x 2 B = 96 KiB per token."""
    spec = CAT.get("qwen3-30b-a3b")
    assert weight_inventory(spec.arch, "bf16").total_bytes / 1e9 == pytest.approx(61.06, abs=0.01)
    assert kv_bytes_per_token(spec, 2.0) == 96 * 1024


def test_llama4_shared_expert_and_dense_layers() -> None:
    """Llama 4 Maverick: 24 dense layers (intermediate_size_mlp 16384) and 24 MoE layers of 128
    experts plus one shared expert (8192): 400B in all, 17B active."""
    a = CAT.get("llama4-maverick").arch
    dense = layer_matrices(a, 0)
    moe = layer_matrices(a, 1)
    assert [m.n_out for m in dense if m.role == "up"] == [16384]
    assert {m.role for m in moe} >= {"shexp_gate", "shexp_up", "shexp_down"}
    assert sum(m.count for m in moe if m.role == "up") == 128


def test_scout_int4_fits_one_h100() -> None:
    """Meta's Llama 4 card: Scout "fits on a single H100 GPU" with on-the-fly int4 (here NF4 at
    4.5 bpw: ~58 GiB of weights on 80 GB)."""
    r = fit("llama4-scout", "4bit", "vllm", 8192, "1xH100")
    assert r.fits
    assert 50 < r.per_gpu[0].weights_bytes / GIB < 62


@pytest.mark.parametrize("model_type", ["deepseek_v3", "gemma3_text", "gpt_oss", "llama4_text"])
def test_torch_engine_matches_transformers_cache_and_weights(model_type: str) -> None:
    """The torch engine is transformers: a random-weight variant of the catalog config (narrow
    widths, same layout) has exactly the estimator's weight bytes (its state dict: parameters
    and persistent buffers such as DeepSeek's e_score_correction_bias), and its cache after a prefill
    matches the estimate within 1 % (transformers keeps window - 1 tokens in sliding layers; it
    caches MLA as the latent, like vLLM, since transformers 5)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "estimator_accuracy.py"
    mod_spec = importlib.util.spec_from_file_location("estimator_accuracy", path)
    assert mod_spec is not None and mod_spec.loader is not None
    bench = importlib.util.module_from_spec(mod_spec)
    sys.modules["estimator_accuracy"] = bench
    mod_spec.loader.exec_module(bench)

    from llmops.catalog.config import architecture_from_config
    from llmops.plan.hardware import Device
    from llmops.plan.model import ModelSpec

    cfg = bench.tiny_config(model_type)
    spec = ModelSpec(name="tiny", arch=architecture_from_config(cfg))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model(**cfg), dtype=torch.bfloat16
    )
    model.eval()
    real_w = bench.checkpoint_bytes(model)
    host = Device("cpu", None, "cpu", 64 * GIB)
    r = estimate(spec, (), host, FitOptions("bf16", "torch", 512), with_suggestions=False)
    assert r.per_gpu[0].weights_bytes == real_w
    with torch.no_grad():
        out = model(torch.arange(1, 513).unsqueeze(0), use_cache=True, logits_to_keep=1)
    real_kv = sum(
        t.numel() * t.element_size()
        for layer in out.past_key_values.layers
        for t in (layer.keys, layer.values)
        if t is not None
    )
    assert r.per_gpu[0].kv_cache_bytes == pytest.approx(real_kv, rel=0.01)
