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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llmops.errors import DoesNotFitError, LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.engines import ENGINES, RECORDS
from llmops.plan.engines.base import LaunchOptions, LaunchPlan, ModelArtifact, RopeScaling
from llmops.plan.gpus import launch_gpus
from llmops.plan.hardware import GIB, Device, devices_from_facts
from llmops.plan.launch import default_name, plan_launch
from llmops.plan.memory import FitOptions, FitReport, estimate
from llmops.plan.model import ModelSpec, WeightInventory
from llmops.plan.names import check_name
from llmops.plan.quant import QUANT_SPECS, weight_inventory

DEFAULT_CONTEXT_CAP = 32768  # no --context: the trained context, at most this
USEFUL_CONTEXT = 4096  # an automatic choice must leave at least this (or the trained length)
MIN_CONTEXT = 1024  # below this a plan is not offered without --context
RUNTIMES = ("docker", "native")
ROPE_KINDS = ("linear", "dynamic", "yarn")

GPU_ENGINE_ORDER = ("vllm", "sglang", "llamacpp", "tgi", "torch")
# With no --engine on GPUs: vLLM, SGLang and llama.cpp first (for each quant in turn, in that
# order); TGI (maintenance mode since December 2025) only when none of them has a plan that
# fits here (e.g. their images need a newer driver); the bundled torch backend last.
GPU_PASSES: tuple[tuple[str, ...], ...] = (("vllm", "sglang", "llamacpp"), ("tgi",), ("torch",))
CPU_ENGINE_ORDER = ("llamacpp", "torch")
AUTO_GPU = ("16bit", "fp8", "q8_0", "8bit", "q5_k_m", "awq", "gptq", "q4_k_m", "4bit")
AUTO_CPU = ("q4_k_m", "q5_k_m", "q8_0", "fp32", "bf16")


@dataclass(frozen=True)
class Request:
    """What the user asked for (the options of `fit`, `render`, `up`), typed."""

    model: str
    engine: str | None = None
    quant: str | None = None
    context: int | None = None
    concurrency: int = 1
    kv_dtype: str = "auto"
    gpus: tuple[int, ...] | None = None  # GPU indices (--gpus); None: as many as the fit needs
    gpu_count: int | None = None  # use exactly this many GPUs (fit --gpus-count)
    gpu_memory_utilization: float = 0.90
    runtime: str | None = None
    name: str | None = None
    port: int | None = None
    image: str | None = None
    repo: str | None = None  # serve this repo with the model's architecture
    rope_factor: float | None = None
    rope_kind: str | None = None
    api_key: bool = True
    force: bool = False
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedModel:
    """A model as the catalog resolved it, with real weight bytes when they were read."""

    spec: ModelSpec
    native_quant: str | None = None  # the quant whose bytes ``inventory`` gives
    inventory: WeightInventory | None = None
    origin: str = "catalog"  # catalog | hub | hub-cache | gguf

    def inventory_for(self, quant: str) -> WeightInventory | None:
        """Real bytes when ``quant`` is the format they were read from, else None (computed)."""
        if self.inventory is not None and quant == self.native_quant:
            return self.inventory
        return None


@dataclass(frozen=True)
class HostCaps:
    """What can run where the plan will run. ``planning``: describing a host (render, fit,
    ``--hw``): engine images are assumed available and nothing local is checked."""

    planning: bool = True
    llama_server: bool = False  # `llama-server` on PATH (native llama.cpp)
    backend: bool = False  # torch + transformers importable (native torch backend)
    bitsandbytes: bool = False  # importable (native torch 4bit/8bit)
    hf_token: bool = False
    hf_cache_dir: str = "~/.cache/huggingface"
    data_dir: str = "~/.local/state/llmops"
    python: str = "python3"
    taken_ports: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decision:
    """The answer for one request: what to launch, and the fit behind it."""

    request: Request
    engine: str
    runtime: str
    artifact: ModelArtifact
    report: FitReport
    context: int
    gpus: tuple[int, ...]
    plan: LaunchPlan | None  # None when it does not fit (without --force)
    warnings: tuple[str, ...] = ()
    passed_over: tuple[str, ...] = ()  # better candidates not taken, with why

    @property
    def fits(self) -> bool:
        return self.report.fits

    @property
    def weights_bytes(self) -> int:
        return self.artifact.size_bytes or self.report.weights_total_bytes

    @property
    def line(self) -> str:
        r = self.report
        where = f"{r.gpus_used} GPU(s)" if r.gpus_used else "CPU/RAM"
        verdict = "fits" if r.fits else "does NOT fit"
        return (
            f"{r.model} {self.artifact.label} on {self.engine}, context {r.context} "
            f"x{r.concurrency}: {verdict} on {where} ({_gib(r.total_bytes)} needed; "
            f"max context {r.max_context})"
        )

    @property
    def breakdown(self) -> str:
        r = self.report
        rows = [
            f"  {'device':<14}{'weights':>11}{'KV cache':>11}{'overhead':>11}{'total':>11}"
            f"{'usable':>11}"
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

    def summary(self) -> dict[str, Any]:
        """The JSON form every command shows for the choice and its fit."""
        r = self.report
        a = self.artifact
        return {
            "fits": r.fits,
            "engine": self.engine,
            "runtime": self.runtime,
            "quant": a.quant,
            "artifact": {
                "format": a.label,
                "repo": a.repo,
                "file": a.file,
                "gated": a.gated,
                "size_bytes": a.size_bytes,
            },
            "context": r.context,
            "max_context": r.max_context,
            "tensor_parallel": r.tensor_parallel,
            "gpus": list(self.gpus),
            "gpus_used": r.gpus_used,
            "weights_source": r.weights_source,
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
            "passed_over": list(self.passed_over),
        }


def _gib(b: int) -> str:
    return f"{b / GIB:.1f} GiB"


# ------------------------------------------------------------------------------ parsing


def parse_gpus(text: str | None, facts: HostFacts) -> tuple[int, ...] | None:
    """``--gpus 0,1`` → (0, 1): the flag read by ``plan.gpus.launch_gpus``, then each index
    checked against the host (it exists and is usable)."""
    wanted = launch_gpus(text)
    if wanted:
        check_gpus(wanted, facts)
    return wanted


def check_gpus(wanted: tuple[int, ...], facts: HostFacts) -> None:
    have = {g.index: g for g in (facts.nvidia.gpus if facts.nvidia else ())}
    for i in wanted:
        if i not in have:
            present = ", ".join(str(k) for k in sorted(have)) or "none"
            raise UsageError(
                f"GPU index {i} does not exist on this host (indices present: {present})",
                "`llmops doctor --check gpu` lists the indices",
            )
        if not have[i].ok:
            raise UsageError(
                f"GPU index {i} is not usable: {have[i].error}",
                "choose other indices with `--gpus`",
            )


def default_runtime(facts: HostFacts) -> str:
    d = facts.docker
    return "docker" if d is not None and d.reachable else "native"


def _validate(req: Request) -> None:
    if req.name is not None:
        check_name(req.name)  # a Docker container name and a state directory (plan/names.py)
    if req.engine is not None and req.engine not in ENGINES:
        raise UsageError(f"unknown engine {req.engine!r}", "choose one of: " + ", ".join(ENGINES))
    if req.runtime is not None and req.runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {req.runtime!r}", "choose docker or native")
    if req.context is not None and req.context <= 0:
        raise UsageError(
            f"--context must be a positive number of tokens, got {req.context}",
            "e.g. `--context 8192`",
        )
    if req.concurrency < 1:
        raise UsageError(
            f"--concurrency must be at least 1, got {req.concurrency}", "e.g. `--concurrency 4`"
        )
    if not 0.05 <= req.gpu_memory_utilization <= 1.0:
        raise UsageError("--gpu-memory-utilization must be between 0.05 and 1.0", "e.g. 0.9")
    if req.rope_kind is not None and req.rope_kind not in ROPE_KINDS:
        raise UsageError(
            f"unknown rope scaling {req.rope_kind!r}", "choose linear, dynamic or yarn"
        )
    if req.rope_factor is not None and not 1.0 < req.rope_factor <= 16:
        raise UsageError(
            f"--rope-factor must be in (1, 16], got {req.rope_factor:g}", "e.g. `--rope-factor 2`"
        )
    if req.quant is not None and not (
        req.quant.lower() in QUANT_SPECS or req.quant.lower() in artifacts.WORDS
    ):
        raise UsageError(
            f"unknown quantization {req.quant!r}",
            "choose one of: 4bit, 8bit, fp16, bf16, fp32, awq, gptq, fp8, q4_k_m, q5_k_m, q8_0",
        )


# ------------------------------------------------------------------------------ candidates


def _auto_order(spec: ModelSpec, on_gpu: bool) -> tuple[str, ...]:
    if not on_gpu:
        return AUTO_CPU
    own = spec.formats.dtype if spec.formats.dtype in ("fp16", "bf16") else "bf16"
    other = "fp16" if own == "bf16" else "bf16"
    return tuple(q for a in AUTO_GPU for q in ((own, other) if a == "16bit" else (a,)))


def candidates(
    req: Request, spec: ModelSpec, on_gpu: bool, among: tuple[str, ...] | None = None
) -> tuple[list[tuple[str, str]], bool]:
    """(engine, concrete quant) pairs in the order they are tried, and whether the user named
    both engine and quant (then nothing else is tried)."""
    if req.engine:
        engines = [req.engine]
    else:
        order = GPU_ENGINE_ORDER if on_gpu else CPU_ENGINE_ORDER
        engines = [e for e in order if among is None or e in among]
    out: list[tuple[str, str]] = []
    if req.quant is not None:
        for e in engines:
            out += [(e, c) for c in artifacts.concrete_quants(spec, req.quant, e)]
        if not out:
            raise _nothing_serves(spec, req)
        return out, req.engine is not None
    if artifacts.is_bundled(spec) and not on_gpu and (req.engine in (None, "torch")):
        out.append(("torch", "fp32"))
    if req.engine == "llamacpp" and artifacts.published(spec, "gguf", "llamacpp"):
        out.append(("llamacpp", "gguf"))  # a bundled model's own GGUF file: no download
    for q in _auto_order(spec, on_gpu):
        for e in engines:
            if q in artifacts.concrete_quants(spec, q, e) and (e, q) not in out:
                out.append((e, q))
    if not out:
        raise UsageError(
            f"{spec.name} publishes nothing {req.engine or 'any engine'} can serve here",
            f"`llmops models show {spec.name}` lists its formats",
        )
    return out, False


def _nothing_serves(spec: ModelSpec, req: Request) -> UsageError:
    assert req.quant is not None
    if req.engine is not None:
        return artifacts._unavailable(spec, req.quant, req.engine)
    have = artifacts.model_quants(spec)
    return UsageError(
        f"{spec.name} has no {req.quant} artifact any engine can serve",
        f"available for {spec.name}: {', '.join(have)}"
        if have
        else f"`llmops models show {spec.name}` lists its formats",
    )


def _cannot_run(
    engine: str, concrete: str, on_gpu: bool, runtime: str, caps: HostCaps
) -> str | None:
    """Why ``engine`` cannot serve ``concrete`` where the plan runs (None: it can)."""
    rec = RECORDS[engine]
    if rec.needs_gpu and not on_gpu:
        return f"{rec.title} needs an NVIDIA GPU"
    if not on_gpu and not QUANT_SPECS[concrete].cpu:
        return f"{artifacts.LABELS.get(concrete, concrete)} needs a GPU"
    if engine == "torch" and concrete in ("4bit", "8bit") and not on_gpu:
        return "bitsandbytes quantization needs a CUDA GPU"
    if caps.planning or runtime != "native":
        return None
    if engine == "llamacpp" and not caps.llama_server:
        return f"`llama-server` is not on PATH (install: {rec.install_hint})"
    if engine == "torch" and not caps.backend:
        return f"the torch backend is not installed ({rec.install_hint})"
    if engine == "torch" and concrete in ("4bit", "8bit") and not caps.bitsandbytes:
        return "bitsandbytes is not installed (`pip install bitsandbytes`, CUDA hosts)"
    return None


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


def decide(
    req: Request, model: ResolvedModel, facts: HostFacts, caps: HostCaps | None = None
) -> Decision:
    """Decide what to launch for ``req`` on the host ``facts`` describes.

    Raises:
        UsageError: bad options, or nothing this host can run for the model (exit 2).
        LlmopsError: an engine that cannot run here when it was asked for by name (exit 1).
    """
    caps = caps or HostCaps()
    _validate(req)
    spec = model.spec
    all_gpus, host = devices_from_facts(facts)
    if req.gpus is not None:
        check_gpus(req.gpus, facts)
        devs = tuple(d for d in all_gpus if d.index in req.gpus)
    else:
        devs = all_gpus
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
            rt = runtime
            if req.runtime is None and engine == "torch" and caps.backend and not caps.planning:
                rt = "native"  # the backend is right here; no image to build
            why = _cannot_run(engine, concrete, on_gpu, rt, caps)
            what = f"{artifacts.label(concrete, engine, '')} on {engine}"
            if why:
                passed.append(f"{what}: {why}")
                if first_error is None:
                    first_error = _cannot_run_error(engine, concrete, why, req, spec, facts)
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
                passed.append(f"{what}: does not fit ({_gib(t.report.total_bytes)} needed)")
        fitting = [t for t in tried if t.report.fits and t.plan is not None]
        if fitting:
            return _decision(req, fitting[0], passed, spec)
    if tried:
        return _decision(req, tried[0], passed, spec)
    assert first_error is not None
    raise first_error


def _cannot_run_error(
    engine: str, concrete: str, why: str, req: Request, spec: ModelSpec, facts: HostFacts
) -> LlmopsError:
    rec = RECORDS[engine]
    if rec.needs_gpu:
        where = "the hardware given" if (facts.source or "").startswith("hw") else "this host"
        return LlmopsError(
            f"{engine} needs an NVIDIA GPU and {where} has none",
            "use `--engine llamacpp` (GGUF) or `--engine torch` here; to plan for a GPU host: "
            f"`llmops render {spec.name} --engine {engine} --hw 1x24GB`",
        )
    return LlmopsError(
        f"{spec.name} {artifacts.label(concrete, engine, '')} on {engine} cannot run here: {why}",
        "choose another `--engine`/`--quant`, or plan for another host with `--hw`",
    )


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
    return f"{_gib(r.total_bytes)} needed, max context {r.max_context}"


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
