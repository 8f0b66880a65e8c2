"""Hugging Face TGI (text-generation-inference), pinned at its last release, 3.3.7 (tag v3.3.7,
commit dfb3fbe7, 2025-12-18). In maintenance mode since December 2025 (its README points to vLLM,
SGLang and llama.cpp): still launched, never the default.

Flags: ``tests/fixtures/engines/tgi.json`` (clap ``struct Args`` of ``launcher/src/main.rs`` at
tag v3.3.7). The facts below were read at v3.3.5 and hold at v3.3.7: ``git diff v3.3.5 v3.3.7``
changes no launcher option, neither Dockerfile nor any server file cited here (only
layers/attention/flashinfer.py, the launcher's GPU counting and the router's image fetch).
"""

from __future__ import annotations

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.engines.base import (
    MIB,
    EngineArgs,
    EngineRecord,
    HealthProbe,
    LaunchOptions,
    ModelArtifact,
    Mount,
    SecretEnv,
    dtype_flag,
    hf_token_env,
    min_compute_capability,
)
from llmops.plan.engines.rules import (
    BRANCHES_12_4,
    CudaImage,
    driver_too_old,
    effective_rope,
    kv_follows_dtype,
    pick_cuda_image,
    serving_dtype,
    unknown_kv,
)

VERSION = "3.3.7"
# The last release: the mirror's newest tag is v3.3.7 and its README, since December 2025, says
# the project is in maintenance mode and points users to vLLM, SGLang and llama.cpp.
CHECKED = "2026-12-01"
STATUS = (
    "TGI is in maintenance mode since December 2025 (its README recommends vLLM, SGLang or "
    "llama.cpp); 3.3.7 is its last release: llmops still launches it, never by default"
)
IMAGE = f"ghcr.io/huggingface/text-generation-inference:{VERSION}"
# The image's CUDA: Dockerfile @ v3.3.5, final stage `FROM nvidia/cuda:12.4.0-base-ubuntu22.04
# AS base` (its torch 2.7.0+cu128, server/uv.lock, runs on any CUDA 12 driver by minor
# version compatibility; the base's cuda>=12.4 requirement is what the runtime checks).
CUDA_IMAGES = (
    CudaImage(
        IMAGE,
        (12, 4),
        "Dockerfile @ v3.3.7: FROM nvidia/cuda:12.4.0-base-ubuntu22.04 AS base",
        admits=BRANCHES_12_4,
        consumer=True,
    ),
)
CONTAINER_PORT = 80
DEFAULT_HOST_PORT = 8080


# FP8 in TGI 3.3.5 (server/text_generation_server/layers/fp8.py `get_fp8_linear`): on
# capability 8.x the weight-only FP8 Marlin kernel, which needs 8.0 (layers/marlin/util.py
# `_check_marlin_kernels`: "requires a GPU with CUDA capability 8.0 or later"); on 9.x torch's
# native FP8 GEMM; below 8.0 there is neither.
FP8_MIN_CAPABILITY = 8.0

# KV cache dtype in TGI 3.3.5: --kv-cache-dtype takes fp8_e4m3fn|fp8_e5m2 only
# (launcher/src/main.rs `enum KVCacheDtype`); without it the cache is kept in the model dtype
# (models/__init__.py get_model: `kv_cache_dtype = dtype`), which is float16 for awq/gptq
# when --dtype is absent. So an fp16/bf16 cache is asked for with --dtype.
KV_CACHE_FP8 = "fp8_e4m3fn"

# Prefill in TGI 3.3.5. Without --max-batch-prefill-tokens the launcher sets the prefill
# budget itself (launcher/src/main.rs `main`): compute_optimal (the card's f16 FLOPs over the
# model's FLOPs per token, for the cards in its `Gpu` table: T4, L4, L40(S), A10G, A40, A100,
# H100, H200, RTX 4090), else 4096 (10000/8000 for qwen2-vl/gemma3), capped by
# max_position_embeddings and by its own VRAM estimate. The router refuses a budget below
# --max-input-tokens only when the shards cannot chunk a prefill (backends/v3/src/main.rs:
# "`max_batch_prefill_tokens` must be >= `max_input_tokens`" under `!support_chunking`).
# Chunking is on by default (models/globals.py PREFILL_CHUNKING=1) for flash models with
# flashinfer or flashdecoding attention (models/model.py `Model.__init__`); the launcher
# picks those from compute capability 8.0 and `paged` (no chunking) below it
# (launcher/src/main.rs `resolve_attention`). So from 8.0 TGI's own budget is right and a
# prompt longer than it is prefilled in chunks of it; below 8.0 the budget must cover the
# longest input.
DEFAULT_PREFILL_TOKENS = 4096
CHUNKING_MIN_CAPABILITY = 8.0


def prefill_flag(input_tokens: int, cap: float | None) -> int | None:
    """The --max-batch-prefill-tokens to render (None: TGI's own default)."""
    if cap is not None and cap >= CHUNKING_MIN_CAPABILITY:
        return None  # chunked prefill: TGI's default budget
    if cap is not None:
        return input_tokens  # paged attention, no chunking: the whole input in one prefill
    # capability unknown (--hw without a card): valid with or without chunking
    return input_tokens if input_tokens > DEFAULT_PREFILL_TOKENS else None


# Formats whose repo carries its own `quantization_config`: with no `--quantize`, TGI 3.3.5
# reads it (server/text_generation_server/models/__init__.py `get_model`: quant_method gptq,
# awq, exl2 as such, fp8/fbgemm_fp8 as fp8, compressed-tensors as compressed-tensors, also
# from `compression_config`; the launcher reads the same field, launcher/src/main.rs
# `Config::from(RawConfig)`). A flag would override the repo's own method (a
# compressed-tensors FP8 repo is not TGI's `fp8` format), so none is rendered for these.
PRE_QUANTIZED = ("awq", "gptq", "fp8", "compressed-tensors")


def quantize_flag(a: ModelArtifact) -> str | None:
    """`--quantize` for a safetensors repo quantized at load (`None` otherwise).

    Values from launcher/src/main.rs `enum Quantization` @ v3.3.5: `bitsandbytes-nf4`,
    `eetq` (8-bit; its help calls plain `bitsandbytes` deprecated in favour of it), `fp8`.
    """
    if a.format in PRE_QUANTIZED or a.format != "safetensors":
        return None
    return {"4bit": "bitsandbytes-nf4", "8bit": "eetq", "fp8": "fp8"}.get(a.quant)


def build(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> EngineArgs:
    _refuse_gguf_or_driver(a, o, facts)
    n = max(1, len(o.gpus))
    port = CONTAINER_PORT
    notes: list[str] = []
    cap = min_compute_capability(facts, o.gpus)
    common = [
        *_context_argv(a, o, n, cap),
        *_precision_argv(a, o, cap, notes),
        *_rope_argv(a, o),
        *(["--trust-remote-code"] if a.trust_remote_code else []),
    ]
    secrets = _secrets(a, o, notes)
    notes.append(STATUS)
    if n > 1:
        notes.append(f"TGI shards across {n} GPUs (--num-shard {n} = the GPUs passed)")
    # --hostname must be explicit: Docker sets HOSTNAME to the container id (engines.md §2.1).
    argv = [*common, "--hostname", "0.0.0.0", "--port", str(port)]
    native = ["text-generation-launcher", *common, "--hostname", "0.0.0.0", "--port", "{port}"]
    return EngineArgs(
        image=IMAGE,
        entrypoint=None,
        argv=argv,
        native_argv=native,
        secret_env=secrets,
        mounts=[Mount(o.hf_cache_dir, "/data")],  # HF_HOME=/data: weights in /data/hub
        shm_size_mib=1024 if n == 1 else 2048 * n,
        health=HealthProbe(path="/health", ready_path="/v1/models", needs_auth_for_ready=False),
        notes=notes,
    )


def _refuse_gguf_or_driver(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> None:
    """GGUF is not TGI's; nor is a host whose driver is older than every TGI image's CUDA."""
    if a.format == "gguf":
        raise UsageError(
            f"TGI cannot serve the GGUF quantization {a.quant} of {a.model}",
            "use `--engine llamacpp` for GGUF, or a TGI quant such as `--quant 4bit` (GPTQ/AWQ)",
        )
    if o.runtime == "docker" and not o.image:
        img, drv = pick_cuda_image(CUDA_IMAGES, facts, o.gpus)
        if drv is not None and img is None:
            raise driver_too_old(
                "TGI",
                VERSION,
                CUDA_IMAGES,
                drv,
                facts,
                "`--engine llamacpp` with its CPU image (no `--gpus`)",
            )


def _context_argv(a: ModelArtifact, o: LaunchOptions, n: int, cap: float | None) -> list[str]:
    """The model, its shards, the token limits and (where TGI's own is wrong) the prefill."""
    input_tokens = o.context - 1
    argv = [
        "--model-id",
        a.repo,
        "--num-shard",
        str(n),
        "--max-input-tokens",
        str(input_tokens),
        "--max-total-tokens",
        str(o.context),
    ]
    prefill = prefill_flag(input_tokens, cap)
    if prefill is not None:
        argv += ["--max-batch-prefill-tokens", str(prefill)]
    return argv


def _precision_argv(
    a: ModelArtifact, o: LaunchOptions, cap: float | None, notes: list[str]
) -> list[str]:
    """--quantize, --kv-cache-dtype and --dtype; refuses FP8 below its capability."""
    if (a.quant == "fp8" or a.format == "fp8") and cap is not None and cap < FP8_MIN_CAPABILITY:
        raise UsageError(
            f"TGI's FP8 needs GPU compute capability {FP8_MIN_CAPABILITY} or newer (FP8 Marlin "
            f"on 8.x, native FP8 from 8.9); the selected GPU has {cap:.1f}",
            "use `--quant awq` or `--quant gptq` with TGI, or `--engine vllm` (its FP8 Marlin "
            "kernel runs from 7.5)",
        )
    argv: list[str] = []
    quantize = quantize_flag(a)
    if quantize:
        argv += ["--quantize", quantize]
    # With no --dtype, TGI picks float16 only for awq/exl2/gptq/marlin and lets every
    # other model take its own default, bf16 for most (models/__init__.py get_model).
    dtype, why = serving_dtype(a, cap, notes)
    kv = o.kv_dtype.lower()
    if kv == "fp8":
        argv += ["--kv-cache-dtype", KV_CACHE_FP8]
    elif kv in ("fp16", "bf16"):
        if dtype is None and a.format in ("awq", "gptq"):
            dtype, why = "fp16", f"TGI runs {a.format} in float16"
        dtype = kv_follows_dtype("TGI", kv, dtype, why)
    elif kv != "auto":
        raise unknown_kv("TGI", kv, ("fp16", "bf16", "fp8"))
    return argv + dtype_flag(dtype)


def _rope_argv(a: ModelArtifact, o: LaunchOptions) -> list[str]:
    """--rope-scaling/--rope-factor for dynamic scaling; yarn and linear are refused."""
    rope = effective_rope(a, o, "TGI")
    if rope is None:
        return []
    if rope.kind == "yarn":
        raise UsageError(
            "TGI only accepts linear or dynamic rope scaling, not yarn",
            "use `--engine vllm` or `--engine llamacpp` for YaRN, or a context within "
            f"{a.trained_context} tokens",
        )
    if rope.kind == "linear":
        # layers/rotary.py @ v3.3.5 `PositionRotaryEmbedding.static` (what every flash
        # model builds its rotary embedding with) handles `linear` with `pass`: the factor
        # is never applied, so the model would run past its context unscaled.
        raise UsageError(
            f"TGI {VERSION} ignores linear rope scaling for its flash models (the factor is "
            "never applied)",
            "use `--rope-scaling dynamic` with TGI, or `--engine vllm` for linear scaling",
        )
    # ROPE_SCALING/ROPE_FACTOR only replace `rope_scaling`; the base frequency stays the
    # config's rope_theta (flash_llama_modeling.py: `PositionRotaryEmbedding.static(...,
    # base=config.rope_theta)`; DynamicPositionRotaryEmbedding gets that base).
    return ["--rope-scaling", rope.kind, "--rope-factor", f"{rope.factor:g}"]


def _secrets(a: ModelArtifact, o: LaunchOptions, notes: list[str]) -> list[SecretEnv]:
    """The API key (and the note that TGI shows it in `ps`) and the HF token, as env."""
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("API_KEY", "api_key"))  # the env form of --api-key
        # ... which TGI's launcher then puts on its router's command line (launcher/src/main.rs
        # l.1947-1949 at v3.3.7): say so wherever the plan is shown (render, up, doctor's ps)
        notes.append(
            "TGI passes the API key to its router on the command line, so it is visible in the "
            "host's `ps`: on a shared host publish it on 127.0.0.1 and reach it only through "
            "`llmops tunnel` or an authenticating proxy (`llmops audit NAME` checks the routes)"
        )
    return secrets + hf_token_env(a, o)


RECORD = EngineRecord(
    name="tgi",
    title="TGI",
    version=VERSION,
    flags_source="tests/fixtures/engines/tgi.json (launcher/src/main.rs @ v3.3.7)",
    container_port=CONTAINER_PORT,
    default_host_port=DEFAULT_HOST_PORT,
    needs_gpu=True,
    tensor_parallel=True,
    cuda_graphs_bytes=512 * MIB,
    cpu_runtime_bytes=0,
    # the prefill chunk TGI uses by default (DEFAULT_PREFILL_TOKENS above: its budget where
    # it has no FLOPs figure for the card; it caps larger compute-optimal budgets by VRAM)
    prefill_tokens=DEFAULT_PREFILL_TOKENS,
    reserve="wiggle",
    kv_dtypes=("fp16", "bf16", "fp8"),
    quants={
        "4bit": ("awq", "gptq", "4bit"),
        "8bit": ("fp8", "8bit"),
        "fp16": ("fp16",),
        "bf16": ("bf16",),
        "awq": ("awq",),
        "gptq": ("gptq",),
        "fp8": ("fp8",),
    },
    build=build,
    native_program="text-generation-launcher",
    install_hint="TGI runs from its image; natively it needs `text-generation-launcher` built "
    "from source (https://github.com/huggingface/text-generation-inference)",
    checked=CHECKED,
    cuda_images=CUDA_IMAGES,
    status=STATUS,
)
