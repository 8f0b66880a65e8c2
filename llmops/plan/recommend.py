"""``recommend``: which model x quant x engine x context fits this hardware, best first.

Pure. Each catalog model goes through the same decision ``up`` and ``render`` make
(``llmops.plan.deploy.decide``) with no ``--quant``/``--engine``: its best artifact that fits
with a useful context. So every row is what ``llmops up MODEL`` would start, and its command
renders. Then the models are ranked:

- ``quality``: a published benchmark figure (MMLU, in the recipe) times the quant's quality
  factor (16-bit 1.0, 8-bit 0.99, Q5_K_M 0.97, 4-bit 0.94-0.95), plus a little for context;
- ``speed``: decode is memory-bound, so fewer bytes read per token (active weights per GPU,
  MoE reads only its active experts) is faster; engines with continuous batching and CUDA
  graphs first, CPU last.

A row whose context is below ``USEFUL_CONTEXT`` (or the model's trained length) is dropped
when another model gives a useful one; so is one above 95 % of a device's usable memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.deploy import USEFUL_CONTEXT, HostCaps, Request, ResolvedModel, decide
from llmops.plan.hardware import GIB
from llmops.plan.memory import FitReport
from llmops.plan.model import ModelSpec
from llmops.plan.quant import QUANT_SPECS, active_param_count, param_count

ENGINE_SPEED = {"vllm": 1.0, "tgi": 0.95, "llamacpp": 0.8, "torch": 0.5}
TASKS = ("chat", "code")
PREFER = ("quality", "speed")
TIGHT = 0.95


@dataclass(frozen=True)
class Recommendation:
    model: str
    display_name: str
    quant: str
    format: str  # the concrete artifact in words: "AWQ 4-bit", "GGUF Q4_K_M"
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


def _useful(spec: ModelSpec) -> int:
    return min(spec.arch.trained_context, USEFUL_CONTEXT)


def _tight(r: FitReport) -> bool:
    return any(d.total_bytes > TIGHT * d.usable_bytes for d in r.per_gpu if d.usable_bytes > 0)


def recommend(
    models: Iterable[ModelSpec],
    facts: HostFacts,
    *,
    task: str | None = None,
    prefer: str = "quality",
    concurrency: int = 1,
    limit: int | None = 10,
) -> list[Recommendation]:
    """Ranked recommendations (one per model: what `up MODEL` would start), best first.

    Raises:
        UsageError: unknown task or preference.
    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}", f"choose one of: {', '.join(TASKS)}")
    if prefer not in PREFER:
        raise UsageError(f"unknown preference {prefer!r}", f"choose one of: {', '.join(PREFER)}")
    rows: list[Recommendation] = []
    for spec in models:
        if task is not None and task not in spec.tasks:
            continue
        req = Request(model=spec.name, concurrency=concurrency)
        try:
            d = decide(req, ResolvedModel(spec), facts, HostCaps(planning=True))
        except LlmopsError:
            continue
        r = d.report
        if not d.fits or d.plan is None:
            continue
        rows.append(
            Recommendation(
                model=spec.name,
                display_name=spec.label,
                quant=d.artifact.quant,
                format=d.artifact.label,
                engine=d.engine,
                context=d.context,
                gpus_used=r.gpus_used,
                params=param_count(spec.arch),
                mmlu=spec.mmlu,
                quality_score=_quality(spec, _quality_quant(d.artifact.quant), d.context),
                speed_score=_speed(spec, r),
                total_bytes=sum(x.total_bytes for x in r.per_gpu),
                capacity_bytes=sum(x.capacity_bytes for x in r.per_gpu),
                reason=_reason(r, spec),
                report=r,
            )
        )
    if any(o.context >= _useful_of(o) and not _tight(o.report) for o in rows):
        rows = [o for o in rows if o.context >= _useful_of(o) and not _tight(o.report)]
    if prefer == "quality":
        rows.sort(key=lambda o: (-o.quality_score, -o.speed_score, o.model))
    else:
        # fastest first among models that are not far below the best quality that fits
        top_q = max((o.quality_score for o in rows), default=0.0)
        rows.sort(key=lambda o: (o.quality_score < top_q - 25, -o.speed_score, o.model))
    return rows[:limit] if limit else rows


def _useful_of(o: Recommendation) -> int:
    return min(o.report.trained_context, USEFUL_CONTEXT)


def _quality_quant(q: str) -> str:
    return q if q in QUANT_SPECS else "fp16"
