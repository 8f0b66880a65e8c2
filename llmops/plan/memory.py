"""The memory estimator: per device, weights + KV cache + compute + fixed overhead, per engine.

Pure code (no I/O, environment or clock). The method is peers-and-estimation.md B.6:

    per_device = W_shard + KV_shard + activation + overhead      must be <= usable
    usable     = capacity - reserve - memory other processes hold

- **Weights** come from a ``WeightInventory``: real tensor bytes (GGUF header, safetensors
  metadata) or computed per tensor from the architecture and the quant (``plan.quant``).
  Tensor parallel (vLLM, TGI) divides them; llama.cpp and torch split by layers; llama.cpp
  keeps ``token_embd`` in host RAM.
- **KV cache** = 2 (K and V) x layers x KV heads x head_dim x bytes x tokens, tokens = context
  x concurrent sequences; GQA through the KV head count, never hidden size; local layers
  (sliding window, chunked attention) held per engine (``local_kv_tokens``); MLA as the latent
  (TGI: decompressed per head); under TP each GPU holds ``max(1, kv_heads // tp)`` heads.
- **Activation**: the largest transient of one forward pass over the engine's prefill chunk
  (vLLM 2048 tokens, TGI/torch the whole prompt, llama.cpp ``n_ubatch`` 512 + its FA mask),
  plus logits. SGLang: none here, its reserve holds them.
- **Overhead**: CUDA context (512 MiB per GPU), CUDA graphs (vLLM 768 MiB, TGI 512 MiB),
  NCCL buffers under TP (256 MiB); on the CPU the runtime itself.
- **Reserve**: vLLM claims ``total x gpu_memory_utilization`` (default 0.9) and no more; SGLang
  keeps ``1 - mem_fraction_static`` of the memory free before loading, the fraction it picks
  from the card size (``engines.sglang.static_memory``), for its activations and CUDA graphs;
  TGI keeps 10 % of what is left for KV (``TGI_WIGGLE_ROOM``); llama.cpp/torch keep 2 % for
  the allocator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmops.errors import UsageError
from llmops.plan import artifacts
from llmops.plan.engines import ENGINES, RECORDS, sglang
from llmops.plan.hardware import GIB, MIB, Device
from llmops.plan.model import Architecture, ModelSpec, RopeScaling, WeightInventory
from llmops.plan.quant import (
    QUANT_SPECS,
    compute_dtype_bytes,
    kv_dtype_bytes,
    quant_spec,
    weight_inventory,
)

CONTEXT_DEFAULT_CAP = 32768  # `fit` without --context: the trained context, at most this
MAX_ROPE_FACTOR = 8.0  # beyond this, no scaling method keeps a model usable
CUDA_CONTEXT_BYTES = 512 * MIB
NCCL_BYTES = 256 * MIB
# per-engine constants live in the engine records (llmops/plan/engines/)
CUDA_GRAPHS_BYTES = {n: r.cuda_graphs_bytes for n, r in RECORDS.items()}
CPU_RUNTIME_BYTES = {n: r.cpu_runtime_bytes for n, r in RECORDS.items()}
PREFILL_TOKENS = {n: r.prefill_tokens for n, r in RECORDS.items() if r.prefill_tokens}
VLLM_MAX_NUM_SEQS = 256  # vLLM's default below 70 GiB (see vllm_batch_defaults)
TGI_WIGGLE_ROOM = 0.90
ALLOCATOR_RESERVE = 0.02
TGI_MLA_QK_HEAD = 128 + 64  # see kv_layer_elems
LLAMACPP_CTX_PAD = 256
# vLLM's default KV block (--block-size 16, vllm/config/cache.py); full-attention layers hold
# whole blocks
VLLM_BLOCK = 16
# vLLM v0.33.0 VllmConfig.max_concurrent_batches (vllm/config/vllm.py l.588-598): async
# scheduling (on by default for generative models, l.1685-1719) keeps 2 batches in flight, so
# max_in_flight_tokens (l.601-609) = 2 x max_num_batched_tokens
VLLM_CONCURRENT_BATCHES = 2


@dataclass(frozen=True)
class FitOptions:
    """What the user asked for. ``gpus=None``: use as few of the devices as fit."""

    quant: str
    engine: str
    context: int
    concurrency: int = 1
    kv_dtype: str = "auto"
    gpus: int | None = None
    gpu_memory_utilization: float = 0.90
    rope_kind: str = "dynamic"
    enforce_eager: bool = False
    prefill_tokens: int | None = None  # override the engine's prefill chunk


@dataclass(frozen=True)
class DeviceUsage:
    """One device's share: the ``per_gpu`` rows of ``fit --json``."""

    device: str  # gpu | cpu
    index: int | None
    name: str
    layers: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    reserve_bytes: int
    in_use_bytes: int
    total_bytes: int  # weights + kv + activation + overhead
    capacity_bytes: int
    usable_bytes: int  # capacity - reserve - in use

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.usable_bytes

    @property
    def free_after_bytes(self) -> int:
        return self.usable_bytes - self.total_bytes


@dataclass(frozen=True)
class FitReport:
    model: str
    quant: str
    engine: str
    context: int
    concurrency: int
    kv_dtype: str
    kv_bytes_per_token: int  # whole model, all layers, one token of one sequence
    parallelism: str  # single | tensor | layers | cpu
    tensor_parallel: int
    gpus_used: int
    per_gpu: tuple[DeviceUsage, ...]
    host_bytes: int  # host RAM needed besides the devices (llama.cpp token_embd)
    host_capacity_bytes: int | None
    fits: bool
    max_context: int
    trained_context: int
    rope: RopeScaling | None
    weights_total_bytes: int
    weights_source: str
    params: int
    warnings: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.per_gpu) + self.host_bytes


# ------------------------------------------------------------------------------ helpers


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
    llama.cpp and SGLang: see ``_kv_layer_bytes``. TGI 3.3.7 holds the whole context on every
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


def _kv_layer_bytes(
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


def rope_plan(spec: ModelSpec, context: int, kind: str) -> RopeScaling | None:
    """The rope scaling needed to serve ``context`` tokens (None within the trained context).

    Raises:
        UsageError: context <= 0, or beyond what any scaling can reach (x8).
    """
    if context <= 0:
        raise UsageError(
            f"context must be a positive number of tokens, got {context}",
            "e.g. `--context 8192`",
        )
    trained = spec.arch.trained_context
    if context <= trained:
        return None
    factor = context / trained
    if spec.arch.position == "alibi":
        if factor > MAX_ROPE_FACTOR:
            raise UsageError(
                f"{context} tokens is {factor:.1f}x {spec.name}'s trained {trained}",
                f"ALiBi extrapolates poorly beyond that; use `--context {trained}`",
            )
        return None
    if factor > MAX_ROPE_FACTOR:
        raise UsageError(
            f"{context} tokens is {factor:.1f}x {spec.name}'s trained context {trained}, "
            f"beyond any rope scaling (x{MAX_ROPE_FACTOR:g} at most)",
            f"use `--context {int(trained * MAX_ROPE_FACTOR)}` or less, or a long-context model",
        )
    if kind not in ("linear", "dynamic", "yarn"):
        raise UsageError(f"unknown rope scaling {kind!r}", "choose linear, dynamic or yarn")
    return RopeScaling(kind=kind, factor=math.ceil(factor * 100) / 100, original_context=trained)


def engine_supports(engine: str, quant: str, on_cpu: bool) -> str | None:
    """``None`` when ``engine`` can serve ``quant`` here, else why not."""
    spec = QUANT_SPECS[quant]
    table = RECORDS[engine].quants.values() if engine in RECORDS else ()
    if engine not in spec.engines and not any(quant in v for v in table):
        return f"{engine} does not serve {quant} (engines for it: {', '.join(spec.engines)})"
    if on_cpu and engine in RECORDS and RECORDS[engine].needs_gpu:
        return f"{engine} needs an NVIDIA GPU; on a CPU-only host use llamacpp or torch"
    if on_cpu and not spec.cpu:
        return f"{quant} needs a GPU; on the CPU use a GGUF quant (q4_k_m) or bf16"
    return None


def _cc(dev: Device) -> float | None:
    try:
        return float(dev.compute_capability) if dev.compute_capability else None
    except ValueError:
        return None


def _kernel_warning(quant: str, engine: str, devs: tuple[Device, ...]) -> str | None:
    ccs = [c for c in (_cc(d) for d in devs) if c is not None]
    if not ccs:
        return None
    low = min(ccs)
    if quant == "fp8" and low < 8.9:
        return f"fp8 weights need compute capability 8.9+ (Ada/Hopper); this GPU has {low}"
    if quant == "awq" and engine == "vllm" and low < 7.5:
        return f"vLLM's AWQ kernels need compute capability 7.5+; this GPU has {low}"
    if quant == "bf16" and low < 8.0:
        return f"bf16 needs compute capability 8.0+ (Ampere); this GPU has {low}: use fp16"
    return None


def vllm_batch_defaults(dev: Device) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM v0.33.0's OpenAI server picks on this GPU.

    ``EngineArgs.get_batch_defaults`` (vllm/engine/arg_utils.py l.2940-3005, vllm 0.33.0
    wheel): 16384 tokens and 1024 sequences from 160 GiB (B200/B300); 8192 and 1024 from 70
    GiB on a GPU whose name does not contain "a100" (nor a GB10); else 2048 and 256. vLLM's
    memory profile runs one step of that many tokens and samples that many sequences, so both
    size its activation peak.
    """
    if dev.capacity_bytes >= 160 * GIB:
        return 16384, 1024
    big = dev.capacity_bytes >= 70 * GIB and "a100" not in dev.name.lower()
    return (8192, 1024) if big else (2048, VLLM_MAX_NUM_SEQS)


def _activation_bytes(
    spec: ModelSpec,
    engine: str,
    tokens: int,
    tp: int,
    act_b: int,
    n_ctx: int,
    opts: FitOptions,
    max_seqs: int = VLLM_MAX_NUM_SEQS,
) -> int:
    """The peak transient of one forward step over ``tokens`` prompt tokens on one device."""
    a = spec.arch
    inter = a.intermediate_size * max(a.experts_active, 1)
    per_token = (4 * a.hidden_size + (a.q_dim + 2 * a.kv_dim) // tp + 3 * inter // tp) * act_b
    act = tokens * per_token
    vocab_shard = a.vocab_size // tp
    if engine == "vllm":
        act += max_seqs * vocab_shard * 4  # the sampler's logits for max_num_seqs, fp32
    elif engine == "llamacpp":
        act = tokens * (4 * a.hidden_size + a.q_dim + 2 * a.kv_dim + 3 * inter) * 4  # f32
        act += 2 * n_ctx * tokens  # flash-attention KQ mask, f16
        act += (a.vocab_size + a.hidden_size) * tokens * 4  # output buffer
    else:  # tgi, torch: logits for the last token of each sequence
        act += max(opts.concurrency, 1) * vocab_shard * 4
    return int(act)


def _tp_candidates(spec: ModelSpec, n: int) -> list[int]:
    a = spec.arch
    out = []
    for k in range(1, n + 1):
        if a.attention_heads % k:
            continue
        if a.kv_heads % k and k % a.kv_heads:
            continue
        out.append(k)
    return out


def _split_layers(n_layers: int, weights: list[int]) -> list[int]:
    """Layers per device in proportion to ``weights`` (llama.cpp's --tensor-split default)."""
    total = sum(weights)
    if total <= 0:
        return [n_layers] + [0] * (len(weights) - 1)
    raw = [n_layers * w / total for w in weights]
    counts = [int(math.floor(r)) for r in raw]
    rest = n_layers - sum(counts)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[:rest]:
        counts[i] += 1
    return counts


# ------------------------------------------------------------------------------ estimate


@dataclass(frozen=True)
class _Plan:
    per_gpu: tuple[DeviceUsage, ...]
    host_bytes: int
    parallelism: str
    tp: int


def _usage(
    dev: Device,
    engine: str,
    layers: int,
    weights: int,
    kv: int,
    act: int,
    overhead: int,
    util: float,
    pre_load_overhead: int = 0,
) -> DeviceUsage:
    total = weights + kv + act + overhead
    cap = dev.capacity_bytes
    if dev.kind == "cpu":
        reserve = 0
    elif RECORDS[engine].reserve == "static":
        # SGLang: (1 - mem_fraction_static) of the memory free before the weights load
        # (``util`` is SGLang's fraction here; see engines/sglang.py)
        reserve = int(max(0, cap - dev.in_use_bytes - pre_load_overhead) * (1 - util))
    elif RECORDS[engine].reserve == "utilization":  # vLLM: a fraction of the card
        reserve = int(cap * (1 - util))
    elif engine == "tgi":
        reserve = int(max(0, cap - weights - act - overhead) * (1 - TGI_WIGGLE_ROOM))
    else:
        reserve = int(cap * ALLOCATOR_RESERVE)
    usable = cap - reserve - dev.in_use_bytes
    return DeviceUsage(
        device=dev.kind,
        index=dev.index,
        name=dev.name,
        layers=layers,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        activation_bytes=act,
        overhead_bytes=overhead,
        reserve_bytes=reserve,
        in_use_bytes=dev.in_use_bytes,
        total_bytes=total,
        capacity_bytes=cap,
        usable_bytes=usable,
    )


def _place(
    spec: ModelSpec,
    inv: WeightInventory,
    devs: tuple[Device, ...],
    opts: FitOptions,
    kvb: float,
) -> _Plan:
    """Weights, KV and buffers on ``devs`` (all GPUs, or the one CPU device)."""
    a = spec.arch
    engine = opts.engine
    act_b = compute_dtype_bytes(opts.quant)
    seqs = max(opts.concurrency, 1)
    tokens = opts.context * seqs
    n_ctx = tokens
    if engine == "llamacpp":
        n_ctx = -(-tokens // LLAMACPP_CTX_PAD) * LLAMACPP_CTX_PAD
    chunk = opts.prefill_tokens or PREFILL_TOKENS.get(engine) or opts.context
    prefill = min(chunk, opts.context if engine != "llamacpp" else n_ctx)
    on_cpu = devs[0].kind == "cpu"

    def overhead(n_gpus: int) -> int:
        if on_cpu:
            return CPU_RUNTIME_BYTES[engine]
        o = CUDA_CONTEXT_BYTES
        if not opts.enforce_eager:
            o += CUDA_GRAPHS_BYTES[engine]
        if n_gpus > 1 and RECORDS[engine].tensor_parallel:
            o += NCCL_BYTES
        return o

    if RECORDS[engine].tensor_parallel and not on_cpu:
        tp = len(devs)
        heads = max(1, a.kv_heads // tp)
        max_seqs = VLLM_MAX_NUM_SEQS
        batch = prefill
        if engine == "vllm" and not opts.prefill_tokens:
            batch, max_seqs = vllm_batch_defaults(devs[0])
            prefill = min(batch, max_seqs * opts.context)  # as vLLM caps it
        ctx_t = opts.context
        if engine == "vllm":  # whole blocks of VLLM_BLOCK tokens per sequence
            ctx_t = -(-opts.context // VLLM_BLOCK) * VLLM_BLOCK
        kv = sum(_kv_layer_bytes(spec, ctx_t * seqs, opts.context, seqs, kvb, heads, engine, batch))
        big = inv.embed_bytes + inv.lm_head_bytes + sum(inv.layer_bytes)
        w = -(-big // tp) + inv.other_bytes
        act = _activation_bytes(spec, engine, prefill, tp, act_b, n_ctx, opts, max_seqs)
        ov = overhead(tp)
        util = opts.gpu_memory_utilization
        pre = 0
        if engine == "sglang":
            # SGLang's slack holds its activations and CUDA graphs; what it keeps out of the KV
            # budget besides is the multimodal cache (engines/sglang.py)
            sm = sglang.static_memory(
                min(d.capacity_bytes for d in devs) / MIB,
                tp,
                mla=a.mla is not None,
                multimodal=a.multimodal,
                vision=(a.vision_layers, a.vision_hidden),
            )
            util, act, pre = sm.mem_fraction_static, 0, ov
            if a.multimodal:
                ov += sglang.VLM_CACHE_MIB * MIB
        rows = tuple(_usage(d, engine, a.layers, w, kv, act, ov, util, pre) for d in devs)
        return _Plan(rows, 0, "tensor" if tp > 1 else "single", tp)

    # layer split (llama.cpp, torch/accelerate) or one CPU device
    ubatch = prefill if engine == "llamacpp" else 0
    kv_layers = _kv_layer_bytes(spec, n_ctx, opts.context, seqs, kvb, a.kv_heads, engine, ubatch)
    act = _activation_bytes(spec, engine, prefill, 1, act_b, n_ctx, opts)
    host = 0
    embed_on_dev = inv.embed_bytes
    head = inv.lm_head_bytes
    if engine == "llamacpp" and not on_cpu:
        host = inv.embed_bytes  # token_embd stays in host RAM
        embed_on_dev = 0
        if inv.tied:
            head = inv.embed_bytes  # the output copy goes to the last GPU
    if len(devs) == 1:
        counts = [a.layers]
    else:
        counts = _split_layers(a.layers, [max(0, d.capacity_bytes - d.in_use_bytes) for d in devs])
    split_rows: list[DeviceUsage] = []
    start = 0
    for i, (d, c) in enumerate(zip(devs, counts, strict=True)):
        w = sum(inv.layer_bytes[start : start + c])
        kv = sum(kv_layers[start : start + c])
        if i == 0:
            w += embed_on_dev
        if i == len(devs) - 1:
            w += head + inv.other_bytes
        start += c
        split_rows.append(_usage(d, engine, c, w, kv, act, overhead(len(devs)), 1.0))
    par = "cpu" if on_cpu else ("layers" if len(devs) > 1 else "single")
    return _Plan(tuple(split_rows), host, par, 1)


def _device_sets(
    spec: ModelSpec, opts: FitOptions, gpus: tuple[Device, ...]
) -> list[tuple[Device, ...]]:
    """Candidate GPU sets, fewest first: the largest (least used) GPUs are taken first."""
    ordered = tuple(
        sorted(gpus, key=lambda d: (-(d.capacity_bytes - d.in_use_bytes), d.index or 0))
    )
    if opts.gpus is not None:
        if opts.gpus < 1 or opts.gpus > len(gpus):
            raise UsageError(
                f"cannot use {opts.gpus} GPU(s): the hardware has {len(gpus)}",
                f"use a number from 1 to {len(gpus)}"
                if gpus
                else "plan for GPUs with `--hw 1x24GB`",
            )
        counts = [opts.gpus]
    elif RECORDS[opts.engine].tensor_parallel:
        counts = _tp_candidates(spec, len(gpus))
    else:
        counts = list(range(1, len(gpus) + 1))
    if (
        RECORDS[opts.engine].tensor_parallel
        and opts.gpus is not None
        and opts.gpus not in _tp_candidates(spec, len(gpus))
    ):
        raise UsageError(
            f"{spec.name} has {spec.arch.attention_heads} attention heads: tensor parallel "
            f"{opts.gpus} does not divide them",
            f"use --gpus {' or '.join(str(k) for k in _tp_candidates(spec, len(gpus)))}",
        )
    return [ordered[:k] for k in counts]


def _estimate_once(
    spec: ModelSpec,
    inv: WeightInventory,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    kvb: float,
) -> _Plan:
    if not gpus:
        cpu = host or Device(kind="cpu", index=None, name="CPU", capacity_bytes=0)
        return _place(spec, inv, (cpu,), opts, kvb)
    last: _Plan | None = None
    for devs in _device_sets(spec, opts, gpus):
        last = _place(spec, inv, devs, opts, kvb)
        if all(r.fits for r in last.per_gpu) and _host_fits(last, host):
            return last
    assert last is not None
    return last


def _host_fits(plan: _Plan, host: Device | None) -> bool:
    if host is None or plan.host_bytes == 0:
        return True
    return plan.host_bytes <= host.capacity_bytes - host.in_use_bytes


def _fits(plan: _Plan, host: Device | None) -> bool:
    return all(r.fits for r in plan.per_gpu) and _host_fits(plan, host)


def _torch_router(arch: Architecture, opts: FitOptions, inv: WeightInventory) -> WeightInventory:
    """The torch engine (transformers 5) keeps some MoE routers in float32 whatever the model
    dtype (``Architecture.router_fp32``): their weight and bias take 4 bytes, not 2."""
    if opts.engine != "torch" or not arch.router_fp32 or opts.quant not in ("bf16", "fp16"):
        return inv
    extra = (arch.hidden_size * arch.experts + (arch.experts if arch.router_bias else 0)) * 2
    layers = tuple(
        b + (extra if arch.is_moe_layer(i) else 0) for i, b in enumerate(inv.layer_bytes)
    )
    return replace(inv, layer_bytes=layers)


def estimate(
    spec: ModelSpec,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    inventory: WeightInventory | None = None,
    *,
    with_suggestions: bool = True,
) -> FitReport:
    """Estimate ``spec`` on the devices for the options, with the verdict and the max context.

    Args:
        spec: the model.
        gpus: the GPUs (empty: a CPU-only host; ``host`` is then the device).
        host: host RAM (None: unknown).
        opts: quant, engine, context, concurrency, KV dtype, GPUs to use.
        inventory: real weight bytes when known (GGUF header, safetensors metadata);
            otherwise computed from the architecture and the quant.
        with_suggestions: compute "what to change" when it does not fit.

    Raises:
        UsageError: bad options (unknown engine/quant, context <= 0 or beyond any scaling,
            an engine that cannot serve the quant on this hardware).
    """
    if opts.engine not in ENGINES:
        raise UsageError(f"unknown engine {opts.engine!r}", f"choose one of: {', '.join(ENGINES)}")
    quant_spec(opts.quant)
    if opts.concurrency < 1:
        raise UsageError(
            f"concurrency must be at least 1, got {opts.concurrency}", "e.g. `--concurrency 4`"
        )
    rope = rope_plan(spec, opts.context, opts.rope_kind)
    on_cpu = not gpus
    why = engine_supports(opts.engine, opts.quant, on_cpu)
    if why:
        hint = "choose another --engine or --quant; `llmops recommend` lists what runs here"
        raise UsageError(why, hint)
    kv_name, kvb = resolve_kv_dtype(opts.kv_dtype, opts.quant, opts.engine)
    inv = inventory or _torch_router(spec.arch, opts, weight_inventory(spec.arch, opts.quant))

    plan = _estimate_once(spec, inv, gpus, host, opts, kvb)
    fits = _fits(plan, host)
    n_used = len(plan.per_gpu) if gpus else 0
    fixed = replace(opts, gpus=n_used or None)
    max_ctx = _max_context(spec, inv, gpus, host, fixed, kvb)

    warnings: list[str] = []
    if rope is not None:
        warnings.append(
            f"{opts.context} tokens is beyond {spec.name}'s trained context "
            f"{spec.arch.trained_context}: rope scaling {rope.kind} x{rope.factor:g} "
            "(expect lower quality on long inputs)"
        )
    elif opts.context > spec.arch.trained_context and spec.arch.position == "alibi":
        warnings.append(
            f"{spec.name} uses ALiBi: beyond {spec.arch.trained_context} tokens quality drops"
        )
    kw = _kernel_warning(opts.quant, opts.engine, tuple(d for d in gpus))
    if kw:
        warnings.append(kw)
    if any(r.in_use_bytes > GIB // 4 and r.device == "gpu" for r in plan.per_gpu):
        warnings.append("other processes hold GPU memory: counted as unavailable")
    if spec.gated:
        warnings.append(
            f"{spec.name} is gated on Hugging Face: accept its licence and set HF_TOKEN"
        )
    if fits and any(r.total_bytes > 0.95 * r.usable_bytes for r in plan.per_gpu):
        warnings.append("tight: less than 5 % headroom on a device")

    report = FitReport(
        model=spec.name,
        quant=opts.quant,
        engine=opts.engine,
        context=opts.context,
        concurrency=opts.concurrency,
        kv_dtype=kv_name,
        kv_bytes_per_token=kv_bytes_per_token(spec, kvb, engine=opts.engine),
        parallelism=plan.parallelism,
        tensor_parallel=plan.tp,
        gpus_used=n_used,
        per_gpu=plan.per_gpu,
        host_bytes=plan.host_bytes,
        host_capacity_bytes=host.capacity_bytes - host.in_use_bytes if host else None,
        fits=fits,
        max_context=max_ctx,
        trained_context=spec.arch.trained_context,
        rope=rope,
        weights_total_bytes=inv.total_bytes,
        weights_source=inv.source,
        params=spec.params or _params(spec),
        warnings=tuple(warnings),
    )
    if not fits and with_suggestions:
        report = replace(
            report, suggestions=tuple(suggest(spec, gpus, host, opts, report, inventory))
        )
    return report


def _params(spec: ModelSpec) -> int:
    from llmops.plan.quant import param_count

    return param_count(spec.arch)


def _max_context(
    spec: ModelSpec,
    inv: WeightInventory,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    kvb: float,
) -> int:
    """The largest context (multiple of 256 when >= 256) that fits the same devices."""
    cap = max(spec.arch.trained_context, opts.context)

    def ok(ctx: int) -> bool:
        return _fits(_estimate_once(spec, inv, gpus, host, replace(opts, context=ctx), kvb), host)

    if not ok(1):
        return 0
    if ok(cap):
        return cap
    lo, hi = 1, cap  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo - lo % 256 if lo >= 256 else lo


def suggest(
    spec: ModelSpec,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    report: FitReport,
    inventory: WeightInventory | None = None,
) -> list[str]:
    """What to change when it does not fit: context, KV dtype, quant, engine, more GPUs."""
    out: list[str] = []
    if report.max_context >= 256:
        out.append(f"shorter context: `--context {report.max_context}` fits")
    if opts.concurrency > 1:
        try:
            r = estimate(
                spec, gpus, host, replace(opts, concurrency=1), inventory, with_suggestions=False
            )
            if r.fits:
                out.append("one sequence at a time: `--concurrency 1` fits")
        except UsageError:
            pass
    for kv in ("fp8", "q8_0"):
        try:
            r = estimate(
                spec, gpus, host, replace(opts, kv_dtype=kv), inventory, with_suggestions=False
            )
        except UsageError:
            continue
        if r.fits and opts.kv_dtype != kv:
            out.append(f"a {kv} KV cache: `--kv-dtype {kv}` fits")
            break
    on_cpu = not gpus
    bits = QUANT_SPECS[opts.quant].bits
    smaller: dict[str, list[str]] = {}
    for eng, q in artifacts.served(spec):
        # only a quant with fewer bits is "smaller" (never fp16 for bf16)
        fewer = q in QUANT_SPECS and 0 < QUANT_SPECS[q].bits < bits
        if fewer and engine_supports(eng, q, on_cpu) is None:
            smaller.setdefault(q, []).append(eng)
    for q, engines in sorted(smaller.items(), key=lambda kv: -QUANT_SPECS[kv[0]].bits):
        for eng in sorted(engines, key=lambda e: e != opts.engine):
            try:
                r = estimate(
                    spec,
                    gpus,
                    host,
                    replace(opts, quant=q, engine=eng, kv_dtype="auto"),
                    with_suggestions=False,
                )
            except UsageError:
                continue
            useful = min(4096, spec.arch.trained_context, opts.context)
            if r.fits:
                out.append(f"a smaller quant: `--quant {q} --engine {eng}` fits")
            elif r.max_context >= useful:
                out.append(
                    f"a smaller quant with less context: `--quant {q} --engine {eng} "
                    f"--context {r.max_context}` fits"
                )
            else:
                continue
            break
        if len(out) >= 4:
            break
    if gpus:
        need = _gpus_needed(spec, gpus[0], host, opts, inventory)
        if need and need > len(gpus):
            out.append(
                f"more GPUs: {need}x {gpus[0].name} would fit (`--hw {need}x{gpus[0].capacity_bytes // GIB}GB`)"
            )
        if opts.engine == "llamacpp":
            n = _offload_layers(spec, gpus, host, opts, inventory)
            if n is not None and 0 < n < spec.arch.layers:
                out.append(
                    f"partial offload: {n} of {spec.arch.layers} layers on the GPU(s), the rest "
                    "in RAM (llama.cpp `-ngl {n}`, much slower)".replace("{n}", str(n))
                )
    return out


def _gpus_needed(
    spec: ModelSpec,
    card: Device,
    host: Device | None,
    opts: FitOptions,
    inventory: WeightInventory | None,
) -> int | None:
    for n in (2, 4, 8, 16):
        devs = tuple(replace(card, index=i, in_use_bytes=0) for i in range(n))
        try:
            r = estimate(
                spec, devs, host, replace(opts, gpus=None), inventory, with_suggestions=False
            )
        except UsageError:
            return None
        if r.fits:
            return n
    return None


def _offload_layers(
    spec: ModelSpec,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    inventory: WeightInventory | None,
) -> int | None:
    """How many layers llama.cpp could keep on the GPUs (the rest run from RAM)."""
    inv = inventory or weight_inventory(spec.arch, opts.quant)
    _, kvb = resolve_kv_dtype(opts.kv_dtype, opts.quant, opts.engine)
    best = None
    for n in range(spec.arch.layers, 0, -1):
        partial = replace(
            spec,
            arch=replace(
                spec.arch, layers=n, sliding_window_layers=min(n, spec.arch.sliding_window_layers)
            ),
        )
        sub = replace(inv, layer_bytes=inv.layer_bytes[:n])
        plan = _estimate_once(partial, sub, gpus, host, replace(opts, gpus=None), kvb)
        if _fits(plan, None):
            best = n
            break
    return best


__all__ = [
    "DeviceUsage",
    "FitOptions",
    "FitReport",
    "estimate",
    "kv_bytes_per_token",
    "rope_plan",
]
