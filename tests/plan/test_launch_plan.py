"""The pure launch planner and its renderers: per-engine flags, golden renders, bad input.

Golden files live in tests/fixtures/golden/; regenerate with LLMOPS_UPDATE_GOLDEN=1 and review
the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from llmops.errors import LlmopsError, UsageError
from llmops.plan.launch import LaunchOptions, ModelArtifact, RopeScaling, plan_launch
from llmops.plan.render import render
from llmops.resources import templates_dir
from tests.support.launch_cases import AWQ, FIX, FP16, GGUF, H100, RTX, SMOL
from tests.support.scale_cases import RTX_CUDA129

CASES = {
    "tgi-awq-2gpu": (
        AWQ,
        LaunchOptions(engine="tgi", name="m", context=8192, gpus=(0, 1), hf_token=True),
        RTX_CUDA129,
    ),
    "vllm-bf16-h100": (
        FP16,
        LaunchOptions(engine="vllm", name="l", context=16384, gpus=(0,), hf_token=True),
        H100,
    ),
    "llamacpp-cpu": (
        GGUF,
        LaunchOptions(engine="llamacpp", name="q", context=4096, concurrency=2),
        None,
    ),
    "llamacpp-gpu-native": (
        GGUF,
        LaunchOptions(engine="llamacpp", runtime="native", name="q", context=4096, gpus=(0,)),
        RTX,
    ),
    "torch-cpu": (
        SMOL,
        LaunchOptions(engine="torch", name="s", context=2048, python="python3"),
        None,
    ),
    "torch-native": (
        SMOL,
        LaunchOptions(engine="torch", runtime="native", name="s", context=2048, python="python3"),
        None,
    ),
}


def _render_all(name: str) -> str:
    art, opts, facts = CASES[name]
    plan = plan_launch(art, opts, facts)
    fmt = "shell" if plan.runtime == "docker" else "native"
    return render(plan, fmt, templates=templates_dir(), data_dir="/home/u/.local/state/llmops")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_render(name: str) -> None:
    text = _render_all(name)
    path = FIX / "golden" / f"{name}.sh"
    if os.environ.get("LLMOPS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"render of {name} changed; LLMOPS_UPDATE_GOLDEN=1 to accept"
    # every rendered script is valid shell, and no secret value can be in it
    assert "sk-llmops-" not in text and "hf_" not in text.replace("hf_token", "")
    import subprocess

    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_json_format_is_the_plan() -> None:
    art, opts, facts = CASES["vllm-bf16-h100"]
    plan = plan_launch(art, opts, facts)
    doc = json.loads(render(plan, "json", templates=templates_dir(), data_dir="/x"))
    assert doc["schema"] == 1
    assert doc["plan"]["image"] == "vllm/vllm-openai:v0.33.0-cu129"  # CUDA 12.4 driver
    assert doc["plan"]["secret_env"] == [
        {"env": "VLLM_API_KEY", "secret": "api_key", "required": True},
        {"env": "HF_TOKEN", "secret": "hf_token", "required": True},  # Llama 3.1 is gated
    ]


def test_cuda13_driver_gets_the_bare_vllm_tag_and_cuda13_llamacpp() -> None:
    import dataclasses

    def driver(cuda: str):  # type: ignore[no-untyped-def]
        return dataclasses.replace(
            H100, nvidia=dataclasses.replace(H100.nvidia, cuda_driver_version=cuda)
        )

    assert (
        plan_launch(FP16, LaunchOptions(engine="vllm", gpus=(0,)), driver("13.0")).image
        == "vllm/vllm-openai:v0.33.0"
    )
    gpu = LaunchOptions(engine="llamacpp", gpus=(0,))
    # llama.cpp's cuda13 image is built with CUDA 13.4.1, its cuda one with 12.8.1
    assert plan_launch(GGUF, gpu, driver("13.4")).image.endswith(":server-cuda13-b11434")
    assert plan_launch(GGUF, gpu, driver("13.0")).image.endswith(":server-cuda-b11434")
    assert plan_launch(GGUF, gpu, RTX_CUDA129).image.endswith(":server-cuda-b11434")


def test_rope_scaling_syntax_per_engine() -> None:
    rope = RopeScaling(kind="dynamic", factor=2.0, original_context=4096)
    art = ModelArtifact(
        model="m",
        repo="r/m",
        quant="fp16",
        format="safetensors",
        trained_context=4096,
        rope_theta=10000.0,
    )
    tgi = plan_launch(
        art, LaunchOptions(engine="tgi", gpus=(0,), context=8192, rope=rope), RTX_CUDA129
    )
    assert list(
        tgi.argv[tgi.argv.index("--rope-scaling") : tgi.argv.index("--rope-scaling") + 4]
    ) == ["--rope-scaling", "dynamic", "--rope-factor", "2"]
    vllm = plan_launch(
        art, LaunchOptions(engine="vllm", gpus=(0,), context=8192, rope=rope), RTX_CUDA129
    )
    over = json.loads(vllm.argv[vllm.argv.index("--hf-overrides") + 1])
    assert over == {  # vLLM 0.33.0 reads rope_parameters, with the model's own rope_theta
        "rope_parameters": {
            "rope_type": "dynamic",
            "factor": 2.0,
            "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0,
        }
    }
    # 4096 x 2 covers the context: vLLM derives it from the factor, no override needed
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" not in dict(vllm.env)
    assert any("quality" in n for n in vllm.notes)
    with pytest.raises(UsageError, match="yarn"):
        plan_launch(
            art,
            LaunchOptions(
                engine="tgi", gpus=(0,), context=8192, rope=RopeScaling("yarn", 2.0, 4096)
            ),
            RTX_CUDA129,
        )


def test_quant_flags() -> None:
    art = ModelArtifact(model="m", repo="r/m", quant="4bit", format="safetensors")
    tgi = plan_launch(art, LaunchOptions(engine="tgi", gpus=(0,)), RTX_CUDA129)
    assert tgi.argv[tgi.argv.index("--quantize") + 1] == "bitsandbytes-nf4"
    art8 = ModelArtifact(model="m", repo="r/m", quant="8bit", format="safetensors")
    assert "eetq" in plan_launch(art8, LaunchOptions(engine="tgi", gpus=(0,)), RTX_CUDA129).argv
    v = plan_launch(art8, LaunchOptions(engine="vllm", gpus=(0,)), RTX_CUDA129)
    assert v.argv[v.argv.index("--quantization") + 1] == "fp8"


@pytest.mark.parametrize(
    ("art", "opts", "exc", "needle"),
    [
        (GGUF, LaunchOptions(engine="tgi", gpus=(0,)), UsageError, "llamacpp"),
        (GGUF, LaunchOptions(engine="vllm", gpus=(0,)), UsageError, "llamacpp"),
        (AWQ, LaunchOptions(engine="llamacpp"), UsageError, "q4_k_m"),
        (AWQ, LaunchOptions(engine="tgi"), LlmopsError, "--engine llamacpp"),
        (AWQ, LaunchOptions(engine="nope", gpus=(0,)), UsageError, "tgi, vllm"),
        (
            AWQ,
            LaunchOptions(engine="tgi", gpus=(0,), runtime="podman"),
            UsageError,
            "docker, native",
        ),
    ],
)
def test_bad_combinations_have_hints(art, opts, exc, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc) as e:
        plan_launch(art, opts, RTX_CUDA129)
    assert needle in (e.value.hint or "")


def test_awq_needs_turing_or_newer() -> None:
    import dataclasses

    old = dataclasses.replace(
        RTX,
        nvidia=dataclasses.replace(
            RTX.nvidia,
            gpus=tuple(dataclasses.replace(g, compute_capability="7.0") for g in RTX.nvidia.gpus),
        ),
    )
    with pytest.raises(UsageError, match="7.5"):
        plan_launch(AWQ, LaunchOptions(engine="vllm", gpus=(0,)), old)
