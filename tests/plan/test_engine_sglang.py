"""SGLang, the fourth GPU engine: what llmops renders for it, checked against SGLang 0.5.23's
own parser (tests/fixtures/engines/sglang.json, extracted from ServerArgs.add_cli_args), and
where the one decision puts it (after vLLM, before TGI, which is never the default)."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest
import yaml

from llmops.errors import UsageError
from llmops.plan.compose import render_compose
from llmops.plan.deploy import GPU_PASSES, Request, decide
from llmops.plan.engines import RECORDS, sglang
from llmops.plan.k8s import K8sOptions, render_k8s
from llmops.plan.launch import LaunchOptions, LaunchPlan, plan_launch
from llmops.plan.render import secrets_file
from tests.plan.test_decision import hw, model
from tests.plan.test_engine_defects import AWQ, BF16, FP8_REPO, art, host
from tests.support.engine_standin import check_argv, fixture, sh_words

H100_13 = host(cc="9.0", cuda="13.0", name="NVIDIA H100 80GB HBM3", driver="580.65.06")


def plan(a, o: LaunchOptions | None = None, facts=H100_13) -> LaunchPlan:  # type: ignore[no-untyped-def]
    return plan_launch(a, o or LaunchOptions(engine="sglang", gpus=(0,)), facts)


def words(p: LaunchPlan) -> list[str]:
    return sh_words(p.argv)


def flag(p: LaunchPlan, name: str) -> str | None:
    w = words(p)
    return w[w.index(name) + 1] if name in w else None


@pytest.mark.parametrize(
    ("a", "opts"),
    [
        (BF16, {}),
        (AWQ, {"gpus": (0, 1)}),
        (FP8_REPO, {"kv_dtype": "fp8"}),
        (art("4bit", "safetensors"), {}),
        (art("fp8", "safetensors"), {}),
        (replace(BF16, trust_remote_code=True), {"kv_dtype": "bf16"}),
        (BF16, {"extra_args": ("--max-running-requests", "8")}),
    ],
)
def test_every_variant_is_a_command_line_sglang_accepts(a, opts) -> None:  # type: ignore[no-untyped-def]
    o = LaunchOptions(engine="sglang", gpus=(0,), context=8192)
    p = plan(a, replace(o, **opts))
    assert check_argv("sglang", p.argv) == []
    assert p.entrypoint == ("/bin/sh",) and p.argv[0] == "-c"
    assert flag(p, "--model-path") == a.repo and flag(p, "--context-length") == "8192"
    assert flag(p, "--tp-size") == str(len(opts.get("gpus", (0,))))


def test_flags_follow_the_artifact() -> None:
    assert flag(plan(art("4bit", "safetensors")), "--quantization") == "bitsandbytes"
    assert flag(plan(art("fp8", "safetensors")), "--quantization") == "fp8"
    for pre in (AWQ, FP8_REPO):  # the repo's own quantization_config decides
        assert flag(plan(pre), "--quantization") is None
    assert flag(plan(BF16), "--dtype") == "bfloat16"
    kv = plan(BF16, LaunchOptions(engine="sglang", gpus=(0,), kv_dtype="fp8"))
    assert flag(kv, "--kv-cache-dtype") == "fp8_e4m3"
    assert "--trust-remote-code" not in words(plan(BF16))
    assert "--trust-remote-code" in words(plan(replace(BF16, trust_remote_code=True)))


def test_the_key_is_expanded_inside_the_container_never_rendered() -> None:
    p = plan(BF16)
    assert '--api-key "$SGLANG_API_KEY"' in p.argv[1]
    assert [s.env for s in p.secret_env if s.secret == "api_key"] == ["SGLANG_API_KEY"]
    # sh -c runs it: the shell turns the reference into the key, and extra args follow "$@"
    line = shlex.split(p.argv[1])
    assert line[:4] == ["exec", "python3", "-m", "sglang.launch_server"] and line[-1] == "$@"
    extra = plan(BF16, LaunchOptions(engine="sglang", gpus=(0,), extra_args=("--x", "1")))
    assert extra.argv[2:] == ("sglang", "--x", "1")
    nokey = plan(BF16, LaunchOptions(engine="sglang", gpus=(0,), api_key=False))
    assert "--api-key" not in nokey.argv[1]


def test_readiness_and_auth_match_its_http_server() -> None:
    doc = fixture("sglang")
    assert doc["http_auth"]["public_prefixes"] == ["/health", "/ready", "/metrics"]
    assert doc["http_auth"]["env"] is None  # hence the sh -c
    p = plan(BF16)
    assert p.health.path == "/health" and p.health.loading_status == (503,)
    assert p.health.needs_auth_for_ready  # /v1/models needs the key


def test_refusals_say_what_to_do() -> None:
    with pytest.raises(UsageError, match="CUDA 13.0"):
        plan(BF16, facts=host(cuda="12.9"))
    with pytest.raises(UsageError, match="compute capability"):
        plan(BF16, facts=host(cc="7.0", cuda="13.0"))
    with pytest.raises(UsageError, match="GGUF") as e:
        plan(art("q4_k_m", "gguf", file="m.gguf"))
    assert "--engine llamacpp" in (e.value.hint or "")
    turing = host(cc="7.5", cuda="13.0", name="Tesla T4")
    assert flag(plan(BF16, facts=turing), "--dtype") == "float16"  # no bf16 below 8.0


def test_record_pins_version_image_and_cuda() -> None:
    r = RECORDS["sglang"]
    assert r.version == fixture("sglang")["version"] == "0.5.23"
    assert r.checked and r.min_driver_cuda == "13.0" and r.needs_gpu and r.tensor_parallel
    assert sglang.IMAGE == "lmsysorg/sglang:v0.5.23-cu130"


def test_decision_order_sglang_after_vllm_and_tgi_never_first() -> None:
    assert GPU_PASSES[0] == ("vllm", "sglang", "llamacpp") and GPU_PASSES[1] == ("tgi",)
    d = decide(Request(model="mistral7b"), model("mistral7b"), hw("1x24GB"))
    assert d.engine == "vllm"
    d = decide(Request(model="mistral7b", engine="sglang"), model("mistral7b"), hw("1x24GB"))
    assert d.engine == "sglang" and d.plan is not None
    for spec in ("1x8GB", "1x24GB", "2x24GB", "1x80GB"):
        for m in ("mistral7b", "llama3.1-8b"):
            assert decide(Request(model=m), model(m), hw(spec)).engine != "tgi"


def test_compose_and_k8s_carry_the_command_and_no_key() -> None:
    p = plan(AWQ, LaunchOptions(engine="sglang", name="s", gpus=(0, 1), context=8192))
    doc = yaml.safe_load(render_compose(p, secrets_file=secrets_file(p, "/d")))
    svc = next(iter(doc["services"].values()))
    assert svc["entrypoint"] == ["/bin/sh"]
    # compose interpolates $VAR itself: the reference must reach the shell as written
    assert svc["command"][1].replace("$$", "$") == p.argv[1]
    assert "$$SGLANG_API_KEY" in svc["command"][1]
    docs = list(yaml.safe_load_all(render_k8s(p, K8sOptions())))
    c = next(d for d in docs if d and d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert c["command"] == ["/bin/sh"] and c["args"][1] == p.argv[1]
    envs = {e["name"]: e for e in c.get("env", [])}
    assert "secretKeyRef" in envs["SGLANG_API_KEY"]["valueFrom"]


# ----------------------------------------------------------------------------- memory
# SGLang 0.5.23 (the PyPI wheel), python/sglang/srt/arg_groups/memory_hook.py
# `handle_gpu_memory_settings`, worked by hand for a text model, tp 1:
#   chunked_prefill_size, decode max_bs: < 20 GiB 2048, 8; < 35 GiB 4096, 48 (l.89-117)
#   prefill capture sizes (cuda_graph_hook.py `generate_prefill_cuda_graph_batch_sizes`, max_bs
#   = chunked_prefill_size): 4..32 step 4 (8), 48..256 step 16 (14), 288..512 step 32 (8),
#   576..1024 step 64 (8), 1280..4096 step 256 (4 up to 2048, 12 up to 4096), 4608.. step 512
#   (8 up to 8192): 42, 50, 58
#   reserved = 512 + max(chunk, 2048) x 1.5 + tp/8 x 1024 + max_bs x 2 + sizes x 8 (l.309-313,
#   `reserve_for_graph_mb` l.368, l.386); >= 10 GiB above 60 GiB (l.314-315)
#   mem_fraction_static = round((gpu - reserved) / gpu, 3) (l.324-328)
CARDS = [
    # --hw, nvidia-smi memory.total MiB, reserved MiB, fraction
    ("1x8GB", 8192, 512 + 2048 * 1.5 + 128 + 8 * 2 + 42 * 8, 0.504),  # 4128/8192 = 0.5039
    ("1x12GB", 12288, 4064, 0.669),  # 8224/12288 = 0.6693
    ("1x16GB", 16384, 4064, 0.752),  # 12320/16384 = 0.7520
    ("1xRTX4090", 24564, 512 + 4096 * 1.5 + 128 + 48 * 2 + 50 * 8, 0.704),  # 17284/24564
    ("1xH100", 81559, 512 + 8192 * 1.5 + 128 + 256 * 2 + 58 * 8, 0.830),  # 67655/81559
]


@pytest.mark.parametrize(("gpu_mib", "reserved", "frac"), [c[1:] for c in CARDS])
def test_mem_fraction_static_is_sglangs_own(gpu_mib: int, reserved: float, frac: float) -> None:
    sm = sglang.static_memory(gpu_mib)
    assert sm.reserved_mib == reserved and sm.mem_fraction_static == frac


def test_capture_sizes_and_card_tiers() -> None:
    assert [len(sglang.prefill_capture_sizes(n)) for n in (2048, 4096, 8192)] == [42, 50, 58]
    assert sglang.capacity_defaults(16384, 1) == (2048, 8)
    assert sglang.capacity_defaults(24564, 1) == (4096, 48)
    assert sglang.capacity_defaults(24564, 4) == (4096, 160)
    assert sglang.capacity_defaults(40960, 1) == (4096, 32)
    assert sglang.capacity_defaults(143771, 8) == (8192, 512)  # H200
    assert sglang.capacity_defaults(183359, 8) == (16384, 512)  # B200


@pytest.mark.parametrize(("hw_", "gpu_mib", "frac"), [(c[0], c[1], c[3]) for c in CARDS])
def test_fit_gives_weights_and_kv_what_sglang_gives_them(
    hw_: str, gpu_mib: int, frac: float
) -> None:
    """kv_cache_configurator.py `_profile_available_bytes`: the KV pool is the free memory
    after loading minus pre_model_load_memory x (1 - mem_fraction_static), the baseline taken
    after CUDA init (distributed/bootstrap.py `measure_pre_model_load_memory`); activations
    and CUDA graphs come later, out of that slack. So weights + KV get exactly
    (capacity - CUDA context) x fraction, nothing else charged."""
    from llmops.plan.hardware import MIB
    from llmops.plan.memory import CUDA_CONTEXT_BYTES
    from tests.plan.test_estimator_arch import fit

    r = fit("qwen3-0.6b", "bf16", "sglang", 4096, hw_)
    row = r.per_gpu[0]
    assert row.capacity_bytes == gpu_mib * MIB
    assert row.activation_bytes == 0 and row.overhead_bytes == CUDA_CONTEXT_BYTES
    pre = gpu_mib * MIB - CUDA_CONTEXT_BYTES
    assert row.reserve_bytes == int(pre * (1 - frac))
    budget = row.usable_bytes - row.overhead_bytes  # what weights + KV may take
    assert abs(budget - pre * frac) <= 1
    # the longest context is what SGLang's pool would hold (kv per token: 28 layers x 8 KV
    # heads x 128 x 2 x 2 B), to a 256-token step
    tokens = (budget - row.weights_bytes) // (28 * 8 * 128 * 2 * 2)
    assert tokens - 256 < r.max_context <= tokens or r.max_context == r.trained_context


def test_small_cards_are_no_longer_vllm_sized() -> None:
    """Before, SGLang was planned like vLLM (0.90 of the card, 1 GiB of overhead). On 8 GiB
    SGLang gives weights + KV (8192 - 512 MiB) x 0.504 = 3.78 GiB, so Mistral-7B AWQ (4.15 GB of
    weights), which vLLM serves there at 14k tokens, does not start on SGLang without
    --mem-fraction-static; on 12 GiB both serve it, SGLang with less context."""
    from tests.plan.test_estimator_arch import fit

    v, s = (fit("mistral7b", "awq", e, 4096, "1x8GB") for e in ("vllm", "sglang"))
    assert v.fits and not s.fits and s.max_context == 0
    budget = s.per_gpu[0].usable_bytes - s.per_gpu[0].overhead_bytes
    assert budget == pytest.approx((8192 - 512) * 1024**2 * 0.504, abs=1)
    assert s.per_gpu[0].weights_bytes > budget
    v, s = (fit("mistral7b", "awq", e, 4096, "1x12GB") for e in ("vllm", "sglang"))
    assert v.fits and s.fits and s.max_context < v.max_context


def test_tensor_parallel_mla_and_multimodal_fractions() -> None:
    """tp 8 on H100 (memory_hook.py l.141-145: max_bs 512 from tp 4), MLA (l.238: prefill
    max_bs min(8192, chunk); reserve_for_graph_mb l.389: 1.5 GiB instead of 8 per size):
    512 + 12288 + 8/8 x 1024 + 512 x 2 + 1536 = 16384; (81559 - 16384) / 81559 = 0.7991.
    Gemma 3 (Gemma3ForConditionalGeneration, multimodal): no prefill graph (cuda_graph_hook.py
    "multimodal model" rule), 512 + 6144 + 128 + 96 = 6880 on a 4090 -> 0.720, then
    `adjust_mem_fraction_for_vlm` (l.417-462): SigLIP 27 layers of 1152 -> complexity
    27 x 1152^2 / (24 x 1024^2) = 1.4238, factor 0.95 x (1 - 0.1 x 0.4238) = 0.90974."""
    from tests.plan.test_estimator_arch import CAT, fit

    ds = sglang.static_memory(81559, 8, mla=True)
    assert ds.reserved_mib == 16384 and ds.mem_fraction_static == 0.799
    g = CAT.get("gemma3-27b").arch
    assert g.multimodal and (g.vision_layers, g.vision_hidden) == (27, 1152)
    mm = sglang.static_memory(24564, multimodal=True, vision=(27, 1152))
    assert mm.reserved_mib == 6880 and mm.prefill_graph_sizes == 0
    assert mm.mem_fraction_static == pytest.approx(0.720 * 0.95 * (1 - 0.1 * 0.423828125))
    r = fit("deepseek-r1", "awq", "sglang", 8192, "8xH100")
    assert r.tensor_parallel == 8
    row = r.per_gpu[0]
    pre = row.capacity_bytes - row.overhead_bytes  # CUDA context + NCCL
    assert row.reserve_bytes == int(pre * (1 - 0.799))


def test_local_layers_follow_sglangs_pools() -> None:
    """configs/model_config.py `is_hybrid_swa_model`: gpt-oss (GptOssForCausalLM) and Llama 4
    (Llama4ForConditionalGeneration) get the hybrid pool, whose local layers hold
    swa_full_tokens_ratio 0.8 x the full layers' tokens (fields/schedule.py fallback 0.8;
    pool_configurator.py `_solve_pool_sizes`); Gemma 3 has it switched off
    (model_overrides/gemma2_gemma3.py: disable_hybrid_swa_memory), so all 62 layers hold the
    whole context."""
    from tests.plan.test_estimator_arch import CAT, fit, kv_layer

    o = CAT.get("gpt-oss-20b").arch
    r = fit("gpt-oss-20b", "bf16", "sglang", 32768, "1x48GB")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(o) * (12 * 32768 + 12 * int(32768 * 0.8))
    g = CAT.get("gemma3-12b").arch
    r = fit("gemma3-12b", "bf16", "sglang", 8192, "1x80GB")
    assert r.per_gpu[0].kv_cache_bytes == kv_layer(g) * g.layers * 8192
    s = CAT.get("llama4-scout").arch
    r = fit("llama4-scout", "bf16", "sglang", 32768, "8xH100")
    # 218 GB of bf16 weights: four H100s would hold them, but SGLang keeps only
    # mem_fraction_static x 0.79 of each (the vision tower's factor, test below), too little
    # beside 54.5 GB of weights a card, so eight
    assert r.tensor_parallel == 8
    assert not fit("llama4-scout", "bf16", "sglang", 32768, "4xH100").fits
    per = 2 * (8 // 8) * 128 * 2  # 8 KV heads over tp 8
    assert r.per_gpu[0].kv_cache_bytes == per * (12 * 32768 + 36 * int(32768 * 0.8))
    assert s.local_kind == "chunked" and len(s.local_layers) == 36


def test_llama4_and_mistral_small_carry_their_vision_towers() -> None:
    """The catalog's Llama 4 and Mistral Small 3.x entries carry vision_config (Llama 4: 34
    layers of 1408, the tower both checkpoints share; Mistral Small 3.1/3.2: Pixtral, 24 of
    1024), so SGLang's `adjust_mem_fraction_for_vlm` sees the real tower: Llama 4's complexity
    34 x 1408^2 / (24 x 1024^2) = 2.6784 gives 0.95 x max(0.8, 1 - 0.1 x 1.6784) = 0.79056,
    not the 0.95 a missing vision_config reads as; Pixtral is ViT-L/14's size, so 0.95."""
    from tests.plan.test_estimator_arch import CAT

    for name in ("llama4-scout", "llama4-maverick"):
        a = CAT.get(name).arch
        assert a.multimodal and (a.vision_layers, a.vision_hidden) == (34, 1408), name
    assert sglang.vlm_factor(34, 1408) == pytest.approx(0.95 * (1 - 0.1 * 1.678385416))
    for name in ("mistral-small-3.1", "mistral-small-3.2"):
        a = CAT.get(name).arch
        assert a.multimodal and (a.vision_layers, a.vision_hidden) == (24, 1024), name
    assert sglang.vlm_factor(24, 1024) == pytest.approx(0.95)
