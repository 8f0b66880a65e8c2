"""`fit`, `render` and `models` through the CLI for one model of each 2025-26 architecture kind:
sliding-window/local+global (Gemma 3), MLA (DeepSeek R1), MoE (Qwen3-30B-A3B), MXFP4 (gpt-oss)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmops.cli import app

runner = CliRunner()

KINDS = [
    # model, hardware, repo the plan must serve, a fact of the architecture in `fit --json`
    ("gemma3-27b", "1x48GB", "gemma-3-27b", ("kv_bytes_per_token", 62 * 2 * 16 * 128 * 2)),
    ("deepseek-r1", "8xH100", "DeepSeek-R1", ("kv_bytes_per_token", 61 * 576 * 2)),
    ("qwen3-30b-a3b", "2x24GB", "Qwen3-30B-A3B", ("kv_bytes_per_token", 48 * 2 * 4 * 128 * 2)),
    ("gpt-oss-20b", "1x24GB", "openai/gpt-oss-20b", ("weights_source", "computed:bf16")),
]


@pytest.mark.parametrize(("model", "hw", "repo", "fact"), KINDS, ids=[k[0] for k in KINDS])
def test_fit_and_render_each_kind(model: str, hw: str, repo: str, fact: tuple[str, object]) -> None:
    r = runner.invoke(app, ["fit", model, "--hw", hw, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1 and doc["fits"] is True and doc["context"] >= 8192
    key, want = fact
    assert doc[key] == want
    out = runner.invoke(app, ["render", model, "--hw", hw])
    assert out.exit_code == 0, out.output
    assert repo in out.stdout


def test_gpt_oss_names_its_mxfp4_checkpoint() -> None:
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--hw", "1x24GB"])
    assert r.exit_code == 0, r.output
    assert "MXFP4 checkpoint" in r.stdout


def test_models_lists_the_new_families_with_their_attention() -> None:
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    for name in (
        "qwen3-32b",
        "qwen3-235b-a22b",
        "llama3.3-70b",
        "llama4-scout",
        "gemma3-1b",
        "mistral-small-3.2",
        "phi-4-mini",
        "gpt-oss-120b",
        "deepseek-r1-distill-qwen-32b",
        "deepseek-v3",
    ):
        assert name in rows, name
    assert rows["deepseek-v3"]["attention"] == "mla"
    assert rows["gemma3-27b"]["attention"].startswith("local+global (52/62")
    assert rows["gpt-oss-20b"]["checkpoint_quant"] == "mxfp4"
    assert rows["qwen3-30b-a3b"]["active_params"] < rows["qwen3-30b-a3b"]["params"] / 9
    show = runner.invoke(app, ["models", "show", "deepseek-r1"])
    assert show.exit_code == 0 and "MLA: KV latent 512 + rope 64" in show.stdout
