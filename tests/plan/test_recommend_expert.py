"""`recommend` against a table of what an expert would pick per hardware class.

Each row of EXPECTED says what the top recommendation must be (and must not be) on that
hardware: a current-generation model of the best tier that fits with a useful context and
headroom, never a bigger model squeezed to a 2k context."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan.hardware import facts_from_hw, parse_hw
from llmops.plan.recommend import Recommendation, recommend, tier_of, tokens_per_s

CAT = load_catalog()


def rank(hw: str, **kw: object) -> list[Recommendation]:
    facts = facts_from_hw(parse_hw(hw), HostFacts(llmops_version="0", collected_at=""))
    return recommend(CAT.models, facts, limit=5, **kw)  # type: ignore[arg-type]


def _dense_between(lo: float, hi: float):  # noqa: ANN202
    return lambda r: not CAT.get(r.model).arch.is_moe and lo <= r.params <= hi


# hw, minimum context of the top row, what the top row must satisfy (and why)
EXPECTED = [
    (
        "1x8GB",
        8192,
        lambda r: r.params <= 9e9 and r.tier >= 2 and r.released >= "2025",
        "an 8B-class 2025 model at 4-5 bits with 8k, not a 1B nor a 2024 model",
    ),
    (
        "1x24GB",
        8192,
        lambda r: r.tier >= 4 and 20e9 <= r.params <= 36e9,
        "a 27-32B dense at 4 bits or Qwen3-30B-A3B",
    ),
    (
        "2x24GB",
        32768,
        lambda r: _dense_between(23e9, 36e9)(r) or r.model == "qwen3-30b-a3b",
        "a 27-32B dense or a 30B-A3B MoE with >= 32k, not Qwen2.5-72B AWQ at 2k",
    ),
    (
        "1x80GB",
        32768,
        lambda r: r.tier >= 4 and r.params >= 30e9,
        "gpt-oss-120b (MXFP4) or a 70B/32B class model at 32k",
    ),
    (
        "8xH100",
        32768,
        lambda r: r.tier == 5 and r.params >= 100e9,
        "a frontier open model: DeepSeek R1/V3 AWQ, Qwen3-235B-A22B or gpt-oss-120b",
    ),
    (
        "cpu:32GB",
        8192,
        lambda r: r.engine == "llamacpp" and r.tier >= 3,
        "a GGUF that decodes at a usable speed on a CPU (an MoE like Qwen3-30B-A3B)",
    ),
]


@pytest.mark.parametrize(("hw", "min_ctx", "ok", "why"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_expert_table(hw: str, min_ctx: int, ok, why: str) -> None:  # noqa: ANN001
    rows = rank(hw)
    assert rows, hw
    top = rows[0]
    assert ok(top), f"{hw}: got {top.model} {top.quant} {top.engine} {top.context}: want {why}"
    assert top.context >= min_ctx, (hw, top.model, top.context)
    for r in rows:
        # headroom: nothing above 95 % of a device's usable memory
        assert all(d.total_bytes <= 0.95 * d.usable_bytes for d in r.report.per_gpu), r.model
        # each line explains itself: tier, benchmark, context vs target, memory share
        assert f"tier {r.tier}" in r.reason and "tokens" in r.reason and "% of usable" in r.reason
    assert "qwen2.5-72b" not in [r.model for r in rows[:1]]


def test_cpu_rows_decode_at_a_usable_speed() -> None:
    rows = rank("cpu:32GB")
    assert rows and all(r.gpus_used == 0 for r in rows)
    assert all(tokens_per_s(CAT.get(r.model), r.report) >= 5 for r in rows)
    assert CAT.get(rows[0].model).arch.is_moe  # 3B active: ~30 tok/s where a 32B dense does 3


def test_rows_name_a_runner_up() -> None:
    rows = rank("2x24GB")
    assert any(r.runner_up for r in rows)
    for r in rows:
        if r.runner_up:
            assert f"runner-up: {r.runner_up}" in r.reason
            assert r.runner_up.split(" on ")[0] != r.format or r.engine not in r.runner_up


def test_context_option_moves_the_target() -> None:
    long = rank("2x24GB", context=65536)
    assert long and long[0].context >= 65536
    with pytest.raises(UsageError, match="positive number of tokens"):
        rank("2x24GB", context=0)


def test_newer_generation_wins_a_tie() -> None:
    """Two entries alike in all but the release date: the newer ranks first."""
    base = CAT.get("qwen3-8b")
    old = replace(base, name="old-8b", aliases=(), released="2024-04-29")
    new = replace(base, name="new-8b", aliases=(), released="2025-04-29")
    facts = facts_from_hw(parse_hw("1x24GB"), HostFacts(llmops_version="0", collected_at=""))
    rows = recommend([old, new], facts, limit=0)
    assert [r.model for r in rows] == ["new-8b", "old-8b"]


def test_tier_defaults_from_mmlu_for_older_entries() -> None:
    assert tier_of(CAT.get("qwen2.5-72b")) == 3  # MMLU 86: capped at 3 for a 2024 entry
    assert tier_of(CAT.get("llama2-7b")) == 1
    assert tier_of(CAT.get("qwen3-235b-a22b")) == 5
