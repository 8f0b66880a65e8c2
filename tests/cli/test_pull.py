"""`llmops pull`: plan, disk check, progress and the offline error. No network here, so the
download itself runs against a plain fake client; the real client is exercised offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.cli import pull as pull_cli
from tests.unit.test_hub_gguf import FakeHub

runner = CliRunner()


def test_pull_downloads_with_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHub()
    monkeypatch.setattr(pull_cli, "hub_client", lambda: fake)
    r = runner.invoke(app, ["pull", "smollm2-135m"])
    assert r.exit_code == 0, r.output
    assert fake.downloaded == ["config.json", "model.safetensors"]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in r.stderr


def test_pull_dry_run_lists_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull_cli, "hub_client", lambda: FakeHub())
    r = runner.invoke(app, ["pull", "smollm2-135m", "--dry-run"])
    assert r.exit_code == 0 and r.stdout.split() == ["config.json", "model.safetensors"]


def test_pull_refuses_without_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    monkeypatch.setattr(pull_cli, "hub_client", lambda: FakeHub())
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 0, 1 << 20))
    r = runner.invoke(app, ["pull", "smollm2-135m"])
    assert r.exit_code == 1 and "not enough disk" in r.stderr


def test_pull_offline_real_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    r = runner.invoke(app, ["pull", "mistral7b", "--quant", "q4_k_m"])
    assert r.exit_code == 1, r.output
    assert "mistral7b" in r.stderr and "hint:" in r.stderr


def test_pull_unavailable_quant() -> None:
    r = runner.invoke(app, ["pull", "gpt-neox-20b", "--quant", "awq"])
    assert r.exit_code == 2 and "available for gpt-neox-20b" in r.stderr


def test_fake_cache_dir_is_hf_home(tmp_path: Path) -> None:
    from llmops.catalog.hub import hf_cache_dir

    assert hf_cache_dir({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"
