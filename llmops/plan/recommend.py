"""``recommend``: which model x quant x engine x context fits this hardware, best first.

Pure. Each catalog model goes through the same decision ``up`` and ``render`` make
(``llmops.plan.deploy.decide``) with no ``--quant``/``--engine``, first at a comfortable context
(the trained one, at most 32768 tokens), then at the target (``--context``, default 8192): the
best artifact that fits there. So every row is what ``llmops up MODEL --context N`` would start,
and its command renders. The rows are then ranked the way an expert would:

- **useful context first**: a row below the target context (or the model's trained length, if
  shorter) is dropped when another model reaches it; so is one that fills more than ``TIGHT``
  (95 %) of a device's usable memory (vLLM's usable is already 90 % of the card), and, on a
  CPU, one whose decode would crawl (below ``MIN_TOKENS_S`` by memory bandwidth);
- ``quality``: the recipe's quality tier (1-5; older entries without one: from MMLU, at most 3),
  then a published benchmark figure (MMLU) times the quant's quality factor (16-bit 1.0, 8-bit
  0.99, Q5_K_M 0.97, 4-bit 0.94-0.95), then the newer release at equal fit, plus a little for
  context;
- ``speed``: decode is memory-bound, so fewer bytes read per token (active weights per GPU,
  MoE reads only its active experts) is faster; CPU last.

Each row says why (tier, benchmark, memory used of usable, context against the target) and names
the runner-up engine/quant for the same model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.deploy import (
    Decision,
    HostCaps,
    Request,
    ResolvedModel,
    candidates,
    decide,
)
from llmops.plan.engines import RECORDS
from llmops.plan.hardware import GIB, devices_from_facts
from llmops.plan.memory import FitReport, kv_layer_elems
from llmops.plan.model import ModelSpec
from llmops.plan.quant import QUANT_SPECS, active_param_count, param_count, weight_inventory

ENGINE_SPEED = {"vllm": 1.0, "sglang": 1.0, "tgi": 0.95, "llamacpp": 0.8, "torch": 0.5}
TASKS = ("chat", "code")
PREFER = ("quality", "speed")
TIGHT = 0.95
TARGET_CONTEXT = 8192  # a useful chat/RAG context; `--context` changes it
COMFORT_CONTEXT = 32768  # tried first: the trained context, at most this
MIN_TOKENS_S = 5.0  # below this decode speed a CPU row is not offered when another is faster
CPU_BANDWIDTH = 50e9  # bytes/s: dual-channel DDR5 class (a GPU reads ~10-40x faster)
GPU_BANDWIDTH = 700e9


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
    tier: int = 1
    released: str = ""
    runner_up: str = ""  # "GGUF Q4_K_M on llamacpp, 32768 tokens" (same model), or ""


def tier_of(spec: ModelSpec) -> int:
    """The recipe's tier; an entry without one (2023-24 models) from its MMLU, at most 3."""
    if spec.tier is not None:
        return spec.tier
    m = spec.mmlu or 0.0
    return 1 + (m >= 65) + (m >= 80)


def _months(released: str) -> int:
    if not released:
        return 0
    y, mo = int(released[:4]), int(released[5:7])
    return max(0, (y - 2023) * 12 + mo)


def _quality(spec: ModelSpec, quant: str, context: int) -> float:
    base = spec.mmlu if spec.mmlu is not None else 30.0
    return (
        100.0 * tier_of(spec)
        + base * QUANT_SPECS[quant].quality
        + math.log2(max(context, 1)) / 4
        + _months(spec.released) / 24  # newer generation wins a tie (~0.5 a year)
    )


def _bytes_per_token(spec: ModelSpec, r: FitReport) -> float:
    total = param_count(spec.arch)
    active = active_param_count(spec.arch, embedding=False)
    return r.weights_total_bytes * active / max(total, 1) / max(r.tensor_parallel, 1)


def _speed(spec: ModelSpec, r: FitReport) -> float:
    s = 1e9 / max(_bytes_per_token(spec, r), 1) * ENGINE_SPEED.get(r.engine, 0.8)
    if r.gpus_used == 0:
        s *= 0.1  # CPU memory bandwidth is roughly a tenth of a GPU's
    return s


def tokens_per_s(spec: ModelSpec, r: FitReport) -> float:
    """Decode tokens/s bound by memory bandwidth (a rough class figure, not a measurement)."""
    bw = GPU_BANDWIDTH if r.gpus_used else CPU_BANDWIDTH
    return bw / max(_bytes_per_token(spec, r), 1)


def _headroom(r: FitReport) -> float:
    """The largest fraction of a device's usable memory the plan fills."""
    return max((d.total_bytes / d.usable_bytes for d in r.per_gpu if d.usable_bytes > 0), default=1)


def _reason(r: FitReport, spec: ModelSpec, target: int) -> str:
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
    where += f" ({_headroom(r):.0%} of usable)"
    q = f"MMLU ~{spec.mmlu:g}" if spec.mmlu is not None else "no benchmark figure"
    gen = f"tier {tier_of(spec)}" + (f", {spec.released[:7]}" if spec.released else "")
    moe = (
        f", MoE {spec.arch.experts_active}/{spec.arch.experts} experts active"
        if spec.arch.is_moe
        else ""
    )
    ctx = f"{r.context} tokens" + (" (>= target)" if r.context >= target else " (below target)")
    speed = "" if r.gpus_used else f"; ~{tokens_per_s(spec, r):.0f} tok/s decode"
    return f"{gen}; {q}{moe}; {ctx}; {where}{speed}"


def _tight(r: FitReport) -> bool:
    return any(d.total_bytes > TIGHT * d.usable_bytes for d in r.per_gpu if d.usable_bytes > 0)


def _decide(spec: ModelSpec, facts: HostFacts, req: Request) -> Decision | None:
    try:
        d = decide(req, ResolvedModel(spec), facts, HostCaps(planning=True))
    except LlmopsError:
        return None
    return d if d.fits and d.plan is not None else None


def _smallest_weights(spec: ModelSpec) -> int:
    """The fewest weight bytes any served artifact of ``spec`` has (a lower bound)."""
    sizes = []
    for _, q in artifacts.served(spec):
        if q in QUANT_SPECS and QUANT_SPECS[q].bits > 0:
            try:
                sizes.append(weight_inventory(spec.arch, q).total_bytes)
            except LlmopsError:
                continue
    return min(sizes, default=0)


def _kv_floor(spec: ModelSpec, context: int) -> int:
    """KV bytes of one sequence at ``context`` with 16-bit elements, windows at their smallest."""
    a = spec.arch
    per = kv_layer_elems(spec) * 2
    window = a.sliding_window or context
    return sum(per * (min(context, window) if a.is_local(i) else context) for i in range(a.layers))


def _capacity(facts: HostFacts) -> int:
    gpus, host = devices_from_facts(facts)
    if gpus:
        return sum(d.capacity_bytes - d.in_use_bytes for d in gpus)
    return host.capacity_bytes - host.in_use_bytes if host else 0


def _best(spec: ModelSpec, facts: HostFacts, target: int, concurrency: int) -> Decision | None:
    """What `up` would start: at a comfortable context, else at the target, else what fits.

    A context whose lower bound (the smallest artifact's weights + its KV) exceeds the devices
    is not tried: the decision would only find it does not fit, slowly."""
    trained = spec.arch.trained_context
    cap = _capacity(facts)
    floor = _smallest_weights(spec)
    if cap and floor > cap:
        return None
    tries: list[int | None] = []
    comfort = min(trained, COMFORT_CONTEXT)
    if comfort > target:
        tries.append(comfort)
    tries.append(min(target, trained))
    tries = [
        c for c in tries if not cap or c is None or floor + _kv_floor(spec, c) * concurrency <= cap
    ]
    for ctx in dict.fromkeys([*tries, None]):
        d = _decide(spec, facts, Request(model=spec.name, context=ctx, concurrency=concurrency))
        if d is not None and not _tight(d.report):
            return d
    return None


def runner_up(spec: ModelSpec, facts: HostFacts, d: Decision, concurrency: int = 1) -> str:
    """The next engine/quant that fits the same model at the same context, in words."""
    on_gpu = bool(d.report.gpus_used)
    base = Request(model=spec.name, context=d.context, concurrency=concurrency)
    try:
        cands, _ = candidates(base, spec, on_gpu)
    except LlmopsError:
        return ""
    cap = _capacity(facts)
    kv = _kv_floor(spec, d.context) * concurrency
    tried = 0
    for engine, concrete in cands:
        if (engine, concrete) == (d.engine, d.artifact.quant) or tried >= 6:
            continue
        if cap and concrete in QUANT_SPECS and QUANT_SPECS[concrete].bits > 0:
            try:
                if weight_inventory(spec.arch, concrete).total_bytes + kv > cap:
                    continue  # cannot fit: not worth a decision
            except LlmopsError:
                continue
        tried += 1
        alt = _decide(spec, facts, replace(base, engine=engine, quant=concrete))
        if alt is not None and (alt.engine, alt.artifact.quant) != (d.engine, d.artifact.quant):
            status = " (maintenance mode)" if RECORDS[alt.engine].status else ""
            return f"{alt.artifact.label} on {alt.engine}{status}, {alt.context} tokens"
    return ""


def recommend(
    models: Iterable[ModelSpec],
    facts: HostFacts,
    *,
    task: str | None = None,
    prefer: str = "quality",
    concurrency: int = 1,
    limit: int | None = 10,
    context: int = TARGET_CONTEXT,
) -> list[Recommendation]:
    """Ranked recommendations (one per model: what `up MODEL` would start), best first.

    Raises:
        UsageError: unknown task or preference, or a context below 1.
    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}", f"choose one of: {', '.join(TASKS)}")
    if prefer not in PREFER:
        raise UsageError(f"unknown preference {prefer!r}", f"choose one of: {', '.join(PREFER)}")
    if context < 1:
        raise UsageError(
            f"--context must be a positive number of tokens, got {context}", "e.g. `--context 8192`"
        )
    specs = {m.name: m for m in models}
    rows: list[Recommendation] = []
    decisions: dict[str, Decision] = {}
    for spec in specs.values():
        if task is not None and task not in spec.tasks:
            continue
        d = _best(spec, facts, context, concurrency)
        if d is None:
            continue
        decisions[spec.name] = d
        rows.append(_row(spec, d, context))
    rows = _ranked(_worth_showing(rows, specs, context), prefer)
    rows = rows[:limit] if limit else rows
    out = []
    for o in rows:
        ru = runner_up(specs[o.model], facts, decisions[o.model], concurrency)
        reason = o.reason + (f"; runner-up: {ru}" if ru else "")
        out.append(replace(o, runner_up=ru, reason=reason))
    return out


def _row(spec: ModelSpec, d: Decision, context: int) -> Recommendation:
    r = d.report
    return Recommendation(
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
        reason=_reason(r, spec, context),
        report=r,
        tier=tier_of(spec),
        released=spec.released,
    )


def _worth_showing(
    rows: list[Recommendation], specs: dict[str, ModelSpec], context: int
) -> list[Recommendation]:
    """The rows with a useful context and headroom (at the target first; else at the target or
    the model's whole trained length), and, among those, the ones fast enough to use."""
    for floor_of in (False, True):
        useful = [
            o
            for o in rows
            if o.context >= (_useful_of(o, context) if floor_of else context)
            and not _tight(o.report)
        ]
        if useful:
            rows = useful
            break
    usable = [
        o for o in rows if o.gpus_used or tokens_per_s(specs[o.model], o.report) >= MIN_TOKENS_S
    ]
    return usable or rows


def _ranked(rows: list[Recommendation], prefer: str) -> list[Recommendation]:
    if prefer == "quality":
        return sorted(rows, key=lambda o: (-o.quality_score, -o.speed_score, o.model))
    # fastest first among models that are not far below the best quality that fits
    top_q = max((o.quality_score for o in rows), default=0.0)
    return sorted(rows, key=lambda o: (o.quality_score < top_q - 125, -o.speed_score, o.model))


def _useful_of(o: Recommendation, target: int) -> int:
    return min(o.report.trained_context, target)


def _quality_quant(q: str) -> str:
    return q if q in QUANT_SPECS else "fp16"
