"""``recommend``: which model x quant x engine x context fits this hardware, best first.

Pure: walks the catalog it is given through the estimator. For each model it keeps the best
quant that fits with at least ``MIN_CONTEXT`` tokens (the largest context up to the model's
trained length, capped at ``CONTEXT_CAP``), then ranks the models:

- ``quality``: a published benchmark figure (MMLU, in the recipe) times the quant's quality
  factor (16-bit 1.0, 8-bit 0.99, Q5_K_M 0.97, 4-bit 0.94-0.95), plus a little for context;
- ``speed``: decode is memory-bound, so fewer bytes read per token (active weights per GPU,
  MoE reads only its active experts) is faster; engines with continuous batching and CUDA
  graphs first, CPU last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from llmops.errors import UsageError
from llmops.plan.hardware import GIB, Device
from llmops.plan.memory import FitOptions, FitReport, available_quants, default_engine, estimate
from llmops.plan.model import ModelSpec
from llmops.plan.quant import QUANT_SPECS, active_param_count, param_count

CONTEXT_CAP = 32768
MIN_CONTEXT = 2048
# contexts offered, so a recommendation leaves headroom instead of filling memory to the byte
CONTEXT_TIERS = (32768, 16384, 8192, 4096, 2048)
ENGINE_SPEED = {"vllm": 1.0, "tgi": 0.95, "llamacpp": 0.8, "torch": 0.5}
TASKS = ("chat", "code")
PREFER = ("quality", "speed")


@dataclass(frozen=True)
class Recommendation:
    model: str
    display_name: str
    quant: str
    engine: str
    context: int
    gpus_used: int
    params: int
    mmlu: float | None
    quality_score: float
    speed_score: float
    total_bytes: int
    capacity_bytes: int
    reason: str
    report: FitReport


def _quality(spec: ModelSpec, quant: str, context: int) -> float:
    base = spec.mmlu if spec.mmlu is not None else 30.0
    return base * QUANT_SPECS[quant].quality + math.log2(max(context, 1)) / 4


def _speed(spec: ModelSpec, r: FitReport) -> float:
    total = param_count(spec.arch)
    active = active_param_count(spec.arch)
    bytes_per_token = r.weights_total_bytes * active / max(total, 1) / max(r.tensor_parallel, 1)
    s = 1e9 / max(bytes_per_token, 1) * ENGINE_SPEED[r.engine]
    if r.gpus_used == 0:
        s *= 0.1  # CPU memory bandwidth is roughly a tenth of a GPU's
    return s


def _candidates(spec: ModelSpec, on_cpu: bool) -> list[tuple[str, str]]:
    out = []
    for q in available_quants(spec):
        if q == "gguf" or (q == "fp32" and not on_cpu):
            continue
        if on_cpu and not QUANT_SPECS[q].cpu:
            continue
        if on_cpu and q == "fp32":
            continue  # bf16 is the same quality at half the RAM
        out.append((q, default_engine(q, on_cpu)))
    return out


def _reason(r: FitReport, spec: ModelSpec) -> str:
    if r.gpus_used:
        devs = r.per_gpu
        used = sum(d.total_bytes for d in devs) / GIB
        cap = sum(d.usable_bytes for d in devs) / GIB
        how = {"tensor": f"tensor parallel {r.tensor_parallel}", "layers": "layer split"}.get(
            r.parallelism, "one GPU"
        )
        where = f"{r.gpus_used} GPU(s), {how}: {used:.1f} of {cap:.1f} GiB"
    else:
        d = r.per_gpu[0]
        where = f"CPU RAM: {d.total_bytes / GIB:.1f} of {d.usable_bytes / GIB:.1f} GiB"
    q = f"MMLU ~{spec.mmlu:g}" if spec.mmlu is not None else "no benchmark figure"
    moe = (
        f", MoE {spec.arch.experts_active}/{spec.arch.experts} experts active"
        if spec.arch.is_moe
        else ""
    )
    return f"{where}; {r.context} tokens; {q}{moe}"


def recommend(
    models: Iterable[ModelSpec],
    gpus: tuple[Device, ...],
    host: Device | None,
    *,
    task: str | None = None,
    prefer: str = "quality",
    concurrency: int = 1,
    limit: int | None = 10,
) -> list[Recommendation]:
    """Ranked recommendations (one per model: its best fitting quant), best first.

    Raises:
        UsageError: unknown task or preference.
    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}", f"choose one of: {', '.join(TASKS)}")
    if prefer not in PREFER:
        raise UsageError(f"unknown preference {prefer!r}", f"choose one of: {', '.join(PREFER)}")
    on_cpu = not gpus
    best: list[Recommendation] = []
    for spec in models:
        if task is not None and task not in spec.tasks:
            continue
        options: list[Recommendation] = []
        for quant, engine in _candidates(spec, on_cpu):
            cap = min(spec.arch.trained_context, CONTEXT_CAP)
            opts = FitOptions(quant=quant, engine=engine, context=cap, concurrency=concurrency)
            try:
                r = estimate(spec, gpus, host, opts, with_suggestions=False)
            except UsageError:
                continue
            if not r.fits:
                ctx = next((t for t in CONTEXT_TIERS if t <= min(r.max_context, cap)), 0)
                if ctx < min(MIN_CONTEXT, cap):
                    continue
                r = estimate(
                    spec,
                    gpus,
                    host,
                    FitOptions(quant=quant, engine=engine, context=ctx, concurrency=concurrency),
                    with_suggestions=False,
                )
                if not r.fits:
                    continue
            options.append(
                Recommendation(
                    model=spec.name,
                    display_name=spec.label,
                    quant=quant,
                    engine=engine,
                    context=r.context,
                    gpus_used=r.gpus_used,
                    params=param_count(spec.arch),
                    mmlu=spec.mmlu,
                    quality_score=_quality(spec, quant, r.context),
                    speed_score=_speed(spec, r),
                    total_bytes=sum(d.total_bytes for d in r.per_gpu),
                    capacity_bytes=sum(d.capacity_bytes for d in r.per_gpu),
                    reason=_reason(r, spec),
                    report=r,
                )
            )
        if options:
            key = (
                (lambda o: (o.quality_score, o.speed_score))
                if prefer == "quality"
                else (lambda o: (o.speed_score, o.quality_score))
            )
            best.append(max(options, key=key))
    if prefer == "quality":
        best.sort(key=lambda o: (-o.quality_score, -o.speed_score, o.model))
    else:
        # fastest first among models that are not far below the best quality that fits
        top_q = max((o.quality_score for o in best), default=0.0)
        best.sort(key=lambda o: (o.quality_score < top_q - 25, -o.speed_score, o.model))
    return best[:limit] if limit else best
