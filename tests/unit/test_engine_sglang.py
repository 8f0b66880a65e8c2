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
from tests.engine_standin import check_argv, fixture, sh_words
from tests.unit.test_decision import hw, model
from tests.unit.test_engine_defects import AWQ, BF16, FP8_REPO, art, host

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
