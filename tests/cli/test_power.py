"""`llmops power` and `llmops ecc` through the NVML fake (no GPU here), at the pynvml boundary."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmops.cli import app, deps
from llmops.plan.gpus import admin_gpus as parse_gpus
from llmops.run import gpu_admin
from llmops.run.gpu_admin import GpuAdmin
from tests.support.fakes import FakeNvml, fake_nvml


@pytest.fixture
def nv(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Use an NVML fixture for the CLI; returns the fake so tests can inject errors and read writes."""
    holder: dict[str, FakeNvml] = {}

    def use(name: str) -> FakeNvml:
        holder["nv"] = fake_nvml(name)
        monkeypatch.setattr(deps, "nvml_module", lambda: holder["nv"])
        return holder["nv"]

    monkeypatch.setattr(gpu_admin, "local_container_evidence", lambda: ())
    return use


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_power_show_table_and_json(nv) -> None:  # type: ignore[no-untyped-def]
    nv("rtx3090x2_pcie")
    r = run("power", "show")
    assert r.exit_code == 0, r.output
    assert "NVIDIA GeForce RTX 3090" in r.stdout and "283.4 W" in r.stdout
    assert "100-400 W" in r.stdout and "350 W" in r.stdout
    doc = json.loads(run("power", "show", "--json", "--gpu", "1").stdout)
    assert doc["schema"] == 1
    (g,) = doc["gpus"]
    assert g == {
        "index": 1,
        "name": "NVIDIA GeForce RTX 3090",
        "draw_w": 29.9,
        "limit_w": 350.0,
        "enforced_limit_w": 350.0,
        "default_limit_w": 350.0,
        "min_limit_w": 100.0,
        "max_limit_w": 400.0,
        "error": None,
    }


def test_power_set_percent_watts_and_reset(nv) -> None:  # type: ignore[no-untyped-def]
    fake = nv("rtx3090x2_pcie")
    r = run("power", "set", "--percent", "75")
    assert r.exit_code == 0, r.output
    assert fake.writes == [
        ("nvmlDeviceSetPowerManagementLimit", 0, 262500),
        ("nvmlDeviceSetPowerManagementLimit", 1, 262500),
    ]
    assert "GPU 0 (NVIDIA GeForce RTX 3090): power limit 350 W -> 262.5 W" in r.stdout
    assert "until a reboot" in r.stderr
    r = run("power", "set", "--watts", "280", "--gpu", "1", "--json")
    doc = json.loads(r.stdout)
    assert doc["changed"] == [
        {
            "index": 1,
            "name": "NVIDIA GeForce RTX 3090",
            "old_limit_w": 262.5,
            "new_limit_w": 280.0,
            "default_limit_w": 350.0,
        }
    ]
    assert fake.writes[-1] == ("nvmlDeviceSetPowerManagementLimit", 1, 280000)
    r = run("power", "reset")
    assert r.exit_code == 0
    assert [w[2] for w in fake.writes[-2:]] == [350000, 350000]
    assert json.loads(run("power", "show", "--json").stdout)["gpus"][0]["limit_w"] == 350.0


def test_out_of_range_changes_nothing(nv) -> None:  # type: ignore[no-untyped-def]
    fake = nv("h100x8_nvlink")  # 200-700 W, default 700 W
    r = run("power", "set", "--watts", "150", "--gpu", "0,3")
    assert r.exit_code == 2
    assert "GPU 0 (NVIDIA H100 80GB HBM3): 150 W is outside its range 200-700 W" in r.stderr
    assert "GPU 3" in r.stderr and "nothing was changed" in r.stderr
    r = run("power", "set", "--percent", "110")  # above max (= default) on an H100
    assert r.exit_code == 2 and "770 W is outside" in r.stderr
    assert fake.writes == []
    r = run("power", "set", "--percent", "75", "--gpu", "2")
    assert r.exit_code == 0 and fake.writes == [("nvmlDeviceSetPowerManagementLimit", 2, 525000)]


def test_usage_errors(nv) -> None:  # type: ignore[no-untyped-def]
    nv("rtx3090x2_pcie")
    assert run("power", "set").exit_code == 2
    r = run("power", "set", "--watts", "200", "--percent", "50")
    assert r.exit_code == 2 and "exactly one" in r.stderr
    r = run("power", "set", "--watts", "200", "--gpu", "5")
    assert r.exit_code == 2 and "no GPU 5 on this host (it has 2)" in r.stderr
    r = run("power", "show", "--gpu", "a,b")
    assert r.exit_code == 2 and "bad --gpu" in r.stderr
    assert parse_gpus("1,0,1") == (1, 0) and parse_gpus(None) is None


def test_no_permission_as_a_normal_user() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    fake.set_error("nvmlDeviceSetPowerManagementLimit", "NoPermission")
    admin = GpuAdmin(fake, container_evidence=lambda: (), euid=lambda: 1000)
    with pytest.raises(Exception) as e:
        admin.power_set(watts=280)
    assert type(e.value).__name__ == "GpuPermissionError"
    assert "needs root" in str(e.value) and "sudo" in (e.value.hint or "")  # type: ignore[attr-defined]


def test_no_permission_in_a_container_names_sys_admin(nv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    fake = nv("h100x8_nvlink")
    fake.set_error("nvmlDeviceSetPowerManagementLimit", "NoPermission")
    fake.set_error("nvmlDeviceSetEccMode", "NoPermission")
    monkeypatch.setattr(gpu_admin, "local_container_evidence", lambda: ("/.dockerenv exists",))
    monkeypatch.setattr(gpu_admin.os, "geteuid", lambda: 0)
    monkeypatch.setattr(deps, "nvml_module", lambda: fake)
    monkeypatch.setattr(
        "llmops.cli.deps.gpu_admin",
        lambda: GpuAdmin(
            fake, container_evidence=gpu_admin.local_container_evidence, euid=lambda: 0
        ),
    )
    r = run("power", "set", "--percent", "75")
    assert r.exit_code == 1
    assert "inside a container (/.dockerenv exists)" in r.stderr and "SYS_ADMIN" in r.stderr
    assert "--cap-add SYS_ADMIN" in r.stderr
    r = run("ecc", "off")
    assert r.exit_code == 1 and "changing ECC mode on GPU 0" in r.stderr and "SYS_ADMIN" in r.stderr


def test_ecc_show_and_off_is_pending_until_reboot(nv) -> None:  # type: ignore[no-untyped-def]
    fake = nv("h100x8_nvlink")
    doc = json.loads(run("ecc", "show", "--json").stdout)
    assert doc["schema"] == 1 and len(doc["gpus"]) == 8
    assert doc["gpus"][0]["current"] is True and doc["gpus"][0]["reboot_pending"] is False
    r = run("ecc", "off", "--gpu", "0,1")
    assert r.exit_code == 0, r.output
    assert "GPU 0 (NVIDIA H100 80GB HBM3): ECC will be off after the next reboot" in r.stdout
    assert "only after a reboot" in r.stderr
    assert fake.writes == [("nvmlDeviceSetEccMode", 0, 0), ("nvmlDeviceSetEccMode", 1, 0)]
    show = run("ecc", "show")
    assert "off (pending)" in show.stdout
    again = json.loads(run("ecc", "off", "--gpu", "0", "--json").stdout)
    assert again["changed"][0]["changed"] is False and again["reboot_required"] is True
    assert len(fake.writes) == 2  # nothing rewritten
    back = run("ecc", "on", "--gpu", "0")
    assert "ECC is already on" in back.stdout and fake.writes[-1] == ("nvmlDeviceSetEccMode", 0, 1)


def test_geforce_has_no_ecc_and_no_driver_is_clear(nv) -> None:  # type: ignore[no-untyped-def]
    fake = nv("rtx3090x2_pcie")
    r = run("ecc", "show")
    assert r.exit_code == 0 and "no ECC" in r.stderr
    r = run("ecc", "off")
    assert r.exit_code == 1 and "does not support ECC" in r.stderr and fake.writes == []
    nv("no_driver")
    r = run("power", "show")
    assert r.exit_code == 1 and "NVML could not start" in r.stderr and "llmops doctor" in r.stderr


def test_lost_gpu_is_an_error_row(nv) -> None:  # type: ignore[no-untyped-def]
    nv("lost_gpu")
    doc = json.loads(run("power", "show", "--json").stdout)
    errors = [g for g in doc["gpus"] if g["error"]]
    assert errors and all("Lost" in g["error"] or "lost" in g["error"] for g in errors)
    assert any(g["error"] is None and g["limit_w"] for g in doc["gpus"])
    r = run("power", "set", "--percent", "80")
    lost = errors[0]["index"]
    assert r.exit_code == 1 and f"GPU {lost} does not answer NVML" in r.stderr
    r = run("power", "set", "--percent", "80", "--gpu", "0" if lost != 0 else "1")
    assert r.exit_code == 0, r.output
