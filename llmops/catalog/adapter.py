"""The catalog and the estimator, as `up` and `render` need them.

One place that turns a model name, a quant, an engine and the host facts into the artifact to
serve and the fit verdict (with the context to use and the rope scaling), so `fit`, `render`
and `up` agree on what fits.
"""

from __future__ import annotations

from typing import Any

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.launch import ModelArtifact, RopeScaling
from llmops.plan.model import ModelSpec
from llmops.run.launching import FitInfo

DEFAULT_CONTEXT_CAP = 32768  # default context when none is asked: the trained length, capped
MIN_USEFUL_CONTEXT = 1024


def resolve(model: str) -> ModelSpec:
    """A catalog name, alias or Hugging Face repo id → ModelSpec (clear error when unknown)."""
    from llmops.catalog.recipes import resolve_model

    spec: ModelSpec = resolve_model(model)
    return spec


def is_bundled(spec: ModelSpec) -> bool:
    """The model's weights ship in a Python package (served by the torch backend offline)."""
    return spec.name in artifacts.BUNDLED


def formats(spec: ModelSpec) -> set[str]:
    return artifacts.formats(spec)


def default_quant(spec: ModelSpec, engine: str, facts: HostFacts) -> str:
    """The estimator's default for the host, adjusted to what the engine serves."""
    from llmops.plan.memory import default_quant as est_default

    on_cpu = not (facts.nvidia and facts.nvidia.healthy_gpus)
    avail = artifacts.available_quants(spec, engine)
    if engine == "torch" and on_cpu and "fp32" in avail:
        return "fp32"  # half precision is slow or unsupported on CPUs
    q = est_default(spec, on_cpu)
    if q in avail:
        return q
    for cand in ("awq", "4bit", "q4_k_m", "bf16", "fp16", "fp32"):
        if cand in avail:
            return cand
    raise UsageError(
        f"{spec.name} publishes nothing {engine} can serve",
        "try another `--engine`; `llmops models show " + spec.name + "` lists the formats",
    )


def artifact(spec: ModelSpec, quant: str, engine: str) -> ModelArtifact:
    return artifacts.artifact_for(spec, quant, engine)


def _fit_quant(art: ModelArtifact) -> str:
    """The estimator's quant name for an artifact (a bundled model is its safetensors dtype)."""
    if art.format == "bundled":
        return art.quant if art.quant != "auto" else "fp32"
    return art.quant


def fit(
    spec: ModelSpec,
    art: ModelArtifact,
    engine: str,
    facts: HostFacts,
    *,
    context: int | None,
    gpus: tuple[int, ...] | None,
    concurrency: int,
) -> FitInfo:
    """Run the estimator for this launch; choose the context when none is given."""
    from llmops.plan.hardware import devices_from_facts
    from llmops.plan.memory import FitOptions, estimate

    devs, host = devices_from_facts(facts)
    if gpus is not None:
        devs = tuple(d for d in devs if d.index in gpus)
    if engine in ("tgi", "vllm") and not devs:
        # no GPU here: the plan can still be rendered; say so rather than estimating on RAM
        ctx = context or min(spec.arch.trained_context, DEFAULT_CONTEXT_CAP)
        return FitInfo(
            fits=False,
            context=ctx,
            max_context=None,
            gpus_needed=0,
            weights_bytes=art.size_bytes,
            rope=None,
            line=f"{engine} needs an NVIDIA GPU and this host has none",
            breakdown="",
            summary={"fits": False, "reason": "no GPU"},
        )
    if not devs and host is None:
        raise UsageError(
            "the hardware has no GPU and its RAM is unknown, so nothing can be sized",
            "say how much RAM: `--hw cpu:64GB`",
        )
    q = _fit_quant(art)
    ctx = context or min(spec.arch.trained_context, DEFAULT_CONTEXT_CAP)
    opts = FitOptions(
        quant=q,
        engine=engine,
        context=ctx,
        concurrency=concurrency,
        gpus=len(gpus) if gpus else None,
    )
    report = estimate(spec, devs, host, opts)
    if context is None and not report.fits and report.max_context >= MIN_USEFUL_CONTEXT:
        ctx = report.max_context - report.max_context % 256 or report.max_context
        opts = FitOptions(
            quant=q,
            engine=engine,
            context=ctx,
            concurrency=concurrency,
            gpus=len(gpus) if gpus else None,
        )
        report = estimate(spec, devs, host, opts)
    rope = None
    if report.rope is not None:
        rope = RopeScaling(
            kind=report.rope.kind,
            factor=report.rope.factor,
            original_context=report.rope.original_context or spec.arch.trained_context,
        )
    return FitInfo(
        fits=report.fits,
        context=ctx,
        max_context=report.max_context,
        gpus_needed=report.gpus_used,
        weights_bytes=art.size_bytes or report.weights_total_bytes,
        rope=rope,
        line=_line(report),
        breakdown=_breakdown(report),
        summary=_summary(report),
    )


def _gib(b: int) -> str:
    return f"{b / 2**30:.1f} GiB"


def _line(r: Any) -> str:
    where = f"{r.gpus_used} GPU(s)" if r.gpus_used else "CPU/RAM"
    verdict = "fits" if r.fits else "does NOT fit"
    return (
        f"{r.model} {r.quant} on {r.engine}, context {r.context} x{r.concurrency}: {verdict} on "
        f"{where} ({_gib(r.total_bytes)} needed; max context {r.max_context})"
    )


def _breakdown(r: Any) -> str:
    rows = [
        f"  {'device':<14}{'weights':>11}{'KV cache':>11}{'overhead':>11}{'total':>11}{'usable':>11}"
    ]
    for d in r.per_gpu:
        label = f"{d.device} {d.index}" if d.index is not None else d.device
        over = d.activation_bytes + d.overhead_bytes
        rows.append(
            f"  {label:<14}{_gib(d.weights_bytes):>11}{_gib(d.kv_cache_bytes):>11}"
            f"{_gib(over):>11}{_gib(d.total_bytes):>11}{_gib(d.usable_bytes):>11}"
        )
    rows += [f"  try: {s}" for s in r.suggestions[:3]]
    return "\n".join(rows)


def _summary(r: Any) -> dict[str, Any]:
    return {
        "fits": r.fits,
        "context": r.context,
        "max_context": r.max_context,
        "tensor_parallel": r.tensor_parallel,
        "gpus_used": r.gpus_used,
        "per_gpu": [
            {
                "index": d.index,
                "weights_bytes": d.weights_bytes,
                "kv_cache_bytes": d.kv_cache_bytes,
                "overhead_bytes": d.activation_bytes + d.overhead_bytes,
                "total_bytes": d.total_bytes,
                "capacity_bytes": d.capacity_bytes,
            }
            for d in r.per_gpu
        ],
    }


def parse_hw_facts(hw: str) -> HostFacts:
    """HostFacts for ``--hw`` text (GPUs as described; Docker with GPU support assumed)."""
    from llmops import __version__
    from llmops.hw.facts import DockerFacts
    from llmops.plan.hardware import facts_from_hw, parse_hw

    base = HostFacts(
        llmops_version=__version__,
        collected_at="",
        source=f"hw:{hw}",
        docker=DockerFacts(reachable=True, runtimes=("nvidia", "runc")),
    )
    return facts_from_hw(parse_hw(hw), base)
