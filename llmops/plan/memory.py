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

The parts live in sibling modules, all exported here: the types (``plan.memory_types``), the
KV cache rules (``plan.kv``), the engines' activation/overhead/reserve rules
(``plan.memory_engines``) and the placement on devices (``plan.memory_place``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from llmops.errors import UsageError
from llmops.plan import artifacts
from llmops.plan.engines import ENGINES
from llmops.plan.hardware import GIB, Device
from llmops.plan.kv import (
    LLAMACPP_CTX_PAD,
    TGI_MLA_QK_HEAD,
    VLLM_BLOCK,
    VLLM_CONCURRENT_BATCHES,
    kv_bytes_per_token,
    kv_layer_elems,
    local_kv_tokens,
    resolve_kv_dtype,
)
from llmops.plan.memory_engines import (
    ALLOCATOR_RESERVE,
    CPU_RUNTIME_BYTES,
    CUDA_CONTEXT_BYTES,
    CUDA_GRAPHS_BYTES,
    NCCL_BYTES,
    PREFILL_TOKENS,
    TGI_WIGGLE_ROOM,
    VLLM_MAX_NUM_SEQS,
    engine_supports,
    kernel_warning,
    vllm_batch_defaults,
)
from llmops.plan.memory_place import Plan, estimate_once, offload_layers, plan_fits
from llmops.plan.memory_types import DeviceUsage, FitOptions, FitReport
from llmops.plan.model import Architecture, ModelSpec, RopeScaling, WeightInventory
from llmops.plan.quant import QUANT_SPECS, quant_spec, weight_inventory

CONTEXT_DEFAULT_CAP = 32768  # `fit` without --context: the trained context, at most this
MAX_ROPE_FACTOR = 8.0  # beyond this, no scaling method keeps a model usable


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


def _checked(
    spec: ModelSpec, opts: FitOptions, on_cpu: bool
) -> tuple[RopeScaling | None, str, float]:
    """The options checked: (rope scaling, KV dtype name, KV bytes per element).

    Raises:
        UsageError: unknown engine/quant, concurrency < 1, context <= 0 or beyond any scaling,
            an engine that cannot serve the quant here, a KV dtype the engine has not.
    """
    if opts.engine not in ENGINES:
        raise UsageError(f"unknown engine {opts.engine!r}", f"choose one of: {', '.join(ENGINES)}")
    quant_spec(opts.quant)
    if opts.concurrency < 1:
        raise UsageError(
            f"concurrency must be at least 1, got {opts.concurrency}", "e.g. `--concurrency 4`"
        )
    rope = rope_plan(spec, opts.context, opts.rope_kind)
    why = engine_supports(opts.engine, opts.quant, on_cpu)
    if why:
        hint = "choose another --engine or --quant; `llmops recommend` lists what runs here"
        raise UsageError(why, hint)
    kv_name, kvb = resolve_kv_dtype(opts.kv_dtype, opts.quant, opts.engine)
    return rope, kv_name, kvb


def _warnings(
    spec: ModelSpec,
    opts: FitOptions,
    gpus: tuple[Device, ...],
    plan: Plan,
    rope: RopeScaling | None,
    fits: bool,
) -> list[str]:
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
    kw = kernel_warning(opts.quant, opts.engine, tuple(d for d in gpus))
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
    return warnings


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
    rope, kv_name, kvb = _checked(spec, opts, not gpus)
    inv = inventory or _torch_router(spec.arch, opts, weight_inventory(spec.arch, opts.quant))

    plan = estimate_once(spec, inv, gpus, host, opts, kvb)
    fits = plan_fits(plan, host)
    n_used = len(plan.per_gpu) if gpus else 0
    fixed = replace(opts, gpus=n_used or None)
    max_ctx = _max_context(spec, inv, gpus, host, fixed, kvb)
    warnings = _warnings(spec, opts, gpus, plan, rope, fits)

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
        return plan_fits(
            estimate_once(spec, inv, gpus, host, replace(opts, context=ctx), kvb), host
        )

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
    _suggest_smaller_quants(spec, gpus, host, opts, out)
    if gpus:
        out += _suggest_more_gpus(spec, gpus, host, opts, inventory)
    return out


def _suggest_smaller_quants(
    spec: ModelSpec,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    out: list[str],
) -> None:
    """Adds to ``out`` a quant with fewer bits that fits (or fits a useful context), if any,
    until ``out`` has four suggestions."""
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


def _suggest_more_gpus(
    spec: ModelSpec,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    inventory: WeightInventory | None,
) -> list[str]:
    """More GPUs of the same kind, or (llama.cpp) some layers offloaded to RAM."""
    out: list[str] = []
    need = _gpus_needed(spec, gpus[0], host, opts, inventory)
    if need and need > len(gpus):
        out.append(
            f"more GPUs: {need}x {gpus[0].name} would fit (`--hw {need}x{gpus[0].capacity_bytes // GIB}GB`)"
        )
    if opts.engine == "llamacpp":
        n = offload_layers(spec, gpus, host, opts, inventory)
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


__all__ = [
    "ALLOCATOR_RESERVE",
    "CONTEXT_DEFAULT_CAP",
    "CPU_RUNTIME_BYTES",
    "CUDA_CONTEXT_BYTES",
    "CUDA_GRAPHS_BYTES",
    "LLAMACPP_CTX_PAD",
    "MAX_ROPE_FACTOR",
    "NCCL_BYTES",
    "PREFILL_TOKENS",
    "TGI_MLA_QK_HEAD",
    "TGI_WIGGLE_ROOM",
    "VLLM_BLOCK",
    "VLLM_CONCURRENT_BATCHES",
    "VLLM_MAX_NUM_SEQS",
    "DeviceUsage",
    "FitOptions",
    "FitReport",
    "engine_supports",
    "estimate",
    "kv_bytes_per_token",
    "kv_layer_elems",
    "local_kv_tokens",
    "resolve_kv_dtype",
    "rope_plan",
    "suggest",
    "vllm_batch_defaults",
]
