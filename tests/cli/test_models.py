"""`llmops models` and `llmops models show`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from llmops.cli import app

runner = CliRunner()


def test_models_table_and_json() -> None:
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0, r.output
    assert "mixtral8x7b" in r.stdout and "2/8 MoE" in r.stdout
    j = runner.invoke(app, ["models", "--json"])
    doc = json.loads(j.stdout)
    assert doc["schema"] == 1 and len(doc["models"]) >= 25
    smol = next(m for m in doc["models"] if m["name"] == "smollm2-135m")
    assert smol["params"] == 134_515_008 and smol["kv_heads"] == 3


def test_models_show_by_alias() -> None:
    r = runner.invoke(app, ["models", "show", "Mistral7B"])
    assert r.exit_code == 0, r.output
    assert "mistral-7b-instruct-v0.2.Q4_K_M.gguf" in r.stdout and "128 KiB/token" in r.stdout
    j = runner.invoke(app, ["models", "show", "llama3.1-8b", "--json"])
    m = json.loads(j.stdout)["model"]
    assert m["architecture"]["rope_scaling"]["factor"] == 8.0
    assert m["formats"]["gptq"].startswith("hugging-quants/")
    assert m["weights_bytes"]["bf16"] == 8_030_261_248 * 2


def test_models_show_unknown() -> None:
    r = runner.invoke(app, ["models", "show", "lama2-13"])
    assert r.exit_code == 2 and "llama2-13b" in r.stderr
