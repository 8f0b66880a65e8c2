"""Where the weights, KV cache and buffers go: one device's share, per device set.

Pure code (no I/O). Tensor parallel (vLLM, SGLang, TGI) divides the weights and KV heads over
the GPUs; llama.cpp and torch split by layers (llama.cpp keeps ``token_embd`` in host RAM); a
CPU host is one device. ``estimate_once`` tries the GPU sets fewest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmops.errors import UsageError
from llmops.plan.engines import RECORDS, sglang
from llmops.plan.hardware import MIB, Device
from llmops.plan.kv import LLAMACPP_CTX_PAD, VLLM_BLOCK, kv_layer_bytes, resolve_kv_dtype
from llmops.plan.memory_engines import (
    PREFILL_TOKENS,
    VLLM_MAX_NUM_SEQS,
    activation_bytes,
    overhead_bytes,
    reserve_bytes,
    vllm_batch_defaults,
)
from llmops.plan.memory_types import DeviceUsage, FitOptions
from llmops.plan.model import Architecture, ModelSpec, WeightInventory
from llmops.plan.quant import compute_dtype_bytes, weight_inventory


@dataclass(frozen=True)
class Plan:
    per_gpu: tuple[DeviceUsage, ...]
    host_bytes: int
    parallelism: str
    tp: int


def tp_candidates(spec: ModelSpec, n: int) -> list[int]:
    a = spec.arch
    out = []
    for k in range(1, n + 1):
        if a.attention_heads % k:
            continue
        if a.kv_heads % k and k % a.kv_heads:
            continue
        out.append(k)
    return out


def split_layers(n_layers: int, weights: list[int]) -> list[int]:
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
    reserve = reserve_bytes(dev, engine, weights, act, overhead, util, pre_load_overhead)
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


def place(
    spec: ModelSpec,
    inv: WeightInventory,
    devs: tuple[Device, ...],
    opts: FitOptions,
    kvb: float,
) -> Plan:
    """Weights, KV and buffers on ``devs`` (all GPUs, or the one CPU device)."""
    engine = opts.engine
    tokens = opts.context * max(opts.concurrency, 1)
    n_ctx = tokens
    if engine == "llamacpp":
        n_ctx = -(-tokens // LLAMACPP_CTX_PAD) * LLAMACPP_CTX_PAD
    chunk = opts.prefill_tokens or PREFILL_TOKENS.get(engine) or opts.context
    prefill = min(chunk, opts.context if engine != "llamacpp" else n_ctx)
    on_cpu = devs[0].kind == "cpu"
    if RECORDS[engine].tensor_parallel and not on_cpu:
        return _place_tensor(spec, inv, devs, opts, kvb, prefill, n_ctx)
    return _place_layers(spec, inv, devs, opts, kvb, prefill, n_ctx, on_cpu)


def _sglang_static(
    a: Architecture, devs: tuple[Device, ...], tp: int, ov: int
) -> tuple[float, int, int]:
    """SGLang's (mem_fraction_static, pre-load overhead, overhead): its slack holds its
    activations and CUDA graphs; what it keeps out of the KV budget besides is the multimodal
    cache (engines/sglang.py)."""
    sm = sglang.static_memory(
        min(d.capacity_bytes for d in devs) / MIB,
        tp,
        mla=a.mla is not None,
        multimodal=a.multimodal,
        vision=(a.vision_layers, a.vision_hidden),
    )
    pre = ov
    if a.multimodal:
        ov += sglang.VLM_CACHE_MIB * MIB
    return sm.mem_fraction_static, pre, ov


def _place_tensor(
    spec: ModelSpec,
    inv: WeightInventory,
    devs: tuple[Device, ...],
    opts: FitOptions,
    kvb: float,
    prefill: int,
    n_ctx: int,
) -> Plan:
    """Tensor parallel over ``devs``: weights and KV heads divided, the same share on each."""
    a = spec.arch
    engine = opts.engine
    seqs = max(opts.concurrency, 1)
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
    kv = sum(kv_layer_bytes(spec, ctx_t * seqs, opts.context, seqs, kvb, heads, engine, batch))
    big = inv.embed_bytes + inv.lm_head_bytes + sum(inv.layer_bytes)
    w = -(-big // tp) + inv.other_bytes
    act_b = compute_dtype_bytes(opts.quant)
    act = activation_bytes(spec, engine, prefill, tp, act_b, n_ctx, opts.concurrency, max_seqs)
    ov = overhead_bytes(engine, tp, False, opts.enforce_eager)
    util = opts.gpu_memory_utilization
    pre = 0
    if engine == "sglang":
        util, pre, ov = _sglang_static(a, devs, tp, ov)
        act = 0
    rows = tuple(_usage(d, engine, a.layers, w, kv, act, ov, util, pre) for d in devs)
    return Plan(rows, 0, "tensor" if tp > 1 else "single", tp)


def _place_layers(
    spec: ModelSpec,
    inv: WeightInventory,
    devs: tuple[Device, ...],
    opts: FitOptions,
    kvb: float,
    prefill: int,
    n_ctx: int,
    on_cpu: bool,
) -> Plan:
    """A layer split (llama.cpp, torch/accelerate) over the GPUs, or one CPU device."""
    a = spec.arch
    engine = opts.engine
    seqs = max(opts.concurrency, 1)
    ubatch = prefill if engine == "llamacpp" else 0
    kv_layers = kv_layer_bytes(spec, n_ctx, opts.context, seqs, kvb, a.kv_heads, engine, ubatch)
    act_b = compute_dtype_bytes(opts.quant)
    act = activation_bytes(spec, engine, prefill, 1, act_b, n_ctx, opts.concurrency)
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
        counts = split_layers(a.layers, [max(0, d.capacity_bytes - d.in_use_bytes) for d in devs])
    ov = overhead_bytes(engine, len(devs), on_cpu, opts.enforce_eager)
    rows: list[DeviceUsage] = []
    start = 0
    for i, (d, c) in enumerate(zip(devs, counts, strict=True)):
        w = sum(inv.layer_bytes[start : start + c])
        kv = sum(kv_layers[start : start + c])
        if i == 0:
            w += embed_on_dev
        if i == len(devs) - 1:
            w += head + inv.other_bytes
        start += c
        rows.append(_usage(d, engine, c, w, kv, act, ov, 1.0))
    par = "cpu" if on_cpu else ("layers" if len(devs) > 1 else "single")
    return Plan(tuple(rows), host, par, 1)


def device_sets(
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
        counts = tp_candidates(spec, len(gpus))
    else:
        counts = list(range(1, len(gpus) + 1))
    if (
        RECORDS[opts.engine].tensor_parallel
        and opts.gpus is not None
        and opts.gpus not in tp_candidates(spec, len(gpus))
    ):
        raise UsageError(
            f"{spec.name} has {spec.arch.attention_heads} attention heads: tensor parallel "
            f"{opts.gpus} does not divide them",
            f"use --gpus {' or '.join(str(k) for k in tp_candidates(spec, len(gpus)))}",
        )
    return [ordered[:k] for k in counts]


def estimate_once(
    spec: ModelSpec,
    inv: WeightInventory,
    gpus: tuple[Device, ...],
    host: Device | None,
    opts: FitOptions,
    kvb: float,
) -> Plan:
    if not gpus:
        cpu = host or Device(kind="cpu", index=None, name="CPU", capacity_bytes=0)
        return place(spec, inv, (cpu,), opts, kvb)
    last: Plan | None = None
    for devs in device_sets(spec, opts, gpus):
        last = place(spec, inv, devs, opts, kvb)
        if all(r.fits for r in last.per_gpu) and host_fits(last, host):
            return last
    assert last is not None
    return last


def host_fits(plan: Plan, host: Device | None) -> bool:
    if host is None or plan.host_bytes == 0:
        return True
    return plan.host_bytes <= host.capacity_bytes - host.in_use_bytes


def plan_fits(plan: Plan, host: Device | None) -> bool:
    return all(r.fits for r in plan.per_gpu) and host_fits(plan, host)


def offload_layers(
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
        plan = estimate_once(partial, sub, gpus, host, replace(opts, gpus=None), kvb)
        if plan_fits(plan, None):
            best = n
            break
    return best
