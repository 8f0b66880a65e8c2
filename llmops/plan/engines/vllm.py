"""vLLM, pinned at 0.33.0 (commit 4ba787ec9; PyPI's newest, checked 2026-12-01).

Flags: ``tests/fixtures/engines/vllm.json`` (its ``make_arg_parser`` run for real from the PyPI
sdist vllm-0.33.0, ``vllm/entrypoints/common/cli_args.py`` + ``vllm/engine/arg_utils.py``).
Every flag llmops renders kept its name, type and values from 0.20.2 except ``--quantization
bitsandbytes``, which left the tree (see ``quantization_flag``).
"""

from __future__ import annotations

import json

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
    BRANCHES_12_9,
    CudaImage,
    driver_too_old,
    effective_rope,
    kv_follows_dtype,
    pick_cuda_image,
    serving_dtype,
    unknown_kv,
)
from llmops.plan.model import RopeScaling

VERSION = "v0.33.0"
CHECKED = "2026-12-01"  # PyPI `pip index versions vllm`: 0.33.0 newest
IMAGE_REPO = "vllm/vllm-openai"
CONTAINER_PORT = 8000
DEFAULT_HOST_PORT = 8000

# The image builds of this release, newest CUDA first.
CUDA_IMAGES = (
    CudaImage(
        f"{IMAGE_REPO}:{VERSION}",
        (13, 0),
        "docker/Dockerfile @ v0.33.0 (sdist): ARG CUDA_VERSION=13.0.3, FINAL_BASE_IMAGE="
        "nvidia/cuda:${CUDA_VERSION}-base-ubuntu${UBUNTU_VERSION}; .buildkite/scripts/"
        "publish-release-images.sh (vllm-project/vllm @ 1bf39398) tags that build "
        "v<version> ('CUDA (default: 13.0)')",
    ),
    CudaImage(
        f"{IMAGE_REPO}:{VERSION}-cu129",
        (12, 9),
        ".buildkite/scripts/publish-release-images.sh (vllm-project/vllm @ 1bf39398; the "
        "sdist carries no release scripts): target cuda-12-9 tags <commit>-x86_64-cu129 as "
        "v<version>-cu129 (CUDA 12.9.1 as at v0.20.2's release-pipeline.yaml)",
        admits=BRANCHES_12_9,
    ),
)


def image_for(o: LaunchOptions, facts: HostFacts | None) -> str:
    """The newest vLLM image build the host's driver can start (rules.pick_cuda_image).

    vLLM's own way around an older driver, CUDA forward compatibility
    (VLLM_ENABLE_CUDA_COMPATIBILITY=1, docs/getting_started/installation/gpu.cuda.inc.md;
    data-center GPUs only, vllm/env_override.py), acts inside a container the runtime has
    already let start, so it does not widen the choice: a driver the cu129 base admits runs
    its CUDA 12.9 runtime by minor-version compatibility without it.

    Raises:
        UsageError: a docker plan whose driver can start no build.
    """
    default = CUDA_IMAGES[-1]  # driver unknown (--hw): the build most drivers run
    if o.runtime != "docker" or o.image:
        return default.ref
    img, drv = pick_cuda_image(CUDA_IMAGES, facts, o.gpus)
    if drv is None:
        return default.ref
    if img is None:
        raise driver_too_old(
            "vLLM",
            VERSION.lstrip("v"),
            CUDA_IMAGES,
            drv,
            facts,
            "`--engine tgi` (its image needs CUDA 12.4) or `--engine llamacpp` (12.8)",
        )
    return img.ref


# Formats whose repo carries its own `quantization_config`. vLLM 0.33.0 reads it when
# `--quantization` is absent (vllm/config/model.py `ModelConfig._verify_quantization`: the
# config's quant_method, upgraded to awq_marlin/gptq_marlin when the kernels fit) and raises
# "Quantization method specified in the model config (...) does not match the quantization
# method specified in the `quantization` argument (...)" on any other value. A pre-quantized
# "FP8" repo may say fp8, compressed-tensors (llm-compressor, e.g. neuralmagic/*-FP8) or
# modelopt: only the repo knows, so the flag is never rendered for these. Passing `awq` or
# `gptq` by hand would also pin the slow non-Marlin kernels.
PRE_QUANTIZED = ("awq", "gptq", "fp8", "compressed-tensors")


def quantization_flag(a: ModelArtifact) -> str | None:
    """`--quantization` for a repo quantized at load (`None`: the repo's own config, or none).

    vllm/model_executor/layers/quantization/__init__.py @ 0.33.0 lists `fp8` (dynamic FP8 of
    an unquantized checkpoint) among the methods. `bitsandbytes` (in-flight NF4) is no longer
    there: docs/features/quantization/bnb.md @ 0.33.0 says it "is provided by the out-of-tree
    vllm-bnb-plugin", which the vllm/vllm-openai image does not install, so vLLM's quant
    table has no NF4 (`--quant 4bit` on vLLM is AWQ or GPTQ) and `nf4_refusal` says why.
    """
    if a.format in PRE_QUANTIZED or a.format != "safetensors":
        return None
    if a.quant in ("fp8", "8bit"):
        return "fp8"
    if a.quant == "4bit":
        raise nf4_refusal(a)
    return None


def nf4_refusal(a: ModelArtifact) -> UsageError:
    return UsageError(
        f"vLLM {VERSION.lstrip('v')} has no built-in bitsandbytes NF4 (it moved to the "
        f"vllm-bnb-plugin package, not in the vLLM image); {a.model} has no AWQ/GPTQ repo",
        "use `--engine sglang` or `--engine torch` for NF4, `--quant fp8`/`--quant fp16` on "
        "vLLM, or `--image` a vLLM image with `vllm-bnb-plugin` installed",
    )


# vLLM 0.33.0 runs on compute capability 7.5 and newer: docs/getting_started/installation/
# gpu.cuda.inc.md ("GPU: compute capability 7.5 or higher"); its images carry kernels for
# torch_cuda_arch_list '7.5 8.0 8.6 8.9 9.0 10.0 11.0 12.0' (docker/Dockerfile @ 0.33.0).
MIN_CAPABILITY = 7.5
# Each quantization method's `get_min_capability()` (ModelConfig refuses below it,
# vllm/config/vllm.py `_get_quantization_config`), vllm/model_executor/layers/quantization/:
# - fp8.py Fp8Config: 75. Below 8.9 the FP8 weights run through the weight-only FP8 Marlin
#   kernel (kernels/linear/scaled_mm/marlin.py, utils/marlin_utils_fp8.py
#   `is_fp8_marlin_supported` = capability >= 75). A compressed-tensors FP8 repo falls back
#   the same way (compressed_tensors.py: W8A8Fp8 needs 89, else CompressedTensorsW8A16Fp8,
#   min 75). A modelopt FP8 repo (modelopt.py ModelOptFp8Config) needs 89; llmops cannot
#   see a repo's quant_method, and the catalog's FP8 repos are compressed-tensors.
# - awq.py and awq_marlin.py: 75. gptq_marlin.py: 75 (gptq.py's 60 is below vLLM's floor).
QUANT_MIN_CAPABILITY = {"fp8": 7.5, "awq": 7.5, "gptq": 7.5}


# --kv-cache-dtype values (vllm/config/cache.py CacheDType; tests/fixtures/engines/vllm.json).
# float16/bfloat16 caches are written in the model's own dtype (csrc/attention/dtype_fp8.cuh
# `get_fp8_kv_cache_data_type`: "unquantized kv cache" = kAuto), so they must match --dtype.
KV_CACHE_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp8": "fp8"}


def _kernel(a: ModelArtifact) -> str | None:
    if a.format in ("awq", "gptq"):
        return a.format
    if a.quant in ("fp8", "8bit") and a.format in ("fp8", "safetensors"):
        return "fp8"
    return None


def check_capability(a: ModelArtifact, cap: float | None) -> None:
    """Refuse exactly below what vLLM 0.33.0 runs (a GPU of unknown capability passes).

    Raises:
        UsageError: a GPU below vLLM's floor, or below the quantization kernel's minimum.
    """
    if cap is None:
        return
    if cap < MIN_CAPABILITY:
        raise UsageError(
            f"vLLM {VERSION.lstrip('v')} needs GPU compute capability {MIN_CAPABILITY} or "
            f"newer; the selected GPU has {cap:.1f}",
            "use `--engine tgi` or `--engine llamacpp` on this GPU",
        )
    kernel = _kernel(a)
    need = QUANT_MIN_CAPABILITY.get(kernel or "")
    if need is not None and cap < need:
        raise UsageError(
            f"vLLM's {kernel} kernels need compute capability {need} or newer; the selected "
            f"GPU has {cap:.1f}",
            "choose another `--quant`, or `--engine llamacpp`",
        )


def rope_override(a: ModelArtifact, rope: RopeScaling) -> str:
    """The `--hf-overrides` JSON for a rope scaling, in the form vLLM applies (read at 0.20.2;
    the option and `rope_parameters` unchanged at 0.33.0, tests/fixtures/engines/vllm.json).

    vLLM has no --rope-scaling option (docs/features/context_extension.md: "use the
    `--hf-overrides` method with `rope_parameters`"). A dict-valued override is set on the
    loaded config after `patch_rope_parameters` has already folded the config's own
    rope_scaling and rope_theta into `rope_parameters` (vllm/config/model.py `__post_init__`
    -> `_apply_dict_overrides`; vllm/transformers_utils/config.py `get_config`), so:
    `rope_scaling` would be set and never read, and `rope_parameters` replaces the whole
    dict, so it must carry the model's rope_theta: get_rope reads the base from it and
    defaults to 10000 (model_executor/layers/rotary_embedding/__init__.py `get_rope`). The
    same form works with transformers 5 (requirements/common.txt @ 0.33.0: >= 5.16.1).

    Raises:
        UsageError: the model's rope_theta is unknown.
    """
    if a.rope_theta is None:
        raise UsageError(
            f"llmops does not know {a.model}'s rope_theta; vLLM's rope override would reset "
            "it to 10000",
            f"use a context within {a.trained_context} tokens, or `--engine llamacpp`",
        )
    params: dict[str, object] = {"rope_type": rope.kind, "factor": rope.factor}
    if rope.original_context:
        params["original_max_position_embeddings"] = rope.original_context
    params["rope_theta"] = a.rope_theta
    return json.dumps({"rope_parameters": params}, separators=(",", ":"))


def build(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> EngineArgs:
    if a.format == "gguf":
        raise UsageError(
            f"vLLM's GGUF support is experimental; llmops does not launch {a.quant} on vLLM",
            "use `--engine llamacpp` for GGUF files, or `--quant awq` / `--quant fp8` on vLLM",
        )
    n = max(1, len(o.gpus))
    port = CONTAINER_PORT
    common = [
        a.repo,
        "--served-model-name",
        a.model,
        "--max-model-len",
        str(o.context),
        "--gpu-memory-utilization",
        "0.90",
        "--tensor-parallel-size",
        str(n),
    ]
    env: dict[str, str] = {}
    notes: list[str] = []
    cap = min_compute_capability(facts, o.gpus)
    check_capability(a, cap)
    image = image_for(o, facts)
    common += _precision_argv(a, o, cap, notes)
    common += _rope_argv(a, o, env)
    if a.trust_remote_code:
        common += ["--trust-remote-code"]
    secrets = _secrets(a, o, notes)
    argv = ["serve", *common, "--host", "0.0.0.0", "--port", str(port)]
    native = ["vllm", "serve", *common, "--host", "0.0.0.0", "--port", "{port}"]
    return EngineArgs(
        image=image,
        # version-proof: works whether the image's entrypoint is `vllm serve` or the old module
        entrypoint=("vllm",),
        argv=argv,
        native_argv=native,
        env=env,
        secret_env=secrets,
        mounts=[
            Mount(o.hf_cache_dir, "/root/.cache/huggingface"),
            Mount("llmops-vllm-cache", "/root/.cache/vllm", kind="volume"),
        ],
        ipc_host=True,
        health=HealthProbe(path="/health", ready_path="/v1/models"),
        notes=notes,
    )


def _precision_argv(
    a: ModelArtifact, o: LaunchOptions, cap: float | None, notes: list[str]
) -> list[str]:
    """--quantization, --kv-cache-dtype and --dtype."""
    argv: list[str] = []
    quantization = quantization_flag(a)
    if quantization:
        argv += ["--quantization", quantization]
    # platforms/cuda.py: an explicit bfloat16 below 8.0 is refused; `auto` of a bf16
    # checkpoint (and of a quantized repo) falls back with a warning: say it instead.
    dtype, why = serving_dtype(a, cap, notes)
    kv = o.kv_dtype.lower()
    if kv != "auto":
        if kv not in KV_CACHE_DTYPES:
            raise unknown_kv("vLLM", kv, tuple(KV_CACHE_DTYPES))
        if kv in ("fp16", "bf16"):
            dtype = kv_follows_dtype("vLLM", kv, dtype, why)
        argv += ["--kv-cache-dtype", KV_CACHE_DTYPES[kv]]
    return argv + dtype_flag(dtype)


def _rope_argv(a: ModelArtifact, o: LaunchOptions, env: dict[str, str]) -> list[str]:
    """--hf-overrides with the rope scaling, and the env that lets the context exceed it."""
    rope = effective_rope(a, o, "vLLM")
    if rope is None:
        return []
    argv = ["--hf-overrides", rope_override(a, rope)]
    # vLLM derives the longest context from the scaling it is given (config/model.py
    # `_get_and_verify_max_len`: original_max_position_embeddings x factor for yarn,
    # max_position_embeddings x factor otherwise) and refuses a longer --max-model-len
    # unless this is set. Only set it when the rounding of the factor falls short.
    base = rope.original_context if rope.kind == "yarn" else a.trained_context
    if base and o.context > int(base * rope.factor):
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
    return argv


def _secrets(a: ModelArtifact, o: LaunchOptions, notes: list[str]) -> list[SecretEnv]:
    """The API key (and which routes it guards) and the HF token, as env."""
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("VLLM_API_KEY", "api_key"))
        # vllm/entrypoints/serve/middleware/authenticate.py @ 0.33.0: GUARDED_PREFIX =
        # ("/v1", "/v2", "/inference", "/cohere"); every other path answers without the key
        notes.append(
            "vLLM checks the API key only under /v1, /v2, /inference and /cohere: "
            "/invocations, /tokenize and /detokenize answer without it, so `llmops tunnel` "
            "refuses to publish it; expose it only behind a proxy that forwards /v1 "
            "(`llmops audit NAME` lists the open routes)"
        )
    return secrets + hf_token_env(a, o)


RECORD = EngineRecord(
    name="vllm",
    title="vLLM",
    version=VERSION.lstrip("v"),
    flags_source="tests/fixtures/engines/vllm.json (make_arg_parser of vllm 0.33.0)",
    container_port=CONTAINER_PORT,
    default_host_port=DEFAULT_HOST_PORT,
    needs_gpu=True,
    tensor_parallel=True,
    cuda_graphs_bytes=768 * MIB,
    cpu_runtime_bytes=0,
    prefill_tokens=2048,
    reserve="utilization",
    kv_dtypes=("fp16", "bf16", "fp8"),
    quants={
        "4bit": ("awq", "gptq"),  # no NF4: bitsandbytes is a plugin since (quantization_flag)
        "8bit": ("fp8",),
        "fp16": ("fp16",),
        "bf16": ("bf16",),
        "awq": ("awq",),
        "gptq": ("gptq",),
        "fp8": ("fp8",),
    },
    build=build,
    native_program="vllm",
    install_hint="`pip install vllm==0.33.0` (Linux with an NVIDIA GPU), or use its image",
    checked=CHECKED,
    cuda_images=CUDA_IMAGES,
)
