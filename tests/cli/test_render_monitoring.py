"""`render --format compose|k8s --monitoring`: Prometheus scraping the engine and the DCGM
exporter, Grafana provisioned with a dashboard of the engine's own metric names; the compose
file through the real docker-compose, the config scripts through a real shell, the manifests
against the Kubernetes schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llmops.cli import app
from llmops.plan.monitoring import ENGINE_METRICS
from tests.support.scale_cases import validate_k8s

HW = ["--hw", "1xA100-80GB"]


def render(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["render", "smollm2", *HW, *args])


def _heredocs(script: str) -> dict[str, str]:
    """path -> text of every `cat > PATH <<'LLMOPS_EOF'` in a container's start script."""
    return dict(re.findall(r"cat > (\S+) <<'LLMOPS_EOF'\n(.*?)\nLLMOPS_EOF", script, re.S))


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_compose_monitoring_for_vllm(tmp_path: Path) -> None:
    r = render("--engine", "vllm", "--format", "compose", "--monitoring")
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.stdout)
    engine = next(n for n in doc["services"] if n not in ("prometheus", "grafana", "dcgm-exporter"))
    assert {"prometheus", "grafana", "dcgm-exporter"} <= set(doc["services"])
    prom_files = _heredocs(doc["services"]["prometheus"]["command"][0].replace("$$", "$"))
    prom = yaml.safe_load(prom_files["/etc/prometheus/prometheus.yml"])
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    assert targets == {engine: [f"{engine}:8000"], "dcgm": ["dcgm-exporter:9400"]}
    graf = _heredocs(doc["services"]["grafana"]["command"][0].replace("$$", "$"))
    dash = json.loads(graf["/var/lib/grafana/dashboards/llmops.json"])
    exprs = " ".join(_exprs(dash))
    vllm = ENGINE_METRICS["vllm"]
    for key in ("waiting", "running", "kv_usage", "generated_tokens", "requests"):
        assert str(vllm[key]) in exprs, key
    assert f"histogram_quantile(0.99, sum by (le) (rate({vllm['ttft']}_bucket[5m])))" in exprs
    for field in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
    ):
        assert field in exprs
    ds = yaml.safe_load(graf["/etc/grafana/provisioning/datasources/llmops.yaml"])
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    assert ds["datasources"][0]["uid"] == dash["panels"][0]["datasource"]["uid"]
    env = doc["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "GRAFANA_ADMIN_PASSWORD" in r.stdout.split("services:")[0]  # the header says so


def test_the_start_scripts_write_their_files_in_a_real_shell(tmp_path: Path) -> None:
    doc = yaml.safe_load(render("--engine", "vllm", "--format", "compose", "--monitoring").stdout)
    for service in ("prometheus", "grafana"):
        script = doc["services"][service]["command"][0].replace("$$", "$")
        script = script.replace(" /etc/", f" {tmp_path}/etc/").replace(
            " /var/", f" {tmp_path}/var/"
        )
        script = re.sub(r"^exec .*$", "exec true", script, flags=re.M)
        subprocess.run(["/bin/sh", "-c", script], check=True)
    prom = yaml.safe_load((tmp_path / "etc/prometheus/prometheus.yml").read_text())
    assert prom["global"]["scrape_interval"] == "5s"
    dash = json.loads((tmp_path / "var/lib/grafana/dashboards/llmops.json").read_text())
    assert dash["title"].startswith("llmops ") and len(dash["panels"]) == 9


@pytest.mark.docker
def test_docker_compose_accepts_it(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    path = tmp_path / "compose.yaml"
    path.write_text(render("--engine", "vllm", "--format", "compose", "--monitoring").stdout)
    base = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    base.update(LLMOPS_API_KEY="sk-x", HF_TOKEN="hf_x")
    missing = subprocess.run(
        ["docker-compose", "-f", str(path), "config"], capture_output=True, text=True, env=base
    )
    assert missing.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in missing.stderr
    ok = subprocess.run(
        ["docker-compose", "-f", str(path), "config"],
        capture_output=True,
        text=True,
        env={**base, "GRAFANA_ADMIN_PASSWORD": "pw-123"},
    )
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)
    assert resolved["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "pw-123"
    # compose turned $$ back into $ (no literal $ in these scripts, so the text is unchanged)
    assert "LLMOPS_EOF" in resolved["services"]["prometheus"]["command"][0]
    dev = resolved["services"]["dcgm-exporter"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["capabilities"] == ["gpu"]


def test_k8s_monitoring_validates_and_scrapes_the_service() -> None:
    r = render("--engine", "vllm", "--format", "k8s", "--monitoring")
    assert r.exit_code == 0, r.output
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    validate_k8s(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds.count("ConfigMap") == 4 and "DaemonSet" in kinds and kinds.count("Service") == 4
    service = next(d for d in docs if d["kind"] == "Service")  # the engine's, first
    cm = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("prometheus-config")
    )
    prom = yaml.safe_load(cm["data"]["prometheus.yml"])
    port = service["spec"]["ports"][0]["port"]
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"{service['metadata']['name']}:{port}"
    ]
    grafana = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-grafana")
    )
    env = {e["name"]: e for e in grafana["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]
    assert "kubectl create secret generic" in r.stdout


@pytest.mark.parametrize(("engine", "ttft"), [("llamacpp", False), ("torch", True)])
def test_dashboard_follows_the_engine(engine: str, ttft: bool) -> None:
    r = render("--engine", engine, "--format", "k8s", "--monitoring")
    assert r.exit_code == 0, r.output
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    cm = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("dashboards")
    )
    exprs = " ".join(_exprs(json.loads(cm["data"]["llmops.json"])))
    profile = ENGINE_METRICS["llamacpp" if engine == "llamacpp" else "llmops"]
    assert str(profile["running"]) in exprs and str(profile["generated_tokens"]) in exprs
    assert ("histogram_quantile" in exprs) is ttft
    assert "vllm:" not in exprs


def test_monitoring_needs_compose_or_k8s() -> None:
    r = render("--format", "shell", "--monitoring")
    assert r.exit_code == 2 and "--monitoring adds to one host's compose or k8s render" in r.stderr
