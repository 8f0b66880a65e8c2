"""Recipes load and validate; names resolve; broken files fail with file, field, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.catalog import recipes
from llmops.catalog.recipes import RecipeError, UnknownModelError, load_catalog, load_file
from llmops.errors import UsageError
from llmops.plan.artifacts import check_quant
from llmops.plan.artifacts import model_quants as available_quants

ISSUE_MODELS = [
    "mistral7b",
    "mixtral8x7b",
    "llama2-7b",
    "llama2-13b",
    "llama2-70b",
    "llama3.1-8b",
    "llama3.1-70b",
    "codellama-34b",
    "yi-34b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "qwen2-1.5b",
    "gemma2-2b",
    "gemma2-9b",
    "phi3-mini",
    "yi-6b",
    "stablelm-3b",
    "falcon-7b",
    "falcon-40b",
    "mpt-30b",
    "vicuna-33b",
    "pythia-12b",
    "gpt-neox-20b",
    "mythomax-l2-13b",
    "smollm2-135m",
]


@pytest.fixture(autouse=True)
def _fresh_catalog() -> None:
    recipes.reset_cache()


def test_catalog_has_every_model_the_issue_and_seeds_name() -> None:
    cat = load_catalog()
    assert set(ISSUE_MODELS) <= set(cat.names())
    # seeds: Mistral7B, Mixtral8x7B (000); MythoMax-L2-13B-GPTQ (001)
    assert cat.resolve("Mistral7B").name == "mistral7b"
    assert cat.resolve("Mixtral8x7B").name == "mixtral8x7b"
    assert cat.resolve("TheBloke/MythoMax-L2-13B-GPTQ").name == "mythomax-l2-13b"


@pytest.mark.parametrize(
    "query",
    [
        "mistral7b",
        "Mistral7B",
        "mistral-7b",
        "MISTRAL_7B",
        "mistralai/Mistral-7B-Instruct-v0.2",
        "TheBloke/Mistral-7B-Instruct-v0.2-GGUF",
        "mistral",
    ],
)
def test_aliases_resolve(query: str) -> None:
    assert load_catalog().resolve(query).name == "mistral7b"


def test_unknown_model_suggests_nearest() -> None:
    with pytest.raises(UnknownModelError) as e:
        load_catalog().resolve("mistrl-7b")
    assert "mistral7b" in (e.value.hint or "")
    assert e.value.exit_code == 2


def test_architecture_numbers() -> None:
    cat = load_catalog()
    m = cat.get("mixtral8x7b").arch
    assert (m.layers, m.hidden_size, m.kv_heads, m.experts, m.experts_active) == (32, 4096, 8, 8, 2)
    l3 = cat.get("llama3.1-8b").arch
    assert l3.rope_scaling is not None and l3.rope_scaling.factor == 8.0
    assert l3.rope_scaling.original_context == 8192 and l3.trained_context == 131072
    g = cat.get("gemma2-2b").arch
    assert g.head_dim == 256 and g.tied_embeddings and g.sliding_window == 4096
    f = cat.get("falcon-7b").arch
    assert f.kv_heads == 1 and f.mlp == "plain" and f.trained_context == 2048
    assert cat.get("mpt-30b").arch.position == "alibi"
    assert cat.get("qwen2.5-7b").arch.qkv_bias
    assert cat.get("gpt-neox-20b").arch.mlp_bias
    assert cat.get("llama2-7b").gated and not cat.get("mistral7b").gated


def test_quant_availability() -> None:
    cat = load_catalog()
    assert "gptq" in available_quants(cat.get("mistral7b"))
    assert "q4_k_m" not in available_quants(cat.get("gpt-neox-20b"))
    with pytest.raises(UsageError) as e:
        check_quant(cat.get("gpt-neox-20b"), "q4_k_m")
    assert "fp16" in (e.value.hint or "") and "available" in (e.value.hint or "")
    with pytest.raises(UsageError, match="unknown quantization"):
        check_quant(cat.get("mistral7b"), "q3_xx")


GOOD = """
models:
  tiny:
    config: {model_type: llama, hidden_size: 64, intermediate_size: 128, num_attention_heads: 4,
             num_hidden_layers: 2, vocab_size: 100, max_position_embeddings: 512}
    formats: {safetensors: {repo: org/tiny}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "broken.yaml"
    p.write_text(text)
    return p


def test_good_minimal_recipe(tmp_path: Path) -> None:
    (m,) = load_file(_write(tmp_path, GOOD))
    assert m.name == "tiny" and m.arch.kv_heads == 4


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("models: [1, 2", None, "not valid YAML at line"),
        ("other: 1", "models", "top-level mapping"),
        (
            GOOD.replace("hidden_size: 64", "hidden_size: -64"),
            "config.hidden_size",
            "positive integer",
        ),
        (GOOD.replace("num_hidden_layers: 2,", ""), "config.num_hidden_layers", "positive integer"),
        (
            GOOD.replace("model_type: llama", "model_type: bert"),
            "config.model_type",
            "one of llama",
        ),
        (GOOD.replace("repo: org/tiny", "repo: not a repo"), "formats.safetensors.repo", "repo id"),
        (GOOD.replace("formats:", "gated: maybe\n    formats:"), "gated", "true or false"),
        (GOOD.replace("formats:", "colour: red\n    formats:"), "colour", "one of aliases"),
        (
            GOOD.replace(
                "formats: {safetensors: {repo: org/tiny}}",
                "formats: {gguf: {repo: org/t, files: {q4_k_m: {file: t.bin}}}}",
            ),
            "formats.gguf.files.q4_k_m.file",
            "ending in .gguf",
        ),
        (GOOD.replace("config:", "params: 5\n    config:"), "params", "the count the config gives"),
    ],
)
def test_broken_recipe_names_file_field_expectation(
    tmp_path: Path, text: str, field: str | None, expected: str
) -> None:
    with pytest.raises(RecipeError) as e:
        load_file(_write(tmp_path, text))
    msg = str(e.value)
    assert msg.startswith("recipe broken.yaml")
    assert "\n" not in msg
    if field:
        assert f"models.tiny.{field}" in msg or f": {field}:" in msg
    assert expected in msg
    assert e.value.hint and "broken.yaml" in e.value.hint


def test_duplicate_alias_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text(GOOD.replace("tiny:", "mistral-7b:"))
    with pytest.raises(RecipeError, match="already used by"):
        load_catalog([tmp_path])
