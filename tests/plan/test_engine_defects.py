"""Engine command lines against each engine's own rules at the pinned version.

One block per defect found in review; each rule is cited in the engine module next to the code
that follows it (vLLM 0.33.0 sdist, TGI v3.3.7, llama.cpp b11434). Every rendered command line
is also checked against the engine's real option table (``tests/support/engine_standin.check_argv``).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from llmops.errors import UsageError
from llmops.hw.facts import GpuInfo, HostFacts, NvidiaFacts
from llmops.plan.engines import llamacpp, tgi, vllm
from llmops.plan.launch import LaunchOptions, LaunchPlan, ModelArtifact, RopeScaling, plan_launch
from llmops.plan.model import RopeScaling as NativeRope
from tests.support.engine_standin import check_argv

# ----------------------------------------------------------------------------- inputs


def host(
    cc: str = "8.6",
    cuda: str | None = "12.9",
    name: str = "NVIDIA RTX A6000",
    n: int = 2,
    driver: str = "575.51.03",
) -> HostFacts:
    gpus = tuple(
        GpuInfo(
            index=i,
            name=name,
            compute_capability=cc,
            memory_total_mib=49140,
            memory_used_mib=0,
            memory_free_mib=49140,
        )
        for i in range(n)
    )
    return HostFacts(
        llmops_version="t",
        collected_at="t",
        nvidia=NvidiaFacts(driver_version=driver, cuda_driver_version=cuda, gpus=gpus),
    )


A6000 = host()  # Ampere 8.6, driver for CUDA 12.9
T4 = host(cc="7.5", name="Tesla T4")
V100 = host(cc="7.0", name="Tesla V100-SXM2-32GB")
H100_124 = host(cc="9.0", cuda="12.4", name="NVIDIA H100 80GB HBM3", driver="550.54.15")
GEFORCE_122 = host(cc="8.6", cuda="12.2", name="NVIDIA GeForce RTX 3090", driver="535.183.01")


def art(quant: str, fmt: str, **kw) -> ModelArtifact:  # type: ignore[no-untyped-def]
    base = {
        "model": "m",
        "repo": f"org/m-{quant}",
        "quant": quant,
        "format": fmt,
        "trained_context": 8192,
        "rope_theta": 500000.0,
    }
    base.update(kw)
    return ModelArtifact(**base)  # type: ignore[arg-type]


BF16 = art("bf16", "safetensors")
FP16 = art("fp16", "safetensors")
AWQ = art("awq", "awq")
GPTQ = art("gptq", "gptq")
FP8_REPO = art("fp8", "fp8")  # a pre-quantized FP8 checkpoint (its own quantization_config)
FP8_LOAD = art("fp8", "safetensors")  # FP8 quantized at load
GGUF = art("q4_k_m", "gguf", file="m-q4_k_m.gguf")
LLAMA31 = art(
    "bf16",
    "safetensors",
    trained_context=131072,
    native_rope=NativeRope(kind="llama3", factor=8.0, original_context=8192),
)


def plan(a: ModelArtifact, engine: str, facts: HostFacts | None = A6000, **kw) -> LaunchPlan:  # type: ignore[no-untyped-def]
    kw.setdefault("gpus", (0,) if engine in ("tgi", "vllm") else ())
    p = plan_launch(a, LaunchOptions(engine=engine, **kw), facts)
    if engine != "torch" and p.runtime == "docker":
        assert check_argv(engine, p.argv) == [], p.argv
    return p


def flag(p: LaunchPlan, name: str) -> str | None:
    argv = list(p.argv)
    return argv[argv.index(name) + 1] if name in argv else None


# --------------------------------------------- 1. pre-quantized repos: the repo's own config


@pytest.mark.parametrize("a", [AWQ, GPTQ, FP8_REPO, art("fp8", "compressed-tensors")])
def test_pre_quantized_repos_get_no_quantization_flag(a: ModelArtifact) -> None:
    """vLLM (config/model.py `_verify_quantization`) and TGI (models/__init__.py `get_model`)
    read quantization_config themselves when the flag is absent; vLLM refuses a mismatch, and
    a pre-quantized "FP8" repo may well say compressed-tensors."""
    assert "--quantization" not in plan(a, "vllm").argv
    assert "--quantize" not in plan(a, "tgi").argv


def test_quantizing_at_load_keeps_its_flag() -> None:
    assert flag(plan(FP8_LOAD, "vllm"), "--quantization") == "fp8"
    # vLLM 0.33.0 has no in-tree bitsandbytes (docs/features/quantization/bnb.md: the
    # vllm-bnb-plugin package; quantization/__init__.py QuantizationMethods lacks it)
    with pytest.raises(UsageError, match="vllm-bnb-plugin"):
        plan(art("4bit", "safetensors"), "vllm")
    assert flag(plan(art("4bit", "safetensors"), "tgi"), "--quantize") == "bitsandbytes-nf4"
    assert flag(plan(art("8bit", "safetensors"), "tgi"), "--quantize") == "eetq"
    assert flag(plan(FP8_LOAD, "tgi"), "--quantize") == "fp8"


# ------------------------------------------------------ 2. no bf16 below compute capability 8


@pytest.mark.parametrize("a", [BF16, AWQ, GPTQ])
def test_turing_gets_fp16_on_vllm_and_tgi(a: ModelArtifact) -> None:
    for engine in ("vllm", "tgi"):
        p = plan(a, engine, T4)
        assert flag(p, "--dtype") == "float16", (engine, p.argv)
        assert any("7.5" in n and "fp16" in n for n in p.notes), p.notes


def test_volta_gets_fp16_on_tgi_and_torch() -> None:
    assert flag(plan(BF16, "tgi", V100), "--dtype") == "float16"
    p = plan(BF16, "torch", V100, gpus=(0,))
    assert flag(p, "--precision") == "fp16"
    assert any("7.0" in n and "fp16" in n for n in p.notes)


def test_ampere_keeps_bf16() -> None:
    assert flag(plan(BF16, "vllm"), "--dtype") == "bfloat16"
    assert flag(plan(BF16, "torch", gpus=(0,)), "--precision") == "bf16"


def test_capability_comes_from_the_selected_gpus() -> None:
    mixed = replace(
        A6000,
        nvidia=replace(
            A6000.nvidia,
            gpus=(A6000.nvidia.gpus[0], replace(T4.nvidia.gpus[1], index=1)),
        ),
    )
    assert flag(plan(BF16, "tgi", mixed, gpus=(0,)), "--dtype") == "bfloat16"
    assert flag(plan(BF16, "tgi", mixed, gpus=(1,)), "--dtype") == "float16"


# ----------------------------------------------------------- 3. kernel gates, as the engines


def test_vllm_fp8_runs_on_turing_through_marlin() -> None:
    """fp8.py Fp8Config.get_min_capability() == 75; below 8.9 the weight-only FP8 Marlin
    kernel (needs 7.5) takes over."""
    assert flag(plan(FP8_LOAD, "vllm", T4), "--quantization") == "fp8"
    plan(FP8_REPO, "vllm", T4)


def test_vllm_refuses_below_turing_for_every_format() -> None:
    for a in (BF16, AWQ, GPTQ, FP8_LOAD):
        with pytest.raises(UsageError, match="7.5") as e:
            plan(a, "vllm", V100)
        assert e.value.hint


def test_tgi_fp8_needs_ampere() -> None:
    """layers/fp8.py + layers/marlin/util.py: FP8 Marlin on 8.x, native FP8 from 8.9/9.x;
    below 8.0 neither exists."""
    with pytest.raises(UsageError, match="8.0") as e:
        plan(FP8_LOAD, "tgi", T4)
    assert e.value.hint
    plan(FP8_LOAD, "tgi", host(cc="8.0", name="NVIDIA A100-SXM4-80GB"))


# ------------------------------------------------------------------- 4. rope on its own base


def _rope(kind: str, factor: float = 2.0, orig: int = 8192) -> RopeScaling:
    return RopeScaling(kind=kind, factor=factor, original_context=orig)


def test_vllm_rope_override_is_rope_parameters_with_the_model_theta() -> None:
    """vLLM 0.20.2 applies dict --hf-overrides after patch_rope_parameters
    (config/model.py), so only `rope_parameters` reaches get_rope, which reads rope_theta
    from it (default 10000)."""
    p = plan(BF16, "vllm", context=16384, rope=_rope("yarn"))
    over = json.loads(flag(p, "--hf-overrides") or "{}")
    assert over == {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 2.0,
            "original_max_position_embeddings": 8192,
            "rope_theta": 500000.0,
        }
    }


def test_native_llama3_scaling_is_never_replaced() -> None:
    for engine in ("vllm", "tgi"):
        with pytest.raises(UsageError, match="llama3") as e:
            plan(LLAMA31, engine, context=262144, rope=_rope("dynamic", 2.0, 131072))
        assert e.value.hint and "131072" in e.value.hint
    gguf = replace(GGUF, trained_context=131072, native_rope=LLAMA31.native_rope)
    with pytest.raises(UsageError, match="llama3"):
        plan(gguf, "llamacpp", context=262144, rope=_rope("yarn", 2.0, 131072))


def test_native_yarn_is_extended_not_replaced() -> None:
    native = NativeRope(kind="yarn", factor=4.0, original_context=32768)
    a = replace(BF16, trained_context=131072, native_rope=native, rope_theta=1000000.0)
    p = plan(a, "vllm", context=262144, rope=_rope("yarn", 2.0, 131072))
    rp = json.loads(flag(p, "--hf-overrides") or "{}")["rope_parameters"]
    assert rp["factor"] == 8.0 and rp["original_max_position_embeddings"] == 32768
    assert rp["rope_theta"] == 1000000.0
    g = plan(replace(GGUF, trained_context=131072, native_rope=native), "llamacpp",
             context=262144, rope=_rope("yarn", 2.0, 131072))  # fmt: skip
    assert flag(g, "--rope-scale") == "8" and flag(g, "--yarn-orig-ctx") == "32768"


def test_tgi_and_llamacpp_keep_the_base_frequency() -> None:
    t = plan(BF16, "tgi", context=16384, rope=_rope("dynamic"))
    assert flag(t, "--rope-scaling") == "dynamic" and flag(t, "--rope-factor") == "2"
    g = plan(GGUF, "llamacpp", context=16384, rope=_rope("yarn"))
    assert "--rope-freq-base" not in g.argv and "--rope-freq-scale" not in g.argv


def test_tgi_refuses_linear_rope_it_would_ignore() -> None:
    """TGI 3.3.5 layers/rotary.py PositionRotaryEmbedding.static: `linear` is a no-op."""
    with pytest.raises(UsageError, match="linear") as e:
        plan(BF16, "tgi", context=16384, rope=_rope("linear"))
    assert "dynamic" in (e.value.hint or "")


# ------------------------------------------------------------ 5. GPU indices mean NVML's


def test_native_gpu_selection_uses_pci_bus_order() -> None:
    for a, engine in ((BF16, "vllm"), (GGUF, "llamacpp"), (BF16, "torch")):
        p = plan(a, engine, runtime="native", gpus=(1,))
        env = dict(p.env)
        assert env["CUDA_VISIBLE_DEVICES"] == "1"
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


# ------------------------------------------------- 6. the image the host driver can start


def test_vllm_image_follows_the_driver() -> None:
    assert plan(BF16, "vllm", host(cuda="13.0")).image == "vllm/vllm-openai:v0.33.0"
    assert plan(BF16, "vllm", host(cuda="12.9")).image == "vllm/vllm-openai:v0.33.0-cu129"
    # the cu129 base admits data-center drivers of the 550 branch (CUDA 12.4) ...
    p = plan(BF16, "vllm", H100_124)
    assert p.image == "vllm/vllm-openai:v0.33.0-cu129"
    assert "VLLM_ENABLE_CUDA_COMPATIBILITY" not in dict(p.env)
    # ... but no GeForce below CUDA 12.9, and no branch it does not list
    with pytest.raises(UsageError, match="12.9") as e:
        plan(BF16, "vllm", GEFORCE_122)
    assert "driver" in (e.value.hint or "")
    with pytest.raises(UsageError, match="12.9"):
        plan(
            BF16,
            "vllm",
            replace(H100_124, nvidia=replace(H100_124.nvidia, driver_version="545.29.06")),
        )


def test_llamacpp_image_follows_the_driver() -> None:
    def image(cuda: str, facts: HostFacts | None = None) -> str:
        return plan(GGUF, "llamacpp", facts or host(cuda=cuda), gpus=(0,)).image or ""

    assert image("13.4") == "ghcr.io/ggml-org/llama.cpp:server-cuda13-b11434"
    assert image("13.0") == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
    assert image("12.8") == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
    assert image("", H100_124) == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"  # 550 listed
    with pytest.raises(UsageError, match="12.8"):
        image("12.4")
    with pytest.raises(UsageError, match="12.8"):
        image("", GEFORCE_122)
    assert plan(GGUF, "llamacpp", None).image == "ghcr.io/ggml-org/llama.cpp:server-b11434"


def test_tgi_image_needs_cuda_12_4_or_a_listed_branch() -> None:
    assert plan(AWQ, "tgi", host(cuda="12.4")).image == tgi.IMAGE
    assert plan(AWQ, "tgi", GEFORCE_122).image == tgi.IMAGE  # its 12.4 base lists 535, GeForce too
    old = host(cuda="12.3", name="NVIDIA GeForce RTX 4090", driver="545.29.06")
    with pytest.raises(UsageError, match="12.4") as e:
        plan(AWQ, "tgi", old)
    assert "--engine" in (e.value.hint or "")


def test_image_versions_are_constants_with_their_source() -> None:
    for mod in (vllm, llamacpp, tgi):
        assert mod.CUDA_IMAGES, mod.__name__
        for img in mod.CUDA_IMAGES:
            assert img.cuda >= (12, 0) and img.source


def test_no_driver_check_for_native_runs_or_an_explicit_image() -> None:
    plan(BF16, "vllm", GEFORCE_122, runtime="native")
    p = plan(BF16, "vllm", GEFORCE_122, image="my/vllm:patched")
    assert p.image == "my/vllm:patched"


# ------------------------------------------------------------------ 7. TGI prefill chunking


def test_tgi_leaves_prefill_to_its_chunking_on_ampere() -> None:
    p = plan(BF16, "tgi", context=32768)
    assert "--max-batch-prefill-tokens" not in p.argv
    assert tgi.RECORD.prefill_tokens == 4096


def test_tgi_without_chunking_gets_prefill_at_least_the_input() -> None:
    p = plan(BF16, "tgi", T4, context=32768)
    assert flag(p, "--max-batch-prefill-tokens") == "32767"


# ------------------------------------------------------------------ 8. --kv-dtype reaches it


def test_kv_dtype_flags() -> None:
    assert flag(plan(BF16, "vllm", kv_dtype="fp8"), "--kv-cache-dtype") == "fp8"
    assert flag(plan(BF16, "vllm", kv_dtype="bf16"), "--kv-cache-dtype") == "bfloat16"
    assert flag(plan(BF16, "tgi", kv_dtype="fp8"), "--kv-cache-dtype") == "fp8_e4m3fn"
    g = plan(GGUF, "llamacpp", kv_dtype="q8_0")
    assert flag(g, "-ctk") == "q8_0" and flag(g, "-ctv") == "q8_0"
    assert flag(g, "-fa") == "on"  # llama-context.cpp: a quantized V cache needs flash attention
    f = plan(GGUF, "llamacpp", kv_dtype="fp16")
    assert flag(f, "-ctk") == "f16" and "-fa" not in f.argv
    assert "--kv-cache-dtype" not in plan(BF16, "vllm").argv


@pytest.mark.parametrize(
    ("a", "engine", "kv"),
    [
        (BF16, "vllm", "q8_0"),
        (BF16, "tgi", "q4_0"),
        (GGUF, "llamacpp", "fp8"),
        (BF16, "torch", "fp16"),
    ],
)
def test_kv_dtype_an_engine_lacks_is_refused_with_the_list(
    a: ModelArtifact, engine: str, kv: str
) -> None:
    with pytest.raises(UsageError, match=kv) as e:
        plan(a, engine, kv_dtype=kv)
    assert "auto" in (e.value.hint or "")


def test_tgi_kv_cache_follows_the_model_dtype() -> None:
    p = plan(FP16, "tgi", kv_dtype="fp16")
    assert flag(p, "--dtype") == "float16" and "--kv-cache-dtype" not in p.argv
    with pytest.raises(UsageError, match="dtype"):
        plan(BF16, "tgi", kv_dtype="fp16")


# ----------------------------------------------------------- 9. compose runs as written


def test_compose_takes_secrets_from_the_environment() -> None:
    from llmops.plan.compose import render_compose

    gated = replace(BF16, gated=True)
    p = plan(gated, "vllm", host(cuda="12.9"), hf_token=True, name="l")
    text = render_compose(p, secrets_file="/nowhere/secrets.env")
    svc = yaml.safe_load(text)["services"]["l"]
    assert "env_file" not in svc
    env = svc["environment"]
    assert env["VLLM_API_KEY"].startswith("${LLMOPS_API_KEY:?")
    assert env["HF_TOKEN"].startswith("${HF_TOKEN:?")
    assert "LLMOPS_API_KEY" in text.split("services:")[0]  # the header says how to set it
    # a token for a public model is optional: empty when unset
    p2 = plan(BF16, "vllm", host(cuda="12.9"), hf_token=True, name="l")
    env2 = yaml.safe_load(render_compose(p2, secrets_file="/x"))["services"]["l"]["environment"]
    assert env2["HF_TOKEN"] == "${HF_TOKEN:-}"
