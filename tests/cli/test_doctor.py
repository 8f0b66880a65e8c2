"""`llmops doctor` end to end: for real on this host, and with NVML fixtures at the pynvml boundary."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from llmops.cli import app, deps
from llmops.schemas import doctor_schema, load, render
from tests.support.fakes import fake_nvml

SCHEMA = load("doctor")


def doctor(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["doctor", "--offline", *args])


@pytest.fixture
def nvml_fixture(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def use(name: str) -> None:
        monkeypatch.setattr(deps, "nvml_module", lambda: fake_nvml(name))

    return use


def test_committed_schema_is_fresh() -> None:
    path = Path(__file__).resolve().parents[2] / "llmops" / "schemas" / "doctor.schema.json"
    assert path.read_text() == render(doctor_schema()), "run `python scripts/gen_schemas.py`"


def test_real_doctor_on_this_host_validates_and_exits_as_its_checks_say() -> None:
    r = doctor("--json")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    statuses = {c["status"] for c in doc["checks"]}
    assert r.exit_code == (1 if "fail" in statuses else 0)
    names = {c["name"] for c in doc["checks"]}
    assert {"gpu.driver", "system.ram", "platform", "hf.token", "tools.ngrok"} <= names
    assert doc["facts"]["system"]["ram_total_mib"] > 0


def test_real_doctor_explains_the_missing_driver() -> None:
    r = doctor("--check", "gpu.driver", "--json")
    (check,) = json.loads(r.stdout)["checks"]
    nv = json.loads(r.stdout)["facts"]["nvidia"]
    if nv["error_kind"] != "no_driver":
        pytest.skip("this machine has an NVIDIA driver")
    assert check["status"] == "warn"
    assert check["message"].startswith("no NVIDIA driver found")
    assert "nvidia-driver" in check["hint"]
    assert r.exit_code == 0
    human = doctor("--check", "gpu")
    assert "no NVIDIA driver found" in human.stdout and "WARN" in human.stdout


def test_eight_h100s(nvml_fixture) -> None:  # type: ignore[no-untyped-def]
    nvml_fixture("h100x8_nvlink")
    r = doctor("--check", "gpu", "--json")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    gpus = doc["facts"]["nvidia"]["gpus"]
    assert len(gpus) == 8 and gpus[0]["memory_total_mib"] == 81559
    assert len(doc["facts"]["nvidia"]["links"]) == 28
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["gpu.topology"]["status"] == "pass"
    assert checks["gpu.driver"]["message"].startswith("driver 550.54.15, CUDA 12.4, 8 GPU(s)")
    human = doctor("--check", "gpu")
    assert "NVIDIA H100 80GB HBM3" in human.stdout and "NV18" in human.stdout


def test_two_3090s_over_pcie_warn_about_p2p(nvml_fixture) -> None:  # type: ignore[no-untyped-def]
    nvml_fixture("rtx3090x2_pcie")
    r = doctor("--check", "gpu", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["gpu.topology"]["status"] == "warn"
    assert any(n.startswith("gpu.pcie.") for n in checks)  # one card runs at x8
    assert r.exit_code == 0


def test_lost_gpu_is_a_row_and_exit_1(nvml_fixture) -> None:  # type: ignore[no-untyped-def]
    nvml_fixture("lost_gpu")
    r = doctor("--check", "gpu")
    assert r.exit_code == 1
    assert "GPU is lost" in r.stdout
    assert "FAIL" in r.stdout and "gpu.health" in r.stdout
    doc = json.loads(doctor("--check", "gpu", "--json").stdout)
    lost = [g for g in doc["facts"]["nvidia"]["gpus"] if g["error"]]
    assert [g["index"] for g in lost] == [2]


def test_driver_missing_fixture_still_runs_the_rest(nvml_fixture) -> None:  # type: ignore[no-untyped-def]
    nvml_fixture("no_driver")
    r = doctor("--json")
    doc = json.loads(r.stdout)
    names = {c["name"] for c in doc["checks"]}
    assert "system.ram" in names and "docker.engine" in names
    assert doc["facts"]["nvidia"]["error_kind"] == "no_driver"


def test_saved_facts_are_checked_without_probing(tmp_path: Path, nvml_fixture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    nvml_fixture("lost_gpu")
    saved = tmp_path / "host.json"
    saved.write_text(doctor("--check", "gpu", "--json").stdout)

    def no_probe(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("must not probe")

    monkeypatch.setattr(deps, "collect_facts", no_probe)
    r = doctor("--facts", str(saved), "--json")
    doc = json.loads(r.stdout)
    assert doc["facts"]["source"] == f"file:{saved}"
    assert r.exit_code == 1 and any(c["name"] == "gpu.health" for c in doc["checks"])
