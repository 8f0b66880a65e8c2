"""What every engine record shares: the resolved artifact, the launch options, the plan.

Pure data, plus ``EngineRecord``: the one place that holds what llmops knows about one engine
(pinned version, where its accepted flags come from, argv builder, memory constants, quant
table, readiness, install hint). ``llmops.plan.engines`` lists the records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.hw.facts import HostFacts
from llmops.plan.model import RopeScaling as RopeScaling

LABEL_PREFIX = "llmops."
MIB = 1024 * 1024


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
    label: str = ""  # the concrete format in words: "AWQ 4-bit", "GGUF Q4_K_M", "BF16"
    rope_theta: float | None = None  # the model's own rope base (kept under any override)
    native_rope: RopeScaling | None = None  # the model's own rope scaling (llama3, yarn, ...)


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
    kv_dtype: str = "auto"  # KV cache dtype (fit's `--kv-dtype`), in llmops' words


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
    required: bool = True  # False: the engine starts without it (an HF token for a public repo)


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
class EngineArgs:
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


def cuda_major(facts: HostFacts | None) -> int | None:
    if facts is None or facts.nvidia is None or not facts.nvidia.cuda_driver_version:
        return None
    try:
        return int(facts.nvidia.cuda_driver_version.split(".")[0])
    except ValueError:
        return None


def min_compute_capability(facts: HostFacts | None, gpus: tuple[int, ...]) -> float | None:
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


def dtype_flag(dtype: str | None) -> list[str]:
    """``--dtype`` as vLLM, SGLang and TGI spell it; none leaves the engine its own default."""
    return ["--dtype", "bfloat16" if dtype == "bf16" else "float16"] if dtype else []


def hf_token_env(a: ModelArtifact, o: LaunchOptions) -> list[SecretEnv]:
    """The Hugging Face token as ``HF_TOKEN`` when there is one (required for a gated repo)."""
    return [SecretEnv("HF_TOKEN", "hf_token", required=a.gated)] if o.hf_token else []


@dataclass(frozen=True)
class EngineRecord:
    """Everything llmops knows about one engine. Adding an engine = one such record + catalog."""

    name: str
    title: str  # "vLLM"
    version: str  # the pinned version
    flags_source: str  # where the accepted flags were read (tests/fixtures/engines/NAME.json)
    container_port: int
    default_host_port: int
    needs_gpu: bool
    tensor_parallel: bool  # splits weights by tensor (vLLM, TGI) rather than by layers
    # memory constants (plan.memory uses these; engines.md / peers-and-estimation.md B.6)
    cuda_graphs_bytes: int
    cpu_runtime_bytes: int
    prefill_tokens: int | None  # the prefill chunk; None: the whole prompt
    reserve: str  # utilization (vLLM) | wiggle (TGI) | allocator (llama.cpp, torch)
    kv_dtypes: tuple[str, ...]  # KV cache dtypes it accepts, in llmops' words
    # quant table: a quant word -> the concrete quants tried, best first (plan.quant names)
    quants: Mapping[str, tuple[str, ...]]
    build: Callable[[ModelArtifact, LaunchOptions, HostFacts | None], EngineArgs]
    native_program: str  # what runs it without Docker
    install_hint: str  # how to get that program
    image_note: str = ""
    # the pin: when its version was last checked against the registry (scripts/engine_pins.py
    # prints these with their sources), its CUDA images (rules.CudaImage, newest first), and a
    # status line when the project itself is winding down (TGI: maintenance mode)
    checked: str = ""
    cuda_images: Sequence[Any] = ()
    status: str = ""

    @property
    def min_driver_cuda(self) -> str | None:
        """The oldest driver CUDA any of its images starts on ("12.9"), None without images."""
        if not self.cuda_images:
            return None
        v = min(img.cuda for img in self.cuda_images)
        return f"{v[0]}.{v[1]}"
