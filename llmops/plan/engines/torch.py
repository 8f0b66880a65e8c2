"""llmops' own bundled PyTorch/transformers backend (``llmops serve``, extra ``llmops[backend]``)."""

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
from llmops.plan.engines.rules import fp16_note, no_bf16

IMAGE_REPO = "llmops/torch"
CONTAINER_PORT = 8000
DEFAULT_HOST_PORT = 8090


def build(a: ModelArtifact, o: LaunchOptions, facts: HostFacts | None) -> EngineArgs:
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
    if o.kv_dtype.lower() != "auto":
        # `llmops serve` (llmops/cli/serve.py) has no KV cache option: its cache is kept in
        # the --precision dtype.
        raise UsageError(
            f"the torch backend has no {o.kv_dtype} KV cache option (its cache follows "
            "--precision)",
            "use `--kv-dtype auto` with `--engine torch`, or `--engine vllm` / `--engine "
            "llamacpp` for a smaller KV cache",
        )
    model_ref = a.repo if a.format != "gguf" else f"{a.repo}/{a.file}"
    common = [
        "serve",
        model_ref,
        "--device",
        "cuda" if o.gpus else "cpu",
        "--served-model-name",
        a.model,
        "--context-length",
        str(o.context),
        "--max-batch-size",
        str(max(1, o.concurrency)),
    ]
    notes: list[str] = (
        [] if o.gpus else ["the torch backend runs on the CPU here: expect a few tokens/s"]
    )
    cap = min_compute_capability(facts, o.gpus) if o.gpus else None
    if precision == "bf16" and no_bf16(cap):
        assert cap is not None
        precision = "fp16"
        notes.append(fp16_note(cap, "--precision fp16"))
    if precision:
        common += ["--precision", precision]
    secrets = [SecretEnv("LLMOPS_API_KEY", "api_key")] if o.api_key else []
    if o.hf_token:
        secrets.append(SecretEnv("HF_TOKEN", "hf_token", required=a.gated))
    port = CONTAINER_PORT
    variant = "cuda" if o.gpus else "cpu"
    return EngineArgs(
        image=f"{IMAGE_REPO}:{variant}",
        entrypoint=None,
        argv=[*common, "--host", "0.0.0.0", "--port", str(port)],
        native_argv=[o.python, "-m", "llmops", *common, "--host", "0.0.0.0", "--port", "{port}"],
        env={"HF_HOME": "/data"},
        secret_env=secrets,
        mounts=[Mount(o.hf_cache_dir, "/data")],
        shm_size_mib=1024,
        health=HealthProbe(path="/health", ready_path="/v1/models", loading_status=(503,)),
        notes=notes,
    )


RECORD = EngineRecord(
    name="torch",
    title="llmops torch backend",
    version="bundled",
    flags_source="llmops/cli/serve.py (`llmops serve`)",
    container_port=CONTAINER_PORT,
    default_host_port=DEFAULT_HOST_PORT,
    needs_gpu=False,
    tensor_parallel=False,
    cuda_graphs_bytes=0,
    cpu_runtime_bytes=512 * MIB,
    prefill_tokens=None,
    reserve="allocator",
    kv_dtypes=(),  # `llmops serve` has no KV cache option; only auto
    quants={
        "4bit": ("4bit",),
        "8bit": ("8bit",),
        "fp32": ("fp32",),
        "fp16": ("fp16",),
        "bf16": ("bf16",),
    },
    build=build,
    native_program="llmops serve",
    install_hint="`pip install 'llmops[backend]'`",
)
