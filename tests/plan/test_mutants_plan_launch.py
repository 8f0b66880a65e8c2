"""plan/launch.py: what one LaunchPlan holds for each runtime, pinned where the mutation
benchmark found gaps (benchmarks/MUTATION.md). The golden renders (test_launch_plan.py) show
whole files; these state the rules one at a time."""

from __future__ import annotations

import pytest

from llmops.errors import LlmopsError, UsageError
from llmops.plan.launch import (
    CONTAINER_PORT,
    DEFAULT_HOST_PORT,
    LaunchOptions,
    RopeScaling,
    check_engine,
    default_name,
    plan_launch,
)
from tests.support.launch_cases import FP16, GGUF, RTX, SMOL
from tests.support.scale_cases import RTX_CUDA129


def test_default_name_is_a_valid_lower_case_name() -> None:
    assert default_name("Qwen/Qwen2.5-7B.Instruct", "vllm") == "qwen-qwen2-5-7b-instruct-vllm"
    assert default_name("smollm2", "torch") == "smollm2-torch"


def test_check_engine() -> None:
    assert check_engine("llamacpp") == "llamacpp"
    with pytest.raises(UsageError) as e:
        check_engine("llama.cpp")
    assert "llamacpp" in (e.value.hint or "")


@pytest.mark.parametrize("context", [0, -1])
def test_context_must_be_positive(context: int) -> None:
    with pytest.raises(UsageError) as e:
        plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=context), None)
    assert "context must be positive" in e.value.message


def test_context_of_one_is_accepted() -> None:
    assert plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=1), None).context == 1


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_gpu_engines_without_a_gpu_say_what_to_use(engine: str) -> None:
    with pytest.raises(LlmopsError) as e:
        plan_launch(FP16, LaunchOptions(engine=engine), RTX)
    assert "needs an NVIDIA GPU" in e.value.message
    assert "--engine llamacpp" in (e.value.hint or "")


def test_docker_plan() -> None:
    p = plan_launch(
        GGUF,
        LaunchOptions(
            engine="llamacpp",
            context=4096,
            gpus=(1,),
            extra_args=("--seed", "7"),
            image="registry.example.com/llama:mine",
        ),
        RTX,
    )
    assert p.name == "qwen2-5-7b-llamacpp"
    assert p.runtime == "docker" and p.image == "registry.example.com/llama:mine"
    assert p.argv[-2:] == ("--seed", "7")  # the user's arguments last, as given
    port = DEFAULT_HOST_PORT["llamacpp"]
    assert [(x.host_port, x.container_port) for x in p.ports] == [
        (port, CONTAINER_PORT["llamacpp"])
    ]
    env = dict(p.env)
    # the container gets its GPUs from Docker's device request, not CUDA_VISIBLE_DEVICES
    assert ("CUDA_DEVICE_ORDER" in env) == ("CUDA_VISIBLE_DEVICES" in env)
    assert p.mounts  # the model cache is mounted into the container
    assert p.served_model_name == "qwen2.5-7b" and p.model == "qwen2.5-7b"
    assert p.file == GGUF.file and p.repo == GGUF.repo and p.quant == "q4_k_m"
    labels = dict(p.labels)
    assert labels["llmops.deployment"] == p.name
    assert labels["llmops.engine"] == "llamacpp"
    assert labels["llmops.model"] == "qwen2.5-7b"
    assert labels["llmops.quant"] == "q4_k_m"
    assert labels["llmops.port"] == str(port)
    assert labels["llmops.runtime"] == "docker"
    assert labels["llmops.gpus"] == "1"


def test_native_plan() -> None:
    p = plan_launch(
        GGUF,
        LaunchOptions(
            engine="llamacpp",
            runtime="native",
            name="q",
            gpus=(0, 1),
            host_port=18555,
            extra_args=("--seed", "7"),
            data_dir="/srv/llmops",
        ),
        RTX,
    )
    assert p.image is None and p.entrypoint is None and p.mounts == ()
    assert [(x.host_port, x.container_port) for x in p.ports] == [(18555, 18555)]
    assert "18555" in p.argv and not any("{port}" in a for a in p.argv)
    assert p.argv[-2:] == ("--seed", "7")
    env = dict(p.env)
    assert env["LLAMA_CACHE"] == "/srv/llmops/models/llamacpp"
    assert "HF_HOME" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert p.shm_size_mib is None and p.ipc_host is False  # container settings only
    assert list(p.env) == sorted(p.env)
    assert dict(p.labels)["llmops.runtime"] == "native"
    assert dict(p.labels)["llmops.gpus"] == "0,1"


def test_a_cpu_plan_pins_no_device_order() -> None:
    for runtime in ("docker", "native"):
        p = plan_launch(SMOL, LaunchOptions(engine="torch", runtime=runtime), None)
        env = dict(p.env)
        assert "CUDA_VISIBLE_DEVICES" not in env and "CUDA_DEVICE_ORDER" not in env
        assert dict(p.labels)["llmops.gpus"] == ""


def test_a_gpu_container_keeps_its_shared_memory_settings() -> None:
    p = plan_launch(FP16, LaunchOptions(engine="vllm", gpus=(0,)), RTX_CUDA129)
    assert p.shm_size_mib or p.ipc_host  # NCCL/PyTorch need /dev/shm (engines.md)
    n = plan_launch(GGUF, LaunchOptions(engine="llamacpp", runtime="native"), None)
    assert n.shm_size_mib is None and n.ipc_host is False


def test_rope_scaling_is_noted_with_its_cost() -> None:
    rope = RopeScaling(kind="yarn", factor=2.0, original_context=32768)
    p = plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=65536, rope=rope), None)
    assert any(
        n.startswith("context 65536 > trained 32768: yarn rope scaling x2;") for n in p.notes
    )
    q = plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=4096), None)
    assert not any("rope scaling" in n for n in q.notes)
