"""The 2025-26 catalog: each family's parameter counts against its model card or paper, and the
recipes' own invariants (release date, tier, sources, real formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.catalog.config import architecture_from_config
from llmops.catalog.recipes import RecipeError, load_catalog, parse_model
from llmops.plan import artifacts
from llmops.plan.quant import active_param_count, param_count

CAT = load_catalog()
NEW = [m for m in CAT.models if m.released >= "2024-12"]


# (model, published total, published active, relative tolerance, where the figures come from)
PUBLISHED = [
    ("qwen3-0.6b", 0.6e9, None, 0.01, "Qwen/Qwen3-0.6B model card: 0.6B, 0.44B non-embedding"),
    ("qwen3-4b", 4.0e9, None, 0.01, "Qwen/Qwen3-4B model card: 4.0B"),
    ("qwen3-8b", 8.2e9, None, 0.01, "Qwen/Qwen3-8B model card: 8.2B"),
    ("qwen3-14b", 14.8e9, None, 0.01, "Qwen/Qwen3-14B model card: 14.8B"),
    ("qwen3-32b", 32.8e9, None, 0.01, "Qwen/Qwen3-32B model card: 32.8B"),
    ("qwen3-30b-a3b", 30.5e9, 3.3e9, 0.02, "Qwen/Qwen3-30B-A3B card: 30.5B, 3.3B activated"),
    ("qwen3-235b-a22b", 235e9, 22e9, 0.01, "Qwen/Qwen3-235B-A22B card: 235B, 22B activated"),
    ("gemma3-27b", 27.4e9, None, 0.005, "google/gemma-3-27b-it on the Hub: 27.4B params"),
    ("gemma3-12b", 12.2e9, None, 0.005, "google/gemma-3-12b-it on the Hub: 12.2B params"),
    ("gemma3-4b", 4.3e9, None, 0.005, "google/gemma-3-4b-it on the Hub: 4.3B params"),
    ("phi-4", 14.7e9, None, 0.005, "microsoft/phi-4 card: 14B; Hub: 14.7B params"),
    ("phi-4-mini", 3.8e9, None, 0.01, "microsoft/Phi-4-mini-instruct card: 3.8B"),
    ("mistral-small-3.1", 24e9, None, 0.02, "Mistral Small 3.1 card: 24B (text decoder)"),
    ("llama4-scout", 109e9, 17e9, 0.02, "Llama 4 card: Scout 109B total, 17B active"),
    ("llama4-maverick", 400e9, 17e9, 0.02, "Llama 4 card: Maverick 400B total, 17B active"),
    ("deepseek-v3", 671e9, 37e9, 0.015, "DeepSeek-V3 report (arXiv 2412.19437): 671B, 37B"),
]


@pytest.mark.parametrize(("name", "total", "active", "tol", "source"), PUBLISHED)
def test_param_counts_match_model_cards(
    name: str, total: float, active: float | None, tol: float, source: str
) -> None:
    arch = CAT.get(name).arch
    assert param_count(arch) == pytest.approx(total, rel=tol), source
    if active is not None:
        assert active_param_count(arch) == pytest.approx(active, rel=tol), source


def test_gpt_oss_counts_match_the_paper() -> None:
    """gpt-oss model card (arXiv 2508.10925, table 1): 20b 20.91B total / 3.61B active, 120b
    116.83B / 5.13B; OpenAI counts active parameters without the embedding table."""
    small, big = CAT.get("gpt-oss-20b").arch, CAT.get("gpt-oss-120b").arch
    assert param_count(small) / 1e9 == pytest.approx(20.91, abs=0.005)
    assert active_param_count(small, embedding=False) / 1e9 == pytest.approx(3.61, abs=0.005)
    assert param_count(big) / 1e9 == pytest.approx(116.83, abs=0.005)
    assert active_param_count(big, embedding=False) / 1e9 == pytest.approx(5.13, rel=0.01)


def test_every_new_entry_has_date_tier_and_a_real_format() -> None:
    families = {m.family for m in NEW}
    for fam in ("qwen3", "gemma3", "gpt-oss", "deepseek", "llama", "mistral", "phi"):
        assert fam in families, fam
    for m in NEW:
        assert m.tier is not None and 1 <= m.tier <= 5, m.name
        assert len(m.released) == 10, m.name
        assert m.formats.safetensors, m.name
        assert artifacts.served(m), m.name  # some engine serves it


def test_each_recipe_entry_names_its_config_source() -> None:
    """Every 2025-26 entry's numbers come with a comment saying where they were read."""
    for fam in ("qwen3", "gemma3", "gpt-oss", "deepseek"):
        text = Path(f"recipes/{fam}.yaml").read_text()
        assert "config.json" in text and "sources" in text.lower(), fam


def test_old_entries_the_seeds_use_are_kept() -> None:
    for name in ("mistral7b", "mixtral8x7b", "llama3.1-8b", "llama3.1-70b", "qwen2.5-72b"):
        assert CAT.find(name) is not None


def test_architectures_read_from_the_configs() -> None:
    g = CAT.get("gemma3-27b").arch
    # sliding_window_pattern 6: layers 5, 11, ... 59 are global (10 of 62)
    assert len(g.local_layers) == 52 and g.sliding_window == 1024
    assert not g.is_local(5) and g.is_local(4) and g.qk_norm and g.tied_embeddings
    o = CAT.get("gpt-oss-120b").arch
    assert o.local_layers == tuple(range(0, 36, 2)) and o.sliding_window == 128
    assert o.attention_sinks and o.checkpoint_quant == "mxfp4"
    d = CAT.get("deepseek-r1").arch
    assert d.mla is not None and d.mla.latent == 576 and d.dense_layers == (0, 1, 2)
    assert d.checkpoint_quant == "fp8" and d.shared_expert_intermediate == 2048
    mav = CAT.get("llama4-maverick").arch
    assert mav.dense_layers == tuple(range(0, 48, 2))  # MoE on odd layers (step 2)
    assert mav.local_layers == tuple(i for i in range(48) if (i + 1) % 4)  # NoPE every 4th


def test_layer_types_list_wins_over_the_pattern() -> None:
    """transformers >= 4.53 configs spell the layout out in ``layer_types``."""
    base = {
        "model_type": "gemma3_text",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "num_hidden_layers": 4,
        "vocab_size": 100,
        "sliding_window": 16,
        "sliding_window_pattern": 2,
    }
    assert architecture_from_config(base).local_layers == (0, 2)
    typed = {**base, "layer_types": ["full_attention"] + ["sliding_attention"] * 3}
    assert architecture_from_config(typed).local_layers == (1, 2, 3)


TINY_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 100,
}


def test_bad_tier_or_date_is_a_recipe_error(tmp_path: Path) -> None:
    raw = {"config": TINY_CONFIG, "formats": {"safetensors": {"repo": "a/b"}}}
    with pytest.raises(RecipeError, match="tier: expected an integer from 1 to 5"):
        parse_model(tmp_path / "x.yaml", "m", {**raw, "tier": 7})
    with pytest.raises(RecipeError, match="released: expected a date"):
        parse_model(tmp_path / "x.yaml", "m", {**raw, "released": "spring"})


def test_recipe_sampling_is_parsed_and_checked(tmp_path: Path) -> None:
    raw = {"config": TINY_CONFIG, "formats": {"safetensors": {"repo": "a/b"}}}
    spec = parse_model(
        tmp_path / "x.yaml", "m", {**raw, "sampling": {"top_p": 0.9, "temperature": 0}}
    )
    assert spec.sampling == (("temperature", 0.0), ("top_p", 0.9))
    assert parse_model(tmp_path / "x.yaml", "m", raw).sampling == ()
    with pytest.raises(
        RecipeError, match=r"sampling\.temperature: expected a number from 0.0 to 2.0"
    ):
        parse_model(tmp_path / "x.yaml", "m", {**raw, "sampling": {"temperature": 3}})
    with pytest.raises(RecipeError, match=r"sampling\.top_k: expected one of temperature, top_p"):
        parse_model(tmp_path / "x.yaml", "m", {**raw, "sampling": {"top_k": 40}})
    with pytest.raises(RecipeError, match="sampling: expected a mapping"):
        parse_model(tmp_path / "x.yaml", "m", {**raw, "sampling": 0.7})


def test_backend_sampling_defaults_generation_config_then_recipe() -> None:
    pytest.importorskip("transformers")
    from transformers import GenerationConfig

    from llmops.backend.loader import sampling_defaults

    bare = GenerationConfig(bos_token_id=1, eos_token_id=2)
    assert sampling_defaults("smollm2", "SmolLM2-135M-Instruct", bare) == (
        (("temperature", 0.2), ("top_p", 0.9)),
        "recipes/smollm.yaml",
    )
    own = GenerationConfig(do_sample=True, temperature=0.6, top_p=0.95)
    assert sampling_defaults("smollm2", "SmolLM2-135M-Instruct", own) == (
        (("temperature", 0.6), ("top_p", 0.95)),
        "generation_config.json",
    )
    # not in the catalog and nothing in the config: the OpenAI defaults (none set here)
    assert sampling_defaults("acme/unknown-model", "acme/unknown-model", bare) == ((), "")
