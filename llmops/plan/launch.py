"""LaunchPlan: everything needed to start one engine, as pure data.

``plan_launch(artifact, options, facts)`` turns a resolved model artifact (which repo or GGUF
file, which quantization), the user's options and the host facts into a ``LaunchPlan``. Every
renderer (shell, native, json) and every runtime (Docker, native process) consumes that one
object, so ``render``, ``up --dry-run`` and a real ``up`` cannot disagree.

Engine facts (images, ports, flags, health) come from shared/reference/engines.md; the section
is cited where a choice is not obvious. This module is pure: no clock, environment, network or
disk beyond its arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import HostFacts

ENGINES = ("tgi", "vllm", "llamacpp", "torch")
RUNTIMES = ("docker", "native")
QUANTS = ("fp32", "fp16", "bf16", "8bit", "4bit", "gptq", "awq", "fp8", "q4_k_m", "q5_k_m", "q8_0")
GGUF_QUANTS = ("q4_k_m", "q5_k_m", "q8_0", "q4_0", "q4_1", "q5_0", "q6_k", "f16")

# Pinned images (engines.md §6.1). TGI is in maintenance mode; 3.3.5 is the tag its docs show.
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"
VLLM_VERSION = "v0.20.2"
LLAMACPP_IMAGE = "ghcr.io/ggml-org/llama.cpp"
TORCH_IMAGE = "llmops/torch"

CONTAINER_PORT = {"tgi": 80, "vllm": 8000, "llamacpp": 8080, "torch": 8000}
DEFAULT_HOST_PORT = {"tgi": 8080, "vllm": 8000, "llamacpp": 8081, "torch": 8090}

LABEL_PREFIX = "llmops."


@dataclass(frozen=True)
class ModelArtifact:
    """What exactly to serve: resolved from the catalog for one model and quantization."""

    model: str  # catalog name, e.g. "mistral7b"
    repo: str  # Hugging Face repo id or local path
    quant: str  # the user's quant name: 4bit, awq, q4_k_m, fp16, ...
    format: str  # safetensors | gptq | awq | gguf
    file: str | None = None  # GGUF file name inside the repo
    gated: bool = False
    trust_remote_code: bool = False
    trained_context: int = 4096
    dtype: str = "float16"  # checkpoint dtype for unquantized formats
    size_bytes: int | None = None  # download size, when the catalog knows it


@dataclass(frozen=True)
class RopeScaling:
    """Context extension beyond the trained length (computed by fit)."""

    kind: str  # linear | dynamic | yarn
    factor: float
    original_context: int


@dataclass(frozen=True)
class LaunchOptions:
    engine: str
    runtime: str = "docker"
    name: str | None = None
    context: int = 4096
    gpus: tuple[int, ...] = ()
    host_port: int | None = None
    api_key: bool = True
    hf_token: bool = False  # a token exists and should be passed to the engine
    concurrency: int = 4
    extra_args: tuple[str, ...] = ()
    rope: RopeScaling | None = None
    hf_cache_dir: str = "~/.cache/huggingface"  # HF_HOME on the host
    data_dir: str = "~/.local/state/llmops"  # llmops state dir on the host
    image: str | None = None  # override the engine image
    python: str = "python3"  # interpreter for the native torch backend


@dataclass(frozen=True)
class Port:
    host_port: int
    container_port: int
    host_ip: str = "0.0.0.0"


@dataclass(frozen=True)
class Mount:
    source: str  # host path, or a named volume when kind == "volume"
    target: str
    kind: str = "bind"
    read_only: bool = False


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable whose value is a secret kept in the deployment's 0600 env file."""

    env: str
    secret: str  # api_key | hf_token


@dataclass(frozen=True)
class HealthProbe:
    path: str = "/health"
    ready_path: str = "/v1/models"
    loading_status: tuple[int, ...] = ()  # statuses that mean "still loading" (llama.cpp: 503)
    needs_auth_for_ready: bool = True
    start_period_s: int = 1800


@dataclass(frozen=True)
class LaunchPlan:
    name: str
    engine: str
    runtime: str
    model: str
    repo: str
    quant: str
    served_model_name: str
    context: int
    image: str | None
    entrypoint: tuple[str, ...] | None
    argv: tuple[str, ...]  # container command (docker) or full command line (native)
    env: tuple[tuple[str, str], ...]
    secret_env: tuple[SecretEnv, ...]
    ports: tuple[Port, ...]
    mounts: tuple[Mount, ...]
    gpus: tuple[int, ...]
    shm_size_mib: int | None
    ipc_host: bool
    health: HealthProbe
    labels: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    file: str | None = None

    @property
    def host_port(self) -> int:
        return self.ports[0].host_port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.host_port}/v1"

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class _EngineArgs:
    image: str | None
    entrypoint: tuple[str, ...] | None
    argv: list[str]
    native_argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    secret_env: list[SecretEnv] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    shm_size_mib: int | None = None
    ipc_host: bool = False
    health: HealthProbe = field(default_factory=HealthProbe)
    notes: list[str] = field(default_factory=list)


def _cuda_major(facts: HostFacts | None) -> int | None:
    if facts is None or facts.nvidia is None or not facts.nvidia.cuda_driver_version:
        return None
    try:
        return int(facts.nvidia.cuda_driver_version.split(".")[0])
    except ValueError:
        return None


def _min_compute_capability(facts: HostFacts | None, gpus: tuple[int, ...]) -> float | None:
    if facts is None or facts.nvidia is None:
        return None
    caps = []
    for g in facts.nvidia.gpus:
        if g.index in gpus and g.compute_capability:
            try:
                caps.append(float(g.compute_capability))
            except ValueError:
                continue
    return min(caps) if caps else None


def default_name(model: str, engine: str) -> str:
    return f"{model}-{engine}".replace("/", "-").replace(".", "-").lower()


def served_name(artifact: ModelArtifact) -> str:
    return artifact.model


# ------------------------------------------------------------------------------- engines


def _tgi(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> _EngineArgs:
    if a.format == "gguf":
        raise UsageError(
            f"TGI cannot serve the GGUF quantization {a.quant} of {a.model}",
            "use `--engine llamacpp` for GGUF, or a TGI quant such as `--quant 4bit` (GPTQ/AWQ)",
        )
    n = max(1, len(o.gpus))
    port = CONTAINER_PORT["tgi"]
    input_tokens = o.context - 1
    common = [
        "--model-id",
        a.repo,
        "--num-shard",
        str(n),
        "--max-input-tokens",
        str(input_tokens),
        "--max-total-tokens",
        str(o.context),
    ]
    # TGI refuses to start when prefill < input (engines.md §4 #5); its default prefill is 4096.
    if input_tokens > 4096:
        common += ["--max-batch-prefill-tokens", str(input_tokens)]
    quantize = {
        "gptq": "gptq",
        "awq": "awq",
        "fp8": "fp8",
    }.get(a.format if a.format in ("gptq", "awq") else a.quant)
    if a.format == "safetensors" and a.quant == "4bit":
        quantize = "bitsandbytes-nf4"
    if a.format == "safetensors" and a.quant == "8bit":
        quantize = "eetq"  # bitsandbytes (8-bit) is deprecated in favour of eetq (engines.md §2.1)
    if quantize:
        common += ["--quantize", quantize]
    if a.format == "safetensors" and a.quant in ("fp16", "bf16"):
        common += ["--dtype", "bfloat16" if a.quant == "bf16" else "float16"]
    if o.rope is not None:
        if o.rope.kind == "yarn":
            raise UsageError(
                "TGI only accepts linear or dynamic rope scaling, not yarn",
                "use `--engine vllm` or `--engine llamacpp` for YaRN, or a context within "
                f"{a.trained_context} tokens",
            )
        common += ["--rope-scaling", o.rope.kind, "--rope-factor", f"{o.rope.factor:g}"]
    if a.trust_remote_code:
        common += ["--trust-remote-code"]
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("API_KEY", "api_key"))  # the env form of --api-key
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token"))
    notes = []
    if n > 1:
        notes.append(f"TGI shards across {n} GPUs (--num-shard {n} = the GPUs passed)")
    # --hostname must be explicit: Docker sets HOSTNAME to the container id (engines.md §2.1).
    argv = [*common, "--hostname", "0.0.0.0", "--port", str(port)]
    native = ["text-generation-launcher", *common, "--hostname", "0.0.0.0", "--port", "{port}"]
    return _EngineArgs(
        image=TGI_IMAGE,
        entrypoint=None,
        argv=argv,
        native_argv=native,
        secret_env=secrets,
        mounts=[Mount(o.hf_cache_dir, "/data")],  # HF_HOME=/data: weights in /data/hub
        shm_size_mib=1024 if n == 1 else 2048 * n,
        health=HealthProbe(path="/health", ready_path="/v1/models", needs_auth_for_ready=False),
        notes=notes,
    )


def _vllm(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> _EngineArgs:
    if a.format == "gguf":
        raise UsageError(
            f"vLLM's GGUF support is experimental; llmops does not launch {a.quant} on vLLM",
            "use `--engine llamacpp` for GGUF files, or `--quant awq` / `--quant fp8` on vLLM",
        )
    cuda = _cuda_major(facts)
    tag = VLLM_VERSION if cuda is not None and cuda >= 13 else f"{VLLM_VERSION}-cu129"
    n = max(1, len(o.gpus))
    port = CONTAINER_PORT["vllm"]
    common = [
        a.repo,
        "--served-model-name",
        served_name(a),
        "--max-model-len",
        str(o.context),
        "--gpu-memory-utilization",
        "0.90",
        "--tensor-parallel-size",
        str(n),
    ]
    env: dict[str, str] = {}
    if a.quant == "fp8" or (a.format == "safetensors" and a.quant == "8bit"):
        cap = _min_compute_capability(facts, o.gpus)
        if cap is not None and cap < 8.0:
            raise UsageError(
                f"vLLM's fp8 needs compute capability 8.0 or newer; GPU has {cap:.1f}",
                "use `--quant awq` (needs 7.5) or `--engine llamacpp`",
            )
        common += ["--quantization", "fp8"]
    elif a.format == "safetensors" and a.quant == "4bit":
        common += ["--quantization", "bitsandbytes"]
    elif a.format == "awq":
        cap = _min_compute_capability(facts, o.gpus)
        if cap is not None and cap < 7.5:
            raise UsageError(
                f"vLLM's AWQ kernels need compute capability 7.5; GPU has {cap:.1f}",
                "use `--quant gptq` or `--engine llamacpp`",
            )
    if a.format == "safetensors" and a.quant in ("fp16", "bf16"):
        common += ["--dtype", "bfloat16" if a.quant == "bf16" else "float16"]
    if o.rope is not None:
        # --rope-scaling was removed in vLLM 0.11.1; --hf-overrides carries it (engines.md §0.3).
        override = {
            "rope_scaling": {
                "rope_type": o.rope.kind,
                "factor": o.rope.factor,
                "original_max_position_embeddings": o.rope.original_context,
            }
        }
        common += ["--hf-overrides", json.dumps(override, separators=(",", ":"))]
        env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
    if a.trust_remote_code:
        common += ["--trust-remote-code"]
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("VLLM_API_KEY", "api_key"))
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token"))
    argv = ["serve", *common, "--host", "0.0.0.0", "--port", str(port)]
    native = ["vllm", "serve", *common, "--host", "0.0.0.0", "--port", "{port}"]
    return _EngineArgs(
        image=f"vllm/vllm-openai:{tag}",
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
    )


def _llamacpp(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> _EngineArgs:
    if a.format != "gguf" or not a.file:
        raise UsageError(
            f"llama.cpp serves GGUF files; {a.model} at {a.quant} is {a.format}",
            "choose a GGUF quant such as `--quant q4_k_m`, or `--engine vllm`/`tgi` for "
            f"{a.format}",
        )
    cuda = _cuda_major(facts)
    if not o.gpus:
        image = f"{LLAMACPP_IMAGE}:server"
    else:
        image = (
            f"{LLAMACPP_IMAGE}:server-cuda13"
            if cuda and cuda >= 13
            else (f"{LLAMACPP_IMAGE}:server-cuda")
        )
    parallel = max(1, o.concurrency)
    common = [
        "-hf",
        a.repo,
        "-hff",
        a.file,
        "-c",
        str(o.context * parallel),  # the KV pool is shared by the slots
        "-np",
        str(parallel),
        "-ngl",
        "999" if o.gpus else "0",
        "-a",
        served_name(a),
        "--metrics",
    ]
    if len(o.gpus) > 1:
        common += ["-sm", "layer"]
    notes: list[str] = []
    if o.rope is not None:
        # llama.cpp's --rope-scaling takes none|linear|yarn (common/arg.cpp at the pinned build,
        # tests/fixtures/engines/llamacpp.json): there is no dynamic NTK, so YaRN stands in.
        kind = "yarn" if o.rope.kind == "dynamic" else o.rope.kind
        if kind != o.rope.kind:
            notes.append("llama.cpp has no dynamic rope scaling: YaRN is used instead")
        common += ["--rope-scaling", kind, "--rope-scale", f"{o.rope.factor:g}"]
        if kind == "yarn":
            common += ["--yarn-orig-ctx", str(o.rope.original_context)]
    secrets = []
    if o.api_key:
        secrets.append(SecretEnv("LLAMA_API_KEY", "api_key"))
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token"))
    port = CONTAINER_PORT["llamacpp"]
    argv = [*common, "--host", "0.0.0.0", "--port", str(port)]
    native = ["llama-server", *common, "--host", "0.0.0.0", "--port", "{port}"]
    return _EngineArgs(
        image=image,
        entrypoint=None,
        argv=argv,
        native_argv=native,
        env={"LLAMA_CACHE": "/models"},
        secret_env=secrets,
        mounts=[Mount(f"{o.data_dir}/models/llamacpp", "/models")],
        health=HealthProbe(path="/health", ready_path="/v1/models", loading_status=(503,)),
        notes=[
            f"{parallel} parallel slot{'s' if parallel > 1 else ''} of {o.context} tokens"
            f"{' each' if parallel > 1 else ''} (-c {o.context * parallel})",
            *notes,
        ],
    )


def _torch(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> _EngineArgs:
    precision = {
        "fp32": "fp32",
        "fp16": "fp16",
        "bf16": "bf16",
        "8bit": "8bit",
        "4bit": "4bit",
    }.get(a.quant)
    if precision is None and a.format != "gguf":
        raise UsageError(
            f"the torch backend does not serve {a.quant}",
            "use fp32, fp16, bf16, 8bit or 4bit with `--engine torch`",
        )
    model_ref = a.repo if a.format != "gguf" else f"{a.repo}/{a.file}"
    common = [
        "serve",
        model_ref,
        "--device",
        "cuda" if o.gpus else "cpu",
        "--served-model-name",
        served_name(a),
        "--context-length",
        str(o.context),
        "--max-batch-size",
        str(max(1, o.concurrency)),
    ]
    if precision:
        common += ["--precision", precision]
    secrets = [SecretEnv("LLMOPS_API_KEY", "api_key")] if o.api_key else []
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token"))
    port = CONTAINER_PORT["torch"]
    variant = "cuda" if o.gpus else "cpu"
    return _EngineArgs(
        image=f"{TORCH_IMAGE}:{variant}",
        entrypoint=None,
        argv=[*common, "--host", "0.0.0.0", "--port", str(port)],
        native_argv=[o.python, "-m", "llmops", *common, "--host", "0.0.0.0", "--port", "{port}"],
        env={"HF_HOME": "/data"},
        secret_env=secrets,
        mounts=[Mount(o.hf_cache_dir, "/data")],
        shm_size_mib=1024,
        health=HealthProbe(path="/health", ready_path="/v1/models", loading_status=(503,)),
        notes=[] if o.gpus else ["the torch backend runs on the CPU here: expect a few tokens/s"],
    )


_ENGINES = {"tgi": _tgi, "vllm": _vllm, "llamacpp": _llamacpp, "torch": _torch}


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", "choose one of: " + ", ".join(ENGINES))
    return engine


def plan_launch(
    artifact: ModelArtifact, options: LaunchOptions, facts: HostFacts | None
) -> LaunchPlan:
    """Build the LaunchPlan for one deployment.

    Args:
        artifact: the resolved model (repo/file and format for the chosen quant).
        options: engine, runtime, GPUs, context, port and the rest, already validated.
        facts: the host (or ``--hw``) facts: CUDA version picks image tags, compute capability
            gates quant kernels.

    Raises:
        UsageError: for a combination the engine cannot serve, with a hint.
    """
    engine = check_engine(options.engine)
    if options.runtime not in RUNTIMES:
        raise UsageError(
            f"unknown runtime {options.runtime!r}", "choose one of: " + ", ".join(RUNTIMES)
        )
    if engine in ("tgi", "vllm") and not options.gpus:
        raise LlmopsError(
            f"{engine} needs an NVIDIA GPU and none is selected on this host",
            "on a CPU-only host use `--engine llamacpp` (GGUF) or `--engine torch`; to plan for "
            "other hardware use `llmops render MODEL --hw 1x24GB`",
        )
    if options.context <= 0:
        raise UsageError(
            f"context must be positive, got {options.context}", "e.g. `--context 8192`"
        )
    e = _ENGINES[engine](artifact, options, facts)
    name = options.name or default_name(artifact.model, engine)
    host_port = options.host_port or DEFAULT_HOST_PORT[engine]
    extra = list(options.extra_args)
    if options.runtime == "docker":
        argv = (*e.argv, *extra)
        image = options.image or e.image
        entrypoint = e.entrypoint
        ports = (Port(host_port, CONTAINER_PORT[engine]),)
        mounts = tuple(e.mounts)
        env = dict(e.env)
    else:
        argv = tuple([a.replace("{port}", str(host_port)) for a in e.native_argv] + extra)
        image = None
        entrypoint = None
        ports = (Port(host_port, host_port),)
        mounts = ()
        env = {k: v for k, v in e.env.items() if k not in ("HF_HOME", "LLAMA_CACHE")}
        if engine == "llamacpp":
            env["LLAMA_CACHE"] = f"{options.data_dir}/models/llamacpp"
        if options.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in options.gpus)
    labels = (
        (LABEL_PREFIX + "deployment", name),
        (LABEL_PREFIX + "engine", engine),
        (LABEL_PREFIX + "model", artifact.model),
        (LABEL_PREFIX + "quant", artifact.quant),
        (LABEL_PREFIX + "port", str(host_port)),
        (LABEL_PREFIX + "runtime", options.runtime),
        (LABEL_PREFIX + "gpus", ",".join(str(g) for g in options.gpus)),
    )
    notes = list(e.notes)
    if options.rope is not None:
        notes.append(
            f"context {options.context} > trained {artifact.trained_context}: {options.rope.kind} "
            f"rope scaling x{options.rope.factor:g}; expect some quality loss on long inputs"
        )
    return LaunchPlan(
        name=name,
        engine=engine,
        runtime=options.runtime,
        model=artifact.model,
        repo=artifact.repo,
        quant=artifact.quant,
        served_model_name=served_name(artifact),
        context=options.context,
        image=image,
        entrypoint=entrypoint,
        argv=argv,
        env=tuple(sorted(env.items())),
        secret_env=tuple(e.secret_env),
        ports=ports,
        mounts=mounts,
        gpus=options.gpus,
        shm_size_mib=e.shm_size_mib if options.runtime == "docker" else None,
        ipc_host=e.ipc_host and options.runtime == "docker",
        health=e.health,
        labels=labels,
        notes=tuple(notes),
        file=artifact.file,
    )
