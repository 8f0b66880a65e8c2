"""`llmops pull`: plan, disk check, progress and the offline error. No network here, so the
download itself runs against a plain fake client; the real client is exercised offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.cli import pull as pull_cli
from tests.catalog.test_hub_gguf import FakeHub

runner = CliRunner()


def test_pull_downloads_with_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHub()
    monkeypatch.setattr(pull_cli, "hub_client", lambda: fake)
    r = runner.invoke(app, ["pull", "smollm2-135m", "--hw", "1x24GB"])
    assert r.exit_code == 0, r.output
    assert fake.downloaded == ["config.json", "model.safetensors"]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in r.stderr


def test_pull_dry_run_lists_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull_cli, "hub_client", lambda: FakeHub())
    r = runner.invoke(app, ["pull", "smollm2-135m", "--hw", "1x24GB", "--dry-run"])
    assert r.exit_code == 0 and r.stdout.split() == ["config.json", "model.safetensors"]


def test_pull_refuses_without_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    monkeypatch.setattr(pull_cli, "hub_client", lambda: FakeHub())
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 0, 1 << 20))
    r = runner.invoke(app, ["pull", "smollm2-135m", "--hw", "1x24GB"])
    assert r.exit_code == 1 and "not enough disk" in r.stderr


def test_pull_offline_real_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    r = runner.invoke(app, ["pull", "mistral7b", "--quant", "q4_k_m"])
    assert r.exit_code == 1, r.output
    assert "mistral7b" in r.stderr and "hint:" in r.stderr


class SizesHub(FakeHub):
    """Lists every file any catalog repo could be asked for, so the plan shows which repo."""

    def file_sizes(self, repo: str) -> dict[str, int]:
        self._check(f"sizes {repo}")
        return {
            "model.safetensors": 4_000_000_000,
            "config.json": 700,
            "mistral-7b-instruct-v0.2.Q4_K_M.gguf": 4_368_439_584,
        }


@pytest.mark.parametrize(
    ("hw", "repo", "files"),
    [
        ("1x24GB", "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", ["config.json", "model.safetensors"]),
        (
            "cpu:32GB",
            "TheBloke/Mistral-7B-Instruct-v0.2-GGUF",
            ["mistral-7b-instruct-v0.2.Q4_K_M.gguf"],
        ),
    ],
)
def test_pull_4bit_downloads_the_4bit_artifact(
    monkeypatch: pytest.MonkeyPatch, hw: str, repo: str, files: list[str]
) -> None:
    """`pull -q 4bit` fetches what `up -q 4bit` serves there (AWQ on a GPU, Q4_K_M on a CPU),
    never the 16-bit repo."""
    hub = SizesHub()
    monkeypatch.setattr(pull_cli, "hub_client", lambda: hub)
    r = runner.invoke(app, ["pull", "mistral7b", "-q", "4bit", "--hw", hw, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert hub.calls == [f"sizes {repo}"] and r.stdout.split() == files


def test_pull_offline_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = SizesHub()
    monkeypatch.setattr(pull_cli, "hub_client", lambda: hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["pull", "mistral7b", "-q", "4bit", "--hw", "1x24GB"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.splitlines()[0].startswith("error: HF_HUB_OFFLINE is set")
    assert "hint: unset HF_HUB_OFFLINE" in r.stderr and hub.calls == []


def test_pull_of_the_bundled_model_downloads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = SizesHub()
    monkeypatch.setattr(pull_cli, "hub_client", lambda: hub)
    r = runner.invoke(app, ["pull", "smollm2-135m", "--hw", "cpu:8GB"])
    assert r.exit_code == 0 and "nothing to download" in r.stderr and hub.calls == []


def test_pull_unavailable_quant() -> None:
    r = runner.invoke(app, ["pull", "gpt-neox-20b", "--quant", "awq"])
    assert r.exit_code == 2 and "available for gpt-neox-20b" in r.stderr


def test_fake_cache_dir_is_hf_home(tmp_path: Path) -> None:
    from llmops.catalog.hub import hf_cache_dir

    assert hf_cache_dir({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"
