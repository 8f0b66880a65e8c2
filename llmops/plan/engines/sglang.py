"""SGLang (``python -m sglang.launch_server``), pinned at 0.5.23 (PyPI's newest, checked
2026-12-01). Where TGI's own README sends its users.

Flags: ``tests/fixtures/engines/sglang.json`` (``ServerArgs.add_cli_args`` imported and walked
from the PyPI wheel sglang-0.5.23; the fields live in ``python/sglang/srt/arg_groups/fields/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.engines.base import (
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
    CudaImage,
    driver_too_old,
    effective_rope,
    kv_follows_dtype,
    pick_cuda_image,
    serving_dtype,
    unknown_kv,
)

VERSION = "0.5.23"
CHECKED = "2026-12-01"  # PyPI `pip index versions sglang`: 0.5.23 newest
IMAGE_REPO = "lmsysorg/sglang"
CONTAINER_PORT = 30000  # arg_groups/fields/serving.py: port default 30000
DEFAULT_HOST_PORT = 30000

# The image: SGLang 0.5.23 is built for CUDA 13 only (the wheel's METADATA: torch==2.14.1,
# flashinfer_python[cu13]==0.7.2, cuda-python>=13.0, nvidia-cutlass-dsl[cu13]); its release
# images are tagged v<version>-cu130: SGLang's release workflow
# (.github/workflows/_docker-build-and-publish.yml) builds every release twice, the CUDA 13
# one with `--build-arg CUDA_VERSION=13.0.1`, and tags it from the caller's tag_config, which
# its own CI test of scripts/ci/utils/docker_build_metadata_args.py pins as
# {"cuda": "cu130", "tags": ["v{version}-cu130", "latest-cu130"]} (the plain v{version} tag is
# the other CUDA build, cu129 then cu134). Seen in public deployments as v0.5.20-cu130 and
# v0.5.13-cu130-runtime. No CUDA 12 build of this release is known, so a CUDA 12 driver is
# refused with the other engines named. Checked 2026-12-02 in the stored sglang repository.
CUDA_IMAGES = (
    CudaImage(
        f"{IMAGE_REPO}:v{VERSION}-cu130",
        (13, 0),
        "sglang-0.5.23 wheel METADATA (torch==2.14.1, flashinfer_python[cu13], "
        "cuda-python>=13.0); tag form v<version>-cu130 as published for v0.5.13..v0.5.20",
    ),
)
IMAGE = CUDA_IMAGES[0].ref

# --kv-cache-dtype (arg_groups/fields/model.py @ 0.5.23): auto, fp8_e5m2, fp8_e4m3, mxfp8,
# bf16, bfloat16, nvfp4, fp4_mx_block16. There is no float16: "auto" keeps the model dtype,
# so an fp16 cache is asked for with --dtype float16.
KV_FP8 = "fp8_e4m3"

# --quantization for a repo quantized at load (arg_groups/choices.py QUANTIZATION_CHOICES
# @ 0.5.23: `fp8` "MOE + linear online quantization", `bitsandbytes`). A pre-quantized repo
# (awq, gptq, fp8/compressed-tensors) is read from its own quantization_config when the flag
# is absent (srt/configs/model_config.py `_verify_quantization`), as vLLM does.
PRE_QUANTIZED = ("awq", "gptq", "fp8", "compressed-tensors")

# SGLang's CUDA kernels (sgl-kernel/flashinfer) target compute capability 7.5 and newer
# (docs: "sm75 and above"); FP8 linear needs 8.9 natively (below it, Marlin W8A16 from 8.0).
MIN_CAPABILITY = 7.5
FP8_MIN_CAPABILITY = 8.0

# Readiness: /health answers 503 while the server is starting (entrypoints/http_server.py
# @ 0.5.23 `health_generate`: ServerStatus.Starting -> 503), then 200; /health, /ready and
# /metrics never need the key (srt/utils/auth.py `decide_request_auth`), every other route
# does once --api-key is set.
HEALTH = HealthProbe(path="/health", ready_path="/v1/models", loading_status=(503,))

# The key: SGLang reads it only from --api-key (no environment variable: srt/environ.py has
# none), so llmops passes it through this variable into a `sh -c` that expands it inside the
# container: the rendered command, compose file and manifest never hold it.
KEY_ENV = "SGLANG_API_KEY"
KEY_NOTE = (
    "SGLang takes its API key only on the command line (--api-key; no environment variable), "
    "so it is visible in the host's `ps`: on a shared host publish it on 127.0.0.1 and reach it "
    "only through `llmops tunnel` or an authenticating proxy"
)


# ---------------------------------------------------------------------------- memory
# SGLang sizes its static pool (weights + KV) itself: python/sglang/srt/arg_groups/memory_hook.py
# @ 0.5.23 `handle_gpu_memory_settings`, then the KV pool is what the weights leave of it
# (mem_cache/kv_cache_configurator.py `_profile_available_bytes`): KV = free memory after
# loading - pre_model_load_memory x (1 - mem_fraction_static), pre_model_load_memory being the
# free memory measured after CUDA/NCCL init (distributed/bootstrap.py
# `measure_pre_model_load_memory`). Activations and CUDA graphs live in that slack, allocated
# after the pool. Defaults assumed: pp 1, no DP attention/DeepEP, post-capture KV sizing off
# (environ.py SGLANG_ENABLE_POST_CAPTURE_KV_SIZING = EnvBool(False)), CUDA (breakable prefill
# graphs on: model_executor/cuda_graph_config.py `default_prefill_backend`).

# Multimodal checkpoints (configs/model_config.py `multimodal_model_archs`: Gemma3/Llama4/
# Mistral3ForConditionalGeneration) lose the prefill graph (cuda_graph_hook.py
# `disable_breakable_cudagraph_if_incompatible`, "multimodal model", none of these is in
# `multimodal_breakable_cuda_graph_supported_model_archs`), get mem_fraction_static scaled by
# `adjust_mem_fraction_for_vlm` and keep SGLANG_VLM_CACHE_SIZE_MB (environ.py, 100) out of
# the KV budget (kv_cache_configurator.py `mm_runtime_reservation_gb`, cpu transport).
VLM_CACHE_MIB = 100
# Hybrid sliding-window pool (configs/model_config.py `is_hybrid_swa_model`): only these of
# llmops' model types get one; Gemma 2/3 have it switched off
# (arg_groups/model_overrides/gemma2_gemma3.py: disable_hybrid_swa_memory), and Mistral/Qwen2
# windows are not in the list: their local layers hold the full context like the others.
# Llama 4 is listed as Llama4ForConditionalGeneration (the multimodal checkpoint).
HYBRID_SWA_MODEL_TYPES = ("gpt_oss", "llama4_text")
# ... in which every local layer holds swa_full_tokens_ratio x the full layers' tokens
# (arg_groups/fields/schedule.py `swa_full_tokens_ratio` fallback 0.8;
# model_executor/pool_configurator.py HybridSWAPoolConfigurator `_solve_pool_sizes`:
# swa_tokens = int(full_tokens x ratio)), whatever the window.
SWA_FULL_TOKENS_RATIO = 0.8


@dataclass(frozen=True)
class StaticMemory:
    """What ``handle_gpu_memory_settings`` picks for one card (MiB, as SGLang counts)."""

    chunked_prefill_size: int
    decode_graph_max_bs: int
    prefill_graph_sizes: int  # captured prefill token buckets; 0 when prefill is not captured
    reserved_mib: float  # activations + CUDA graphs + metadata, as SGLang estimates them
    mem_fraction_static: float


def capacity_defaults(gpu_mib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, decode cuda-graph max_bs) by card size (memory_hook.py l.89-170)."""
    if gpu_mib < 20 * 1024:  # T4, 4080
        return 2048, 8
    if gpu_mib < 35 * 1024:  # A10, 4090, 5090
        return 4096, 48 if tp < 4 else 160
    if gpu_mib < 60 * 1024:  # A100 40GB, L40
        return 4096, 32 if tp < 4 else 160
    if gpu_mib < 160 * 1024:  # H100, A100 80GB, H20, H200
        return 8192, 256 if tp < 4 else 512
    return 16384, 512  # B200, MI300


def prefill_capture_sizes(max_bs: int) -> list[int]:
    """cuda_graph_hook.py `generate_prefill_cuda_graph_batch_sizes` @ 0.5.23."""
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1024 + 1, 64))
        + list(range(1280, 4096 + 1, 256))
        + list(range(4608, max_bs + 1, 512))
    )
    return [s for s in sizes if s <= max_bs]


def vlm_factor(vision_layers: int, vision_hidden: int) -> float:
    """memory_hook.py `adjust_mem_fraction_for_vlm`: 0.95 x a ViT-size adjustment (a missing
    vision_config attribute reads as ViT-L/14's 24 layers of 1024)."""
    ratio = (vision_layers or 24) * (vision_hidden or 1024) ** 2 / (24 * 1024**2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))


def static_memory(
    gpu_mib: float,
    tp: int = 1,
    *,
    mla: bool = False,
    multimodal: bool = False,
    vision: tuple[int, int] = (0, 0),
) -> StaticMemory:
    """``mem_fraction_static`` as ``handle_gpu_memory_settings`` computes it (memory_hook.py
    l.281-343): reserved = 512 + max(chunked_prefill, 2048) x 1.5 + tp/8 x 1024 + the graph
    reserve (`reserve_for_graph_mb`: decode max_bs x 2, plus 8 per captured prefill size, or
    1536 with MLA), at least 10 GiB above 60 GiB; fraction = round((gpu - reserved) / gpu, 3).

    ``gpu_mib`` is ``nvidia-smi --query-gpu=memory.total`` (utils/common.py
    `get_nvgpu_memory_capacity`: the smallest visible card, MiB).
    """
    chunk, max_bs = capacity_defaults(gpu_mib, tp)
    sizes = 0
    graph = max_bs * 2.0
    if not multimodal:
        # prefill max_bs: the chunked prefill size, capped at 8192 with MLA (l.233-238)
        sizes = len(prefill_capture_sizes(min(8192, chunk) if mla else chunk))
        graph += 1.5 * 1024 if mla else sizes * 8
    reserved = 512 + max(chunk, 2048) * 1.5 + tp / 8 * 1024 + graph
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    frac = round((gpu_mib - reserved) / gpu_mib, 3)
    if multimodal:
        frac *= vlm_factor(*vision)
    return StaticMemory(chunk, max_bs, sizes, reserved, frac)


def quantization_flag(a: ModelArtifact) -> str | None:
    if a.format in PRE_QUANTIZED or a.format != "safetensors":
        return None
    return {"fp8": "fp8", "8bit": "fp8", "4bit": "bitsandbytes"}.get(a.quant)


def image_for(o: LaunchOptions, facts: HostFacts | None) -> str:
    if o.runtime != "docker" or o.image:
        return IMAGE
    img, drv = pick_cuda_image(CUDA_IMAGES, facts, o.gpus)
    if drv is not None and img is None:
        raise driver_too_old(
            "SGLang",
            VERSION,
            CUDA_IMAGES,
            drv,
            facts,
            "`--engine vllm` (its cu129 image needs CUDA 12.9) or `--engine llamacpp` (12.8)",
        )
    return IMAGE


def build(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> EngineArgs:
    cap = _refuse(a, facts, o.gpus)
    quantization = quantization_flag(a)
    if quantization == "fp8" and cap is not None and cap < FP8_MIN_CAPABILITY:
        raise UsageError(
            f"SGLang's FP8 needs compute capability {FP8_MIN_CAPABILITY} or newer; the "
            f"selected GPU has {cap:.1f}",
            "choose `--quant awq`/`gptq`, or `--engine vllm` (FP8 Marlin from 7.5)",
        )
    image = image_for(o, facts)
    n = max(1, len(o.gpus))
    common = [
        "--model-path",
        a.repo,
        "--served-model-name",
        a.model,
        "--context-length",
        str(o.context),
        "--tp-size",
        str(n),
    ]
    # No --mem-fraction-static: SGLang sizes it from the card, its chunked-prefill size and
    # its cuda-graph batch sizes (arg_groups/memory_hook.py `handle_gpu_memory_settings`);
    # a fixed fraction would starve its activations on a small card.
    if quantization:
        common += ["--quantization", quantization]
    notes: list[str] = []
    common += _dtype_argv(a, o, cap, notes)
    rope = effective_rope(a, o, "SGLang")
    if rope is not None:
        raise UsageError(
            "llmops does not render rope scaling for SGLang",
            f"use a context within {a.trained_context} tokens, or `--engine vllm` / "
            "`--engine llamacpp` for a longer one",
        )
    if a.trust_remote_code:
        common += ["--trust-remote-code"]
    key: list[str] = []
    if o.api_key:
        key = ["--api-key", f'"${KEY_ENV}"']
        notes.append(KEY_NOTE)
    secrets = [SecretEnv(KEY_ENV, "api_key")] if o.api_key else []
    server = ["python3", "-m", "sglang.launch_server", *common]
    inner = [*server, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT), *key]
    native_inner = [*server, "--host", "0.0.0.0", "--port", "{port}", *key]
    return EngineArgs(
        image=image,
        entrypoint=("/bin/sh",),  # one word: `docker run --entrypoint` takes a single program
        # `"$@"` with `sglang` as $0: arguments appended after these (--extra-args) reach it
        argv=["-c", _line(inner), "sglang"],
        native_argv=["/bin/sh", "-c", _line(native_inner), "sglang"],
        secret_env=secrets + hf_token_env(a, o),
        mounts=[Mount(o.hf_cache_dir, "/root/.cache/huggingface")],
        shm_size_mib=None,
        ipc_host=True,
        health=HEALTH,
        notes=notes,
    )


def _refuse(a: ModelArtifact, facts: HostFacts | None, gpus: tuple[int, ...]) -> float | None:
    """GGUF and GPUs below SGLang's capability are refused; returns the GPUs' capability."""
    if a.format == "gguf":
        raise UsageError(
            f"llmops does not launch GGUF ({a.quant}) on SGLang",
            "use `--engine llamacpp` for GGUF files, or `--quant awq` / `--quant fp8` on SGLang",
        )
    cap = min_compute_capability(facts, gpus)
    if cap is not None and cap < MIN_CAPABILITY:
        raise UsageError(
            f"SGLang {VERSION} needs GPU compute capability {MIN_CAPABILITY} or newer; the "
            f"selected GPU has {cap:.1f}",
            "use `--engine llamacpp` or `--engine tgi` on this GPU",
        )
    return cap


def _dtype_argv(
    a: ModelArtifact, o: LaunchOptions, cap: float | None, notes: list[str]
) -> list[str]:
    """--kv-cache-dtype and --dtype (an fp16/bf16 cache follows the model's dtype)."""
    dtype, why = serving_dtype(a, cap, notes)
    kv = o.kv_dtype.lower()
    argv: list[str] = []
    if kv == "fp8":
        argv += ["--kv-cache-dtype", KV_FP8]
    elif kv in ("fp16", "bf16"):
        dtype = kv_follows_dtype("SGLang", kv, dtype, why)
    elif kv != "auto":
        raise unknown_kv("SGLang", kv, ("fp16", "bf16", "fp8"))
    return argv + dtype_flag(dtype)


def _line(words: list[str]) -> str:
    return "exec " + " ".join(_sh(w) for w in words) + ' "$@"'


def _sh(word: str) -> str:
    """One word for the `sh -c` line: the key reference stays expandable, the rest literal."""
    if word == f'"${KEY_ENV}"':
        return word
    if word and all(c.isalnum() or c in "-_./:{}=" for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


RECORD = EngineRecord(
    name="sglang",
    title="SGLang",
    version=VERSION,
    flags_source="tests/fixtures/engines/sglang.json (ServerArgs.add_cli_args of sglang 0.5.23)",
    container_port=CONTAINER_PORT,
    default_host_port=DEFAULT_HOST_PORT,
    needs_gpu=True,
    tensor_parallel=True,
    # activations and CUDA graphs come out of SGLang's own slack (static_memory above), not
    # out of the pool: plan.memory charges neither and reserves (1 - mem_fraction_static)
    cuda_graphs_bytes=0,
    cpu_runtime_bytes=0,
    prefill_tokens=None,  # chunked_prefill_size: by card size, capacity_defaults
    reserve="static",
    kv_dtypes=("fp16", "bf16", "fp8"),
    quants={
        "4bit": ("awq", "gptq", "4bit"),
        "8bit": ("fp8",),
        "fp16": ("fp16",),
        "bf16": ("bf16",),
        "awq": ("awq",),
        "gptq": ("gptq",),
        "fp8": ("fp8",),
    },
    build=build,
    native_program="python3 -m sglang.launch_server",
    install_hint="`pip install sglang==0.5.23` (Linux, NVIDIA driver for CUDA 13), or its image "
    f"{IMAGE}",
    checked=CHECKED,
    cuda_images=CUDA_IMAGES,
)
