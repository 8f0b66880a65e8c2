"""The candidates a decision tries, in order, and why one cannot run where the plan runs.

The candidates are (engine, concrete quant) pairs: a quant *word* becomes each engine's
concrete artifact (``llmops.plan.artifacts``); with no ``--quant``, concrete quants are tried
best first (``AUTO_GPU``/``AUTO_CPU``); engines in the host's order (``GPU_ENGINE_ORDER``,
``GPU_PASSES``, ``CPU_ENGINE_ORDER``). See ``llmops.plan.deploy`` for how one is taken.
"""

from __future__ import annotations

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.deploy_types import HostCaps, Request
from llmops.plan.engines import RECORDS
from llmops.plan.model import ModelSpec
from llmops.plan.quant import QUANT_SPECS

GPU_ENGINE_ORDER = ("vllm", "sglang", "llamacpp", "tgi", "torch")
# With no --engine on GPUs: vLLM, SGLang and llama.cpp first (for each quant in turn, in that
# order); TGI (maintenance mode since December 2025) only when none of them has a plan that
# fits here (e.g. their images need a newer driver); the bundled torch backend last.
GPU_PASSES: tuple[tuple[str, ...], ...] = (("vllm", "sglang", "llamacpp"), ("tgi",), ("torch",))
CPU_ENGINE_ORDER = ("llamacpp", "torch")
AUTO_GPU = ("16bit", "fp8", "q8_0", "8bit", "q5_k_m", "awq", "gptq", "q4_k_m", "4bit")
AUTO_CPU = ("q4_k_m", "q5_k_m", "q8_0", "fp32", "bf16")


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


def cannot_run(
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


def cannot_run_error(
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
