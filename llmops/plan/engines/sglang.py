"""SGLang (``python -m sglang.launch_server``), pinned at 0.5.23 (PyPI's newest, checked
2026-12-01). Where TGI's own README sends its users.

Flags: ``tests/fixtures/engines/sglang.json`` (``ServerArgs.add_cli_args`` imported and walked
from the PyPI wheel sglang-0.5.23; the fields live in ``python/sglang/srt/arg_groups/fields/``).
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
    if a.format == "gguf":
        raise UsageError(
            f"llmops does not launch GGUF ({a.quant}) on SGLang",
            "use `--engine llamacpp` for GGUF files, or `--quant awq` / `--quant fp8` on SGLang",
        )
    cap = min_compute_capability(facts, o.gpus)
    if cap is not None and cap < MIN_CAPABILITY:
        raise UsageError(
            f"SGLang {VERSION} needs GPU compute capability {MIN_CAPABILITY} or newer; the "
            f"selected GPU has {cap:.1f}",
            "use `--engine llamacpp` or `--engine tgi` on this GPU",
        )
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
    dtype, why = serving_dtype(a, cap, notes)
    kv = o.kv_dtype.lower()
    if kv == "fp8":
        common += ["--kv-cache-dtype", KV_FP8]
    elif kv in ("fp16", "bf16"):
        dtype = kv_follows_dtype("SGLang", kv, dtype, why)
    elif kv != "auto":
        raise unknown_kv("SGLang", kv, ("fp16", "bf16", "fp8"))
    if dtype:
        common += ["--dtype", "bfloat16" if dtype == "bf16" else "float16"]
    rope = effective_rope(a, o, "SGLang")
    if rope is not None:
        raise UsageError(
            "llmops does not render rope scaling for SGLang",
            f"use a context within {a.trained_context} tokens, or `--engine vllm` / "
            "`--engine llamacpp` for a longer one",
        )
    if a.trust_remote_code:
        common += ["--trust-remote-code"]
    secrets = []
    key: list[str] = []
    if o.api_key:
        secrets.append(SecretEnv(KEY_ENV, "api_key"))
        key = ["--api-key", f'"${KEY_ENV}"']
        notes.append(KEY_NOTE)
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token", required=a.gated))
    server = ["python3", "-m", "sglang.launch_server", *common]
    inner = [*server, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT), *key]
    native_inner = [*server, "--host", "0.0.0.0", "--port", "{port}", *key]
    return EngineArgs(
        image=image,
        entrypoint=("/bin/sh",),  # one word: `docker run --entrypoint` takes a single program
        # `"$@"` with `sglang` as $0: arguments appended after these (--extra-args) reach it
        argv=["-c", _line(inner), "sglang"],
        native_argv=["/bin/sh", "-c", _line(native_inner), "sglang"],
        secret_env=secrets,
        mounts=[Mount(o.hf_cache_dir, "/root/.cache/huggingface")],
        shm_size_mib=None,
        ipc_host=True,
        health=HEALTH,
        notes=notes,
    )


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
    # reserve_for_graph_mb (memory_hook.py): decode cuda-graph max_bs x 2 MiB, max_bs up to 256
    cuda_graphs_bytes=512 * MIB,
    cpu_runtime_bytes=0,
    # chunked_prefill_size (memory_hook.py): 2048 below 20 GiB, 4096 to 60 GiB, 8192 above
    prefill_tokens=4096,
    reserve="utilization",
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
