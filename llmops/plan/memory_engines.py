"""What each engine adds besides weights and KV: activation peak, fixed overhead, reserve.

Pure code (no I/O). The per-engine constants live in the engine records
(``llmops/plan/engines/``); the rules that use them live here. The method, with each term's
figures, is in ``llmops.plan.memory``'s docstring.
"""

from __future__ import annotations

from llmops.plan.engines import RECORDS
from llmops.plan.hardware import GIB, MIB, Device
from llmops.plan.model import ModelSpec
from llmops.plan.quant import QUANT_SPECS

CUDA_CONTEXT_BYTES = 512 * MIB
NCCL_BYTES = 256 * MIB
# per-engine constants live in the engine records (llmops/plan/engines/)
CUDA_GRAPHS_BYTES = {n: r.cuda_graphs_bytes for n, r in RECORDS.items()}
CPU_RUNTIME_BYTES = {n: r.cpu_runtime_bytes for n, r in RECORDS.items()}
PREFILL_TOKENS = {n: r.prefill_tokens for n, r in RECORDS.items() if r.prefill_tokens}
VLLM_MAX_NUM_SEQS = 256  # vLLM's default below 70 GiB (see vllm_batch_defaults)
TGI_WIGGLE_ROOM = 0.90
ALLOCATOR_RESERVE = 0.02


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


def kernel_warning(quant: str, engine: str, devs: tuple[Device, ...]) -> str | None:
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


def activation_bytes(
    spec: ModelSpec,
    engine: str,
    tokens: int,
    tp: int,
    act_b: int,
    n_ctx: int,
    concurrency: int,
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
        act += max(concurrency, 1) * vocab_shard * 4
    return int(act)


def overhead_bytes(engine: str, n_gpus: int, on_cpu: bool, enforce_eager: bool) -> int:
    """Fixed bytes per device: the CPU runtime, or CUDA context + graphs (+ NCCL under TP)."""
    if on_cpu:
        return CPU_RUNTIME_BYTES[engine]
    o = CUDA_CONTEXT_BYTES
    if not enforce_eager:
        o += CUDA_GRAPHS_BYTES[engine]
    if n_gpus > 1 and RECORDS[engine].tensor_parallel:
        o += NCCL_BYTES
    return o


def reserve_bytes(
    dev: Device,
    engine: str,
    weights: int,
    act: int,
    overhead: int,
    util: float,
    pre_load_overhead: int = 0,
) -> int:
    """What the engine keeps out of its own use on ``dev`` (none on the CPU)."""
    cap = dev.capacity_bytes
    if dev.kind == "cpu":
        return 0
    if RECORDS[engine].reserve == "static":
        # SGLang: (1 - mem_fraction_static) of the memory free before the weights load
        # (``util`` is SGLang's fraction here; see engines/sglang.py)
        return int(max(0, cap - dev.in_use_bytes - pre_load_overhead) * (1 - util))
    if RECORDS[engine].reserve == "utilization":  # vLLM: a fraction of the card
        return int(cap * (1 - util))
    if engine == "tgi":
        return int(max(0, cap - weights - act - overhead) * (1 - TGI_WIGGLE_ROOM))
    return int(cap * ALLOCATOR_RESERVE)
