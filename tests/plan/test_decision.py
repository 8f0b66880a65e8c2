"""The one decision (llmops.plan.deploy): each defect the decision-core issue lists, as it was
reported, and what a user of `fit`, `render`, `up`, `recommend` and `pull` sees now."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from llmops.catalog.recipes import catalog
from llmops.cli import app, deps
from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import DockerFacts, HostFacts, NvidiaFacts, SystemFacts
from llmops.plan.deploy import HostCaps, Request, ResolvedModel, decide
from llmops.plan.hardware import facts_from_hw, parse_hw
from llmops.plan.model import WeightInventory

CPU_HOST = HostFacts(
    llmops_version="test",
    collected_at="",
    source="test",
    nvidia=NvidiaFacts(gpus=(), error="no NVIDIA driver"),
    system=SystemFacts(ram_total_mib=32768, ram_available_mib=30000, cpu_model="test CPU"),
    docker=DockerFacts(reachable=True, runtimes=("runc",)),
)


def hw(spec: str) -> HostFacts:
    base = HostFacts(
        llmops_version="test",
        collected_at="",
        source=f"hw:{spec}",
        docker=DockerFacts(reachable=True, runtimes=("nvidia", "runc")),
    )
    return facts_from_hw(parse_hw(spec), base)


def model(name: str) -> ResolvedModel:
    return ResolvedModel(catalog().get(name))


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env={"HF_TOKEN": "hf_" + "x" * 20})


@pytest.fixture
def cpu_host(monkeypatch: pytest.MonkeyPatch) -> HostFacts:
    """This host, as a 32 GiB CPU-only box with a Docker engine."""
    monkeypatch.setattr(deps, "collect_facts", lambda *a, **k: CPU_HOST)
    return CPU_HOST


# ------------------------------------------------------------------ the headline commands


def test_up_4bit_dry_run_on_a_cpu_host_plans_llamacpp_q4_k_m(cpu_host: HostFacts) -> None:
    """Was: `error: llamacpp does not serve 4bit`."""
    r = run("up", "mistral7b", "--quant", "4bit", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["plan"]["engine"] == "llamacpp" and doc["plan"]["quant"] == "q4_k_m"
    assert doc["fit"]["artifact"]["format"] == "GGUF Q4_K_M"
    assert doc["fit"]["artifact"]["file"].endswith("Q4_K_M.gguf")
    text = run("up", "mistral7b", "--quant", "4bit", "--dry-run")
    assert "GGUF Q4_K_M on llamacpp" in text.stderr


def test_render_llamacpp_8bit_is_q8_0() -> None:
    """Was: `llamacpp does not serve 8bit`."""
    r = run("render", "mistral7b", "-e", "llamacpp", "-q", "8bit", "--hw", "cpu:32GB", "-f", "json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)["plan"]
    assert plan["quant"] == "q8_0" and plan["file"].endswith("Q8_0.gguf")


def test_render_8bit_on_a_gpu_uses_an_engine_that_serves_it() -> None:
    """Was: `vllm does not serve 8bit` (the default engine ignored the quant)."""
    r = run("render", "mistral7b", "-q", "8bit", "--hw", "1x24GB", "-f", "json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)["plan"]
    assert (plan["engine"], plan["quant"]) == ("vllm", "fp8")


def test_fit_and_render_agree_on_8bit_on_24gb() -> None:
    """Was: fit said it fits (torch), render refused."""
    f = run("fit", "mistral7b", "--quant", "8bit", "--hw", "1x24GB", "--json")
    r = run("render", "mistral7b", "--quant", "8bit", "--hw", "1x24GB", "-f", "json")
    assert f.exit_code == 0 and r.exit_code == 0, f.output + r.output
    fd, plan = json.loads(f.stdout), json.loads(r.stdout)["plan"]
    assert (fd["engine"], fd["quant"], fd["context"]) == (
        plan["engine"],
        plan["quant"],
        plan["context"],
    )


def test_hw_cpu_means_this_hosts_ram_in_fit_and_render(cpu_host: HostFacts) -> None:
    """Was: fit used this machine's RAM, render said the RAM is unknown."""
    f = run("fit", "smollm2-135m", "--hw", "cpu", "--json")
    r = run("render", "smollm2-135m", "--hw", "cpu", "-f", "json")
    assert f.exit_code == 0 and r.exit_code == 0, f.output + r.output
    fd = json.loads(f.stdout)
    assert fd["per_gpu"][0]["capacity_bytes"] == 32768 * 2**20
    assert json.loads(r.stdout)["plan"]["context"] == fd["context"]


def test_a_hub_repo_is_sized_by_its_real_bytes_in_every_command() -> None:
    """Was: fit sized real tensor bytes, up/render computed bytes."""
    spec = catalog().get("mistral7b")
    real = WeightInventory(
        embed_bytes=1,
        lm_head_bytes=1,
        layer_bytes=(3 * 2**30,) * 32,
        other_bytes=0,
        tied=False,
        source="safetensors:org/m",
    )
    hub = ResolvedModel(replace(spec, name="org/m"), "bf16", real, "hub")
    d = decide(Request(model="org/m", quant="bf16"), hub, hw("1x80GB"))
    assert d.report.weights_source == "safetensors:org/m"
    assert d.report.weights_total_bytes == real.total_bytes


# ------------------------------------------------------------------ quant words


@pytest.mark.parametrize(
    ("engine", "word", "quant", "repo_part"),
    [
        ("vllm", "4bit", "awq", "AWQ"),
        ("tgi", "4bit", "awq", "AWQ"),
        ("llamacpp", "4bit", "q4_k_m", "GGUF"),
        ("torch", "4bit", "4bit", "mistralai/"),
        ("vllm", "8bit", "fp8", "mistralai/"),
        ("llamacpp", "8bit", "q8_0", "GGUF"),
        ("torch", "8bit", "8bit", "mistralai/"),
    ],
)
def test_quant_words_mean_each_engines_artifact(
    engine: str, word: str, quant: str, repo_part: str
) -> None:
    d = decide(
        Request(model="mistral7b", engine=engine, quant=word), model("mistral7b"), hw("1x80GB")
    )
    assert d.artifact.quant == quant and repo_part in d.artifact.repo
    assert d.plan is not None and d.plan.quant == quant


def test_gptq_when_no_awq_is_published() -> None:
    d = decide(
        Request(model="falcon-7b", engine="vllm", quant="4bit"), model("falcon-7b"), hw("1x24GB")
    )
    assert d.artifact.quant == "gptq" and d.artifact.label == "GPTQ 4-bit"


def test_no_quant_picks_the_best_that_fits_70b_on_2x24gb() -> None:
    """Not "rent 4 nodes": AWQ (or Q4_K_M) with its whole trained context."""
    d = decide(Request(model="llama2-70b"), model("llama2-70b"), hw("2x24GB"))
    assert d.fits and d.artifact.quant in ("awq", "gptq", "q4_k_m")
    assert d.context >= 4096 and d.gpus == (0, 1)
    assert any("does not fit" in p for p in d.passed_over)  # it says what it passed over


def test_torch_bitsandbytes_is_never_chosen_on_a_cpu() -> None:
    with pytest.raises(LlmopsError, match="needs a GPU"):
        decide(
            Request(model="mistral7b", engine="torch", quant="4bit"), model("mistral7b"), CPU_HOST
        )


def test_up_here_does_not_pick_what_this_host_cannot_run() -> None:
    """Native runtime without llama-server or the backend: a clear refusal naming what is
    missing, not a plan that fails at start."""
    native = replace(CPU_HOST, docker=DockerFacts(reachable=False))
    caps = HostCaps(planning=False, llama_server=False, backend=False)
    with pytest.raises(LlmopsError, match="llama-server` is not on PATH"):
        decide(Request(model="mistral7b", quant="4bit"), model("mistral7b"), native, caps)
    ok = decide(
        Request(model="mistral7b", quant="4bit"),
        model("mistral7b"),
        native,
        replace(caps, llama_server=True),
    )
    assert ok.engine == "llamacpp" and ok.runtime == "native"


def test_torch_int8_needs_bitsandbytes_natively() -> None:
    caps = HostCaps(planning=False, backend=True, bitsandbytes=False)
    native = replace(hw("1x24GB"), docker=DockerFacts(reachable=False))
    with pytest.raises(LlmopsError, match="bitsandbytes is not installed"):
        decide(
            Request(model="mistral7b", engine="torch", quant="8bit"),
            model("mistral7b"),
            native,
            caps,
        )


# ------------------------------------------------------------------ gated, suggestions, hints


def test_gated_is_a_property_of_the_repo() -> None:
    m = model("llama3.1-8b")
    own = decide(Request(model="llama3.1-8b", engine="vllm", quant="bf16"), m, hw("1x80GB"))
    awq = decide(Request(model="llama3.1-8b", engine="vllm", quant="awq"), m, hw("1x80GB"))
    gguf = decide(Request(model="llama3.1-8b", engine="llamacpp", quant="q4_k_m"), m, hw("1x80GB"))
    assert own.artifact.gated and not awq.artifact.gated and not gguf.artifact.gated
    assert not any("gated" in w for w in awq.warnings)
    assert any(s.env == "HF_TOKEN" for s in own.plan.secret_env) if own.plan else False


def test_fp16_is_never_offered_as_smaller_than_bf16() -> None:
    r = run("fit", "llama3.1-70b", "--quant", "bf16", "--engine", "vllm", "--hw", "2x24GB")
    assert r.exit_code == 3
    assert "--quant fp16" not in r.output
    assert "smaller quant" in r.output


def test_gpus_hints_speak_of_indices() -> None:
    r = run("render", "mistral7b", "--gpus", "7", "--hw", "2x24GB")
    assert r.exit_code == 2
    assert "GPU index 7" in r.stderr and "indices present: 0, 1" in r.stderr
    bad = run("render", "mistral7b", "--gpus", "first", "--hw", "2x24GB")
    assert bad.exit_code == 2 and "indices" in bad.stderr


def test_kv_dtype_reaches_the_plan() -> None:
    r = run(
        "render", "mistral7b", "-e", "vllm", "--kv-dtype", "fp8", "--hw", "1x80GB", "-f", "json"
    )
    assert r.exit_code == 0, r.output
    argv = json.loads(r.stdout)["plan"]["argv"]
    assert "--kv-cache-dtype" in argv
    f = run("fit", "mistral7b", "-e", "vllm", "--kv-dtype", "fp8", "--hw", "1x80GB", "--json")
    assert json.loads(f.stdout)["kv_dtype"] == "fp8"


def test_unknown_words_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown quantization"):
        decide(Request(model="mistral7b", quant="3bit"), model("mistral7b"), hw("1x24GB"))
    with pytest.raises(UsageError, match="unknown engine"):
        decide(Request(model="mistral7b", engine="mlc-llm"), model("mistral7b"), hw("1x24GB"))


def test_recommend_never_offers_a_cramped_plan_when_a_useful_one_exists() -> None:
    """No row at a short context or above 95 % of memory while other models give a useful
    one; every row is what `up MODEL --context N` (its command) would start there."""
    from llmops.plan.recommend import recommend

    for spec in ("1x8GB", "1x24GB", "2x24GB"):
        rows = recommend(catalog().models, hw(spec), limit=0)
        assert rows, spec
        for r in rows:
            useful = min(4096, r.report.trained_context)
            assert r.context >= useful, (spec, r.model, r.context)
            assert all(d.total_bytes <= 0.95 * d.usable_bytes for d in r.report.per_gpu)
            d = decide(Request(model=r.model, context=r.context), model(r.model), hw(spec))
            assert (d.engine, d.artifact.quant, d.context) == (r.engine, r.quant, r.context)
    cpu = recommend(catalog().models, hw("cpu:32GB"), limit=0)
    assert cpu and all(r.engine in ("llamacpp", "torch") for r in cpu)
    assert not any(r.quant in ("4bit", "8bit") and r.engine == "torch" for r in cpu)
