"""The one decision: which engine, artifact, context, GPUs and flags a request gets. Pure.

``decide(request, model, facts, caps)`` is called by ``fit``, ``recommend``, ``render``, ``up``
(and through ``up`` by ``fleet up``) and by the compose, Kubernetes and multi-node renders; they
differ only in where they stop and what they show. No I/O here: the caller resolves the model
(``llmops.catalog.resolve``), probes or describes the host (``HostFacts``) and says what can run
there (``HostCaps``), and afterwards runs preflight and starts the plan.

How a choice is made:

1. The candidates are (engine, concrete quant) pairs. A quant *word* (``4bit``, ``8bit``,
   ``fp16``, ``bf16``) becomes each engine's concrete artifact from its record
   (``llmops.plan.artifacts``): ``4bit`` is AWQ, then GPTQ (then NF4 on SGLang/TGI), GGUF Q4_K_M
   on llama.cpp, NF4 on torch. Engines are tried in the host's order: on GPUs vLLM, SGLang and
   llama.cpp, then TGI (maintenance mode: only when those have no plan that fits), then the torch
   backend; llama.cpp, then torch, on a CPU host.
2. With no ``--quant``, concrete quants are tried best first (``AUTO_GPU``/``AUTO_CPU``):
   the checkpoint's 16-bit dtype, FP8, Q8_0, int8, Q5_K_M, AWQ, GPTQ, Q4_K_M, NF4 on GPUs;
   Q4_K_M, Q5_K_M, Q8_0 (fast on CPUs) before 32/16-bit on a CPU host; a bundled model's own
   weights first.
3. A candidate is taken when the engine can run it here (GPU, compute capability, installed
   programs), its plan builds, and it fits with a useful context (``USEFUL_CONTEXT`` tokens,
   or the trained context when shorter); failing that, the first one that fits at all; failing
   that, the first the engine can run, reported as not fitting.
4. The fit sizes the artifact that will be downloaded: real tensor bytes when the model was read
   from the Hub or a GGUF header, the listed file size for a catalog GGUF file, else bytes
   computed per tensor for that format.

The parts live in sibling modules, all exported here: the types (``plan.deploy_types``), the
request's checks (``plan.deploy_request``) and the candidates and why one cannot run
(``plan.deploy_candidates``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmops.errors import DoesNotFitError, LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.deploy_candidates import (
    AUTO_CPU,
    AUTO_GPU,
    CPU_ENGINE_ORDER,
    GPU_ENGINE_ORDER,
    GPU_PASSES,
    candidates,
    cannot_run,
    cannot_run_error,
)
from llmops.plan.deploy_request import (
    ROPE_KINDS,
    RUNTIMES,
    check_gpus,
    default_runtime,
    parse_gpus,
    validate,
)
from llmops.plan.deploy_types import Decision, HostCaps, Request, ResolvedModel, gib
from llmops.plan.engines import RECORDS
from llmops.plan.engines.base import LaunchOptions, LaunchPlan, ModelArtifact, RopeScaling
from llmops.plan.hardware import Device, devices_from_facts
from llmops.plan.launch import default_name, plan_launch
from llmops.plan.memory import FitOptions, FitReport, estimate
from llmops.plan.model import ModelSpec, WeightInventory
from llmops.plan.quant import weight_inventory

DEFAULT_CONTEXT_CAP = 32768  # no --context: the trained context, at most this
USEFUL_CONTEXT = 4096  # an automatic choice must leave at least this (or the trained length)
MIN_CONTEXT = 1024  # below this a plan is not offered without --context


def _inventory(
    model: ResolvedModel, art: ModelArtifact, fit_quant: str, repo_override: bool
) -> WeightInventory | None:
    """Real bytes of the artifact when known; a listed GGUF file size scales the computed mix."""
    real = None if repo_override else model.inventory_for(art.quant)
    if real is not None:
        return real
    if art.format == "gguf" and art.size_bytes:
        # a bundled/local "gguf" of unknown mix: Q4_K_M's per-tensor shape, scaled to the file
        comp = weight_inventory(model.spec.arch, "q4_k_m" if fit_quant == "gguf" else fit_quant)
        k = art.size_bytes / max(comp.total_bytes, 1)
        return replace(
            comp,
            embed_bytes=int(comp.embed_bytes * k),
            lm_head_bytes=int(comp.lm_head_bytes * k),
            layer_bytes=tuple(int(b * k) for b in comp.layer_bytes),
            other_bytes=int(comp.other_bytes * k),
            source=f"gguf-size:{art.file}",
        )
    return None


def _fit_quant(art: ModelArtifact) -> str:
    return art.quant if art.quant != "auto" else "fp32"


def _useful(spec: ModelSpec) -> int:
    return min(spec.arch.trained_context, USEFUL_CONTEXT)


@dataclass(frozen=True)
class _Tried:
    engine: str
    artifact: ModelArtifact
    report: FitReport
    context: int
    plan: LaunchPlan | None
    gpus: tuple[int, ...]
    rope: RopeScaling | None
    runtime: str


def _fit(
    req: Request,
    model: ResolvedModel,
    engine: str,
    concrete: str,
    devs: tuple[Device, ...],
    host: Device | None,
) -> tuple[ModelArtifact, FitReport, int]:
    spec = model.spec
    art = artifacts.artifact_for(spec, concrete, engine)
    if req.repo:
        art = replace(art, repo=req.repo, gated=False)
    fq = _fit_quant(art)
    inv = _inventory(model, art, fq, bool(req.repo))
    if not devs and host is None:
        raise UsageError(
            "the hardware has no GPU and its RAM is unknown, so nothing can be sized",
            "say how much RAM: `--hw cpu:64GB`",
        )
    ctx = req.context or min(spec.arch.trained_context, DEFAULT_CONTEXT_CAP)
    opts = FitOptions(
        quant=fq,
        engine=engine,
        context=ctx,
        concurrency=req.concurrency,
        kv_dtype=req.kv_dtype,
        gpus=req.gpu_count or (len(req.gpus) if req.gpus else None),
        gpu_memory_utilization=req.gpu_memory_utilization,
        rope_kind=req.rope_kind or "dynamic",
    )
    report = estimate(spec, devs, host, opts, inv)
    if req.context is None and not report.fits and report.max_context >= MIN_CONTEXT:
        ctx = report.max_context - report.max_context % 256 or report.max_context
        report = estimate(spec, devs, host, replace(opts, context=ctx), inv)
    return art, report, ctx


def _rope(req: Request, report: FitReport, art: ModelArtifact) -> RopeScaling | None:
    """The fit's rope scaling, with ``--rope-factor``/``--rope-scaling`` applied."""
    rope = report.rope
    if rope is not None and rope.original_context is None:
        rope = replace(rope, original_context=art.trained_context)
    if req.rope_factor is None and req.rope_kind is None:
        return rope
    factor = req.rope_factor
    if factor is None:
        if rope is None:
            raise UsageError(
                f"--rope-scaling needs a context beyond {art.trained_context} or a --rope-factor",
                "e.g. `--rope-scaling dynamic --rope-factor 2`",
            )
        factor = rope.factor
    return RopeScaling(
        kind=req.rope_kind or (rope.kind if rope else "dynamic"),
        factor=float(factor),
        original_context=art.trained_context,
    )


def _port(req: Request, engine: str, caps: HostCaps) -> int:
    if req.port is not None:
        if req.port in caps.taken_ports:
            raise UsageError(
                f"port {req.port} is used by another llmops deployment",
                "`llmops ps` shows the ports in use; omit `--port` to pick a free one",
            )
        return req.port
    p = RECORDS[engine].default_host_port
    while p in caps.taken_ports:
        p += 1
    return p


def _try(
    req: Request,
    model: ResolvedModel,
    facts: HostFacts,
    caps: HostCaps,
    engine: str,
    concrete: str,
    devs: tuple[Device, ...],
    host: Device | None,
    runtime: str,
) -> _Tried:
    art, report, ctx = _fit(req, model, engine, concrete, devs, host)
    rope = _rope(req, report, art)
    if req.gpus is not None:
        gpus = req.gpus
    else:
        gpus = tuple(sorted(d.index for d in report.per_gpu if d.index is not None))
    plan = None
    if report.fits or req.force:
        if RECORDS[engine].needs_gpu and not gpus:
            raise UsageError(f"{engine} needs at least one GPU", "pass `--gpus 0` (or more)")
        lo = LaunchOptions(
            engine=engine,
            runtime=runtime,
            name=req.name or default_name(art.model, engine),
            context=ctx,
            gpus=gpus,
            host_port=_port(req, engine, caps),
            api_key=req.api_key,
            hf_token=caps.hf_token or art.gated,
            concurrency=req.concurrency,
            extra_args=req.extra_args,
            rope=rope,
            hf_cache_dir=caps.hf_cache_dir,
            data_dir=caps.data_dir,
            image=req.image,
            python=caps.python,
            kv_dtype=req.kv_dtype,
        )
        plan = plan_launch(art, lo, facts)
    return _Tried(engine, art, report, ctx, plan, gpus, rope, runtime)


def _devices(req: Request, facts: HostFacts) -> tuple[tuple[Device, ...], Device | None]:
    """The GPUs the request may use (``--gpus``, checked against the host) and host RAM."""
    all_gpus, host = devices_from_facts(facts)
    if req.gpus is None:
        return all_gpus, host
    check_gpus(req.gpus, facts)
    return tuple(d for d in all_gpus if d.index in req.gpus), host


def _runtime_for(req: Request, engine: str, caps: HostCaps, runtime: str) -> str:
    if req.runtime is None and engine == "torch" and caps.backend and not caps.planning:
        return "native"  # the backend is right here; no image to build
    return runtime


def decide(
    req: Request, model: ResolvedModel, facts: HostFacts, caps: HostCaps | None = None
) -> Decision:
    """Decide what to launch for ``req`` on the host ``facts`` describes.

    Raises:
        UsageError: bad options, or nothing this host can run for the model (exit 2).
        LlmopsError: an engine that cannot run here when it was asked for by name (exit 1).
    """
    caps = caps or HostCaps()
    validate(req)
    spec = model.spec
    devs, host = _devices(req, facts)
    on_gpu = bool(devs)
    runtime = req.runtime or default_runtime(facts)
    useful = req.context or _useful(spec)
    if req.engine is not None or not on_gpu:
        passes: tuple[tuple[str, ...] | None, ...] = (None,)
    else:
        passes = GPU_PASSES
    tried: list[_Tried] = []
    passed: list[str] = []
    first_error: LlmopsError | None = None
    for among in passes:
        try:
            cands, exact = candidates(req, spec, on_gpu, among)
        except UsageError as e:
            if among is None or (among == passes[-1] and not tried and first_error is None):
                raise
            first_error = first_error or e
            continue
        for engine, concrete in cands:
            rt = _runtime_for(req, engine, caps, runtime)
            why = cannot_run(engine, concrete, on_gpu, rt, caps)
            what = f"{artifacts.label(concrete, engine, '')} on {engine}"
            if why:
                passed.append(f"{what}: {why}")
                if first_error is None:
                    first_error = cannot_run_error(engine, concrete, why, req, spec, facts)
                continue
            try:
                t = _try(req, model, facts, caps, engine, concrete, devs, host, rt)
            except LlmopsError as e:
                if exact and len(cands) == 1:
                    raise
                passed.append(f"{what}: {e.message}")
                first_error = first_error or e
                continue
            tried.append(t)
            if (
                t.report.fits
                and t.plan is not None
                and t.context >= min(useful, t.report.trained_context)
            ):
                return _decision(req, t, passed, spec)
            if t.report.fits:
                passed.append(f"{what}: fits only {t.context} tokens")
            else:
                passed.append(f"{what}: does not fit ({gib(t.report.total_bytes)} needed)")
        fitting = [t for t in tried if t.report.fits and t.plan is not None]
        if fitting:
            return _decision(req, fitting[0], passed, spec)
    if tried:
        return _decision(req, tried[0], passed, spec)
    assert first_error is not None
    raise first_error


def _decision(req: Request, t: _Tried, passed: list[str], spec: ModelSpec) -> Decision:
    warnings = list(t.report.warnings)
    if spec.gated and not t.artifact.gated:
        warnings = [w for w in warnings if "is gated on Hugging Face" not in w]
    if t.plan is not None:
        warnings += [n for n in t.plan.notes if n not in warnings]
    if not t.report.fits and req.force and t.plan is not None:
        warnings.append(f"--force: starting although the fit says no ({_line(t)})")
    return Decision(
        request=req,
        engine=t.engine,
        runtime=t.runtime,
        artifact=t.artifact,
        report=t.report,
        context=t.context,
        gpus=t.gpus,
        plan=t.plan,
        warnings=tuple(warnings),
        passed_over=tuple(passed),
    )


def _line(t: _Tried) -> str:
    r = t.report
    return f"{gib(r.total_bytes)} needed, max context {r.max_context}"


def require_fit(d: Decision) -> LaunchPlan:
    """The plan, or DoesNotFitError (exit 3) saying why and what would fit."""
    if d.plan is not None:
        return d.plan
    name = d.artifact.model
    raise DoesNotFitError(
        f"{name} as {d.artifact.label} on {d.engine} does not fit this hardware: {d.line}\n"
        f"{d.breakdown}".rstrip(),
        f"try `llmops fit {name}` for what fits, a smaller `--quant`/`--context`, or `--force`",
    )


__all__ = [
    "AUTO_CPU",
    "AUTO_GPU",
    "CPU_ENGINE_ORDER",
    "DEFAULT_CONTEXT_CAP",
    "GPU_ENGINE_ORDER",
    "GPU_PASSES",
    "MIN_CONTEXT",
    "ROPE_KINDS",
    "RUNTIMES",
    "USEFUL_CONTEXT",
    "Decision",
    "HostCaps",
    "Request",
    "ResolvedModel",
    "candidates",
    "check_gpus",
    "decide",
    "default_runtime",
    "parse_gpus",
    "require_fit",
]
