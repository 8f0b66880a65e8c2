"""The KV cache: bytes per token and per layer, and how each engine's pool holds local layers.

Pure code (no I/O). KV = 2 (K and V) x layers x KV heads x head_dim x bytes x tokens; GQA
through the KV head count, never hidden size; MLA as the latent (TGI: decompressed per head);
local layers (sliding window, chunked attention) as each engine's pool holds them
(``local_kv_tokens``, ``kv_layer_bytes``). ``llmops.plan.memory`` sums them per device.
"""

from __future__ import annotations

import math

from llmops.errors import UsageError
from llmops.plan.engines import RECORDS, sglang
from llmops.plan.model import ModelSpec
from llmops.plan.quant import compute_dtype_bytes, kv_dtype_bytes

TGI_MLA_QK_HEAD = 128 + 64  # see kv_layer_elems
LLAMACPP_CTX_PAD = 256
# vLLM's default KV block (--block-size 16, vllm/config/cache.py); full-attention layers hold
# whole blocks
VLLM_BLOCK = 16
# vLLM v0.33.0 VllmConfig.max_concurrent_batches (vllm/config/vllm.py l.588-598): async
# scheduling (on by default for generative models, l.1685-1719) keeps 2 batches in flight, so
# max_in_flight_tokens (l.601-609) = 2 x max_num_batched_tokens
VLLM_CONCURRENT_BATCHES = 2


def kv_layer_elems(spec: ModelSpec, heads: int | None = None, engine: str = "") -> int:
    """KV elements one token adds to one layer: 2 x KV heads x head_dim (K and V), or for MLA
    one shared latent of ``kv_lora_rank + qk_rope_head_dim`` (vLLM's MLA cache: one "head",
    the same on every tensor-parallel rank). transformers 5 (the torch engine) caches the same
    latent: DeepseekV3Attention passes the compressed ``kv_nope`` and ``k_rot`` to the cache
    and expands them after reading (modeling_deepseek_v3.py l.445-460 at 5.24; 4.x cached
    per-head keys and values).

    TGI (3.3.7) caches MLA decompressed: K and V per KV head (``num_key_value_heads // tp``),
    both padded to one head size (flash_deepseek_v3_modeling.py l.171-173, 313-325:
    ``head_pad_size = max(qk_nope + qk_rope, v_head_dim)``), in a cache built with
    models/__init__.py's ``head_size = max(config_dict.get("qk_nope_dim", 128) +
    config_dict.get("qk_rope_dim", 64), config_dict.get("v_head_dim", 128))``: keys that
    DeepSeek's configs do not have, so 128 + 64 always (l.694-713 V3, l.660-676 V2)."""
    a = spec.arch
    h = a.kv_heads if heads is None else heads
    if a.mla is not None and engine == "tgi":
        return 2 * h * max(TGI_MLA_QK_HEAD, a.mla.v_head_dim)
    if a.mla is not None:
        return a.mla.latent
    return 2 * h * a.head_dim


def kv_bytes_per_token(
    spec: ModelSpec, kv_dtype_bytes_: float, kv_heads: int | None = None, engine: str = ""
) -> int:
    """KV bytes of one token of one sequence over all layers (2 x L x kv_heads x head_dim x b)."""
    a = spec.arch
    return int(math.ceil(a.layers * kv_layer_elems(spec, kv_heads, engine) * kv_dtype_bytes_))


def local_kv_tokens(
    window: int, per_seq: int, engine: str, chunk: int, kind: str = "sliding"
) -> int:
    """Tokens a local layer (sliding window, or Llama 4's chunked attention) keeps per sequence.

    vLLM v0.33.0 (hybrid KV cache manager, on by default, also for chunked local attention:
    VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1, vllm/envs.py), in
    vllm/v1/kv_cache_interface.py, with ``max_in_flight_tokens`` = 2 x max_num_batched_tokens
    (``VLLM_CONCURRENT_BATCHES``):
    ``SlidingWindowSpec.max_admission_blocks_per_request``: ``cdiv(min(window - 1 +
    max_in_flight_tokens, max_model_len), block_size) + 1`` blocks (the +1: the window need
    not start on a block boundary);
    ``ChunkedLocalAttentionSpec.max_admission_blocks_per_request``: ``cdiv(min(chunk_size +
    max_in_flight_tokens, max_model_len), block_size)`` blocks (chunks are block-aligned).
    llama.cpp and SGLang: see ``kv_layer_bytes``. TGI 3.3.7 holds the whole context on every
    layer: its server tells the router ``window_size=None`` ("Setting this parameter to None
    disabled the block logic with sliding window", server/text_generation_server/models/
    model.py l.113), so every layer gets the blocks of the full sequence. torch keeps the window.
    """
    if engine == "vllm":
        in_flight = VLLM_CONCURRENT_BATCHES * chunk
        if kind == "chunked":
            return -(-min(window + in_flight, per_seq) // VLLM_BLOCK) * VLLM_BLOCK
        t = min(window - 1 + in_flight, per_seq)
        return (-(-t // VLLM_BLOCK) + 1) * VLLM_BLOCK
    if engine == "llamacpp":
        return min(window + chunk, per_seq)
    if engine == "tgi":
        return per_seq
    return min(window, per_seq)


def kv_layer_bytes(
    spec: ModelSpec,
    tokens: int,
    per_seq: int,
    seqs: int,
    kvb: float,
    heads: int,
    engine: str = "",
    chunk: int = 0,
) -> tuple[int, ...]:
    """KV bytes of each layer: sliding-window layers hold at most ``window`` tokens per sequence."""
    a = spec.arch
    per_token_layer = kv_layer_elems(spec, heads, engine) * kvb
    out = []
    window = a.sliding_window or per_seq
    local_t = local_kv_tokens(window, per_seq, engine, chunk, a.local_kind) * seqs
    if engine == "llamacpp":
        # llama_kv_cache_iswa (src/llama-kv-cache-iswa.cpp, swa_full off by default):
        # size_swa = GGML_PAD(min(size_base, n_swa * n_seq_max + n_ubatch), 256), for sliding
        # and chunked (LLAMA_SWA_TYPE_CHUNKED, Llama 4) local layers alike
        local_t = -(-min(tokens, window * seqs + chunk) // LLAMACPP_CTX_PAD) * LLAMACPP_CTX_PAD
    elif engine == "sglang":
        # a hybrid pool only for some architectures, then ratio x the full layers' tokens;
        # otherwise the local layers are sized like the full ones (sglang.HYBRID_SWA_MODEL_TYPES)
        hybrid = a.model_type in sglang.HYBRID_SWA_MODEL_TYPES and (
            a.model_type != "llama4_text" or a.multimodal
        )
        local_t = int(tokens * sglang.SWA_FULL_TOKENS_RATIO) if hybrid else tokens
    for i in range(a.layers):
        t = local_t if a.is_local(i) else tokens
        out.append(int(math.ceil(per_token_layer * t)))
    return tuple(out)


def resolve_kv_dtype(kv_dtype: str, quant: str, engine: str) -> tuple[str, float]:
    """The KV cache dtype name and bytes per element; ``auto`` follows the compute dtype."""
    if kv_dtype.lower() == "auto":
        name = "fp32" if quant == "fp32" else ("bf16" if quant == "bf16" else "fp16")
        return name, float(compute_dtype_bytes(quant))
    b = kv_dtype_bytes(kv_dtype)
    allowed = RECORDS[engine].kv_dtypes
    if kv_dtype.lower() not in allowed:
        raise UsageError(
            f"{engine} has no {kv_dtype} KV cache",
            f"choose one of: auto, {', '.join(allowed)}",
        )
    return kv_dtype.lower(), b
