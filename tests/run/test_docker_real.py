"""The Docker probe and doctor's Docker checks against the real engine (CI runs dockerd)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.hw.docker import probe_docker
from llmops.plan import checks as chk

pytestmark = pytest.mark.docker


def test_probe_reaches_the_real_engine(docker_client) -> None:
    facts = probe_docker()
    version = docker_client.version()
    assert facts.reachable, facts.error
    assert facts.server_version == docker_client.info()["ServerVersion"]
    assert facts.api_version == version["ApiVersion"]
    assert facts.storage_driver == docker_client.info()["Driver"]
    assert "runc" in facts.runtimes


def test_doctor_docker_check_passes_while_dockerd_runs(docker_client) -> None:
    result = CliRunner().invoke(app, ["doctor", "--check", "docker", "--json"])
    doc = json.loads(result.stdout)
    engine = [c for c in doc["checks"] if c["name"] == "docker.engine"]
    assert engine and engine[0]["status"] == "pass", doc["checks"]
    assert doc["facts"]["docker"]["reachable"] is True
    # only the sections the docker checks read were probed
    assert doc["facts"]["hf"] is None and doc["facts"]["tools"] is None


def test_gpu_smoke_test_reports_the_engines_exact_error(docker_client, busybox_image) -> None:
    """No NVIDIA toolkit here: the engine's own refusal is kept and diagnosed."""
    facts = probe_docker(gpu_smoke_test=True, gpu_smoke_test_image=busybox_image)
    smoke = facts.gpu_smoke_test
    assert smoke is not None and smoke.ok is False
    assert smoke.diagnosis in ("no_runtime", "cdi_no_vendor"), smoke.error
    assert "could not select device driver" in smoke.error or "CDI" in smoke.error
    # the failed container is cleaned up
    left = docker_client.containers.list(
        all=True, filters={"label": "llmops.purpose=gpu-smoke-test"}
    )
    assert left == []
    found = chk.check_docker_gpu_smoke(_with_docker(facts))
    assert found[0].status == "fail" and "nvidia-ctk" in (found[0].hint or "")


def test_doctor_gpu_smoke_test_exits_1_with_hint(docker_client, busybox_image) -> None:
    result = CliRunner().invoke(
        app,
        ["doctor", "--check", "docker", "--gpu-smoke-test", "--smoke-image", busybox_image],
    )
    assert result.exit_code == 1, result.output
    assert "docker.gpu-smoke-test" in result.stdout
    assert "nvidia-ctk" in result.stdout


def test_unreachable_engine_is_a_clear_failure(monkeypatch, tmp_path) -> None:
    sock = tmp_path / "docker.sock"
    sock.write_text("")  # a socket path that exists but nothing listens on
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    facts = probe_docker()
    assert not facts.reachable
    assert facts.error_kind in ("daemon_down", "other")
    assert str(sock) in (facts.error or "")


def _with_docker(d):  # type: ignore[no-untyped-def]
    from llmops.hw.facts import HostFacts

    return HostFacts(llmops_version="t", collected_at="t", docker=d)
