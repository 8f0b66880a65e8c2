"""`llmops render --format compose|k8s [--add FILE]` from the command line: exit codes, the
one-line refusals with their hints, and stdout that is only the document."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmops.cli import app
from tests.support.scale_cases import validate_k8s


@pytest.fixture(autouse=True)
def fixed_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["render", *args])


def test_compose_then_add_a_second_deployment(tmp_path: Path) -> None:
    first = cli("llama3.1-8b", "--hw", "2x24GB", "--format", "compose")
    assert first.exit_code == 0, first.output
    f = tmp_path / "compose.yaml"
    f.write_text(first.stdout)
    second = cli(
        "mistral7b",
        "--engine",
        "tgi",
        "--quant",
        "awq",
        "--hw",
        "2x24GB",
        "-f",
        "compose",
        "--add",
        str(f),
    )
    assert second.exit_code == 0, second.output
    doc = yaml.safe_load(second.stdout)
    assert list(doc["services"]) == ["llama3-1-8b-vllm", "mistral7b-tgi"]
    assert f.read_text() == first.stdout  # the result goes to stdout; the file is untouched
    again = cli("llama3.1-8b", "--hw", "2x24GB", "-f", "compose", "--add", str(f))
    assert again.exit_code == 2
    assert "service llama3-1-8b-vllm is already in" in again.output and "--name" in again.output
    port = cli("llama3.1-8b", "--hw", "2x24GB", "-f", "compose", "--add", str(f), "-n", "other")
    assert port.exit_code == 2
    assert "host port 8000 is already published by service llama3-1-8b-vllm" in port.output
    assert "--port 8001" in port.output


def test_add_needs_compose_and_a_readable_file(tmp_path: Path) -> None:
    r = cli("llama3.1-8b", "--hw", "1x24GB", "--add", str(tmp_path / "x.yaml"))
    assert r.exit_code == 2 and "--format compose" in r.output
    r = cli("llama3.1-8b", "--hw", "1x24GB", "-f", "compose", "--add", str(tmp_path / "x.yaml"))
    assert r.exit_code == 2 and "cannot read the compose file" in r.output


def test_k8s_from_the_cli_validates_and_takes_a_hostpath() -> None:
    r = cli("llama3.1-8b", "--hw", "1xA100-80GB", "-f", "k8s", "--k8s-cache", "hostPath:/mnt/hf")
    assert r.exit_code == 0, r.output
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    validate_k8s(docs)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    r = cli("llama3.1-8b", "--hw", "1xA100-80GB", "-f", "k8s")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    pvc = docs[0]["spec"]["resources"]["requests"]["storage"]
    assert docs[0]["kind"] == "PersistentVolumeClaim" and int(pvc.removesuffix("Gi")) >= 30
    bad = cli("llama3.1-8b", "--hw", "1xA100-80GB", "-f", "k8s", "--k8s-cache", "nfs:/x")
    assert bad.exit_code == 2 and "hostPath:/absolute" in bad.output
