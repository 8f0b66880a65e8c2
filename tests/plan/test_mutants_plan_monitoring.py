"""plan/monitoring.py: the dashboards name the metrics each engine really exports, and the
Grafana/Prometheus pieces point at one another, pinned where the mutation benchmark found gaps
(benchmarks/MUTATION.md). tests/cli/test_render_monitoring.py renders whole files through the
CLI; these check the facts one at a time on the plan."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
import yaml

from llmops.backend.metrics import Metrics
from llmops.errors import UsageError
from llmops.plan import monitoring
from llmops.plan.compose import render_compose
from llmops.plan.k8s import K8sOptions, render_k8s
from llmops.plan.launch import LaunchOptions, plan_launch
from tests.support.launch_cases import SMOL
from tests.support.scale_cases import llamacpp_plan, tgi_plan, vllm_plan


def _exprs(plan: Any) -> list[str]:
    return [t["expr"] for p in monitoring.panels(plan) for t in p["targets"]]


def _torch_plan() -> Any:
    return plan_launch(SMOL, LaunchOptions(engine="torch", name="s", context=2048), None)


def _families(text: str) -> set[str]:
    """Metric family names declared in a Prometheus text exposition (``# TYPE name kind``)."""
    return set(re.findall(r"^# TYPE (\S+) \S+$", text, re.M))


def test_vllm_panels_name_vllms_own_metrics() -> None:
    # vLLM v0.20.2 vllm/v1/metrics/loggers.py: gauges num_requests_waiting/running and
    # kv_cache_usage_perc, counters generation_tokens and request_success (exported with
    # `_total`), the histogram time_to_first_token_seconds; all under the `vllm:` prefix
    exprs = _exprs(vllm_plan())
    assert "sum(rate(vllm:request_success_total[1m]))" in exprs
    assert "sum(rate(vllm:generation_tokens_total[1m]))" in exprs
    assert "sum(vllm:num_requests_waiting)" in exprs
    assert "sum(vllm:num_requests_running)" in exprs
    assert "avg(vllm:kv_cache_usage_perc)" in exprs
    for q in ("0.99", "0.5"):
        assert (
            f"histogram_quantile({q}, sum by (le) "
            "(rate(vllm:time_to_first_token_seconds_bucket[5m])))" in exprs
        )


def test_tgi_and_llamacpp_panels_name_their_metrics() -> None:
    # TGI docs/source/reference/metrics.md: tgi_queue_size, tgi_batch_current_size,
    # tgi_request_generated_tokens (a histogram: `_sum` is the token count), tgi_request_success
    tgi = _exprs(tgi_plan())
    assert "sum(rate(tgi_request_success[1m]))" in tgi
    assert "sum(rate(tgi_request_generated_tokens_sum[1m]))" in tgi
    assert {"sum(tgi_queue_size)", "sum(tgi_batch_current_size)"} <= set(tgi)
    # llama.cpp tools/server (with --metrics): requests_deferred waits, requests_processing runs
    cpp = _exprs(llamacpp_plan())
    assert "sum(rate(llamacpp:tokens_predicted_total[1m]))" in cpp
    assert {"sum(llamacpp:requests_deferred)", "sum(llamacpp:requests_processing)"} <= set(cpp)
    # neither exports a KV-cache usage or a time-to-first-token histogram
    assert not any("histogram_quantile" in e or "kv" in e.lower() for e in tgi + cpp)


def test_the_torch_dashboard_reads_what_the_bundled_backend_exports() -> None:
    """Every metric the torch engine's panels query is a family llmops' backend renders."""
    exported = _families(Metrics().render(ready=True))
    exprs = _exprs(_torch_plan())
    used = set()
    for e in exprs:
        used |= {n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e) if n.startswith("llmops_")}
    assert used, exprs
    # a histogram is queried through its `_bucket` series
    assert {u.removesuffix("_bucket") for u in used} <= exported
    # requests/s, tokens/s, waiting, running and the TTFT quantiles: everything it exports
    assert {u.removesuffix("_bucket") for u in used} == {
        "llmops_requests_total",
        "llmops_generated_tokens_total",
        "llmops_queue_depth",
        "llmops_active_sequences",
        "llmops_time_to_first_token_seconds",
    }
    titles = [p["title"] for p in monitoring.panels(_torch_plan())]
    assert "Requests waiting / running" in titles and "Time to first token" in titles
    queue = next(p for p in monitoring.panels(_torch_plan()) if p["title"].startswith("Requests w"))
    assert [t["legendFormat"] for t in queue["targets"]] == ["waiting", "running"]


def test_panels_query_the_provisioned_prometheus_datasource() -> None:
    ds = monitoring.datasources("http://p:9090")["datasources"][0]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True
    for p in monitoring.panels(vllm_plan()):
        assert p["datasource"] == {"type": ds["type"], "uid": ds["uid"]}
        # refIds A, B, ... in order within a panel (Grafana's query letters)
        assert [t["refId"] for t in p["targets"]] == [
            chr(ord("A") + i) for i in range(len(p["targets"]))
        ]


def test_gpu_panels_use_the_units_dcgm_reports_in() -> None:
    """dcgm-exporter's default counters (etc/default-counters.csv): DCGM_FI_DEV_GPU_UTIL "GPU
    utilization (in %)", DCGM_FI_DEV_FB_USED "Framebuffer memory used (in MiB)",
    DCGM_FI_DEV_POWER_USAGE "Power draw (in W)", DCGM_FI_DEV_GPU_TEMP "GPU temperature (in C)".
    Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts): percent, "mbytes" is
    mebibytes ("decmbytes" is SI megabytes), watt, celsius."""
    units = {
        t["expr"]: p["fieldConfig"]["defaults"]["unit"]
        for p in monitoring.panels(vllm_plan())
        for t in p["targets"]
        if t["expr"].startswith("DCGM_")
    }
    assert units == {
        "DCGM_FI_DEV_GPU_UTIL": "percent",
        "DCGM_FI_DEV_FB_USED": "mbytes",
        "DCGM_FI_DEV_POWER_USAGE": "watt",
        "DCGM_FI_DEV_GPU_TEMP": "celsius",
    }


def test_panels_tile_a_two_column_grid() -> None:
    ps = monitoring.panels(vllm_plan())
    assert [p["id"] for p in ps] == list(range(1, len(ps) + 1))
    for i, p in enumerate(ps):
        assert p["gridPos"] == {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}


def test_the_dashboard_provider_reads_the_folder_the_dashboard_is_written_to() -> None:
    """Grafana's file provider (type ``file``) loads every JSON in ``options.path``: the compose
    start script writes the dashboard there, and the k8s pod mounts its ConfigMap there."""
    dp: Any = monitoring.DASHBOARD_PROVIDER
    (provider,) = dp["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    plan = vllm_plan()
    doc = yaml.safe_load(monitoring.add_to_compose(render_compose(plan, secrets_file="/s"), plan))
    script = doc["services"]["grafana"]["command"][0]
    written = re.findall(r"cat > (\S+\.json) <<", script)
    assert written == [f"{folder}/llmops.json"]
    assert f"mkdir -p {folder}\n" in script
    docs = [
        d
        for d in yaml.safe_load_all(monitoring.add_to_k8s(render_k8s(plan, K8sOptions()), plan))
        if d
    ]
    graf = next(d for d in docs if d["kind"] == "Deployment" and "grafana" in d["metadata"]["name"])
    mounts = {
        m["name"]: m["mountPath"]
        for m in graf["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["dashboards"] == folder


def test_dashboard_uid_is_cut_to_grafanas_40_characters() -> None:
    plan = dataclasses.replace(vllm_plan(), name="a" * 60)
    d = monitoring.dashboard(plan)
    assert d["uid"] == ("llmops-" + "a" * 60)[:40] and len(d["uid"]) == 40
    assert d["title"] == f"llmops {plan.name} (vllm, {plan.model})"
    # Grafana's dashboard model: the last hour, relative to now
    assert d["time"] == {"from": "now-1h", "to": "now"}


def test_monitoring_is_only_for_compose_and_k8s() -> None:
    plan = vllm_plan()
    with pytest.raises(UsageError) as e:
        monitoring.add_monitoring("", plan, "shell")
    assert "--format compose" in (e.value.hint or "")


def test_a_compose_service_named_like_a_monitoring_one_is_refused() -> None:
    plan = dataclasses.replace(vllm_plan(), name="grafana")
    with pytest.raises(UsageError) as e:
        monitoring.add_monitoring(render_compose(plan, secrets_file="/s"), plan, "compose")
    assert "grafana" in e.value.message


def test_dashboard_json_is_the_dashboard() -> None:
    plan = tgi_plan()
    f = monitoring.files(plan, "m:80", "http://p:9090", None)
    assert json.loads(f["llmops.json"]) == monitoring.dashboard(plan)
    prom = yaml.safe_load(f["prometheus.yml"])
    # no DCGM target given: the engine's job alone
    assert [j["job_name"] for j in prom["scrape_configs"]] == ["m"]
    assert prom["scrape_configs"][0]["metrics_path"] == "/metrics"


def _k8s_docs(plan: Any, namespace: str | None = None) -> list[dict[str, Any]]:
    text = monitoring.add_to_k8s(render_k8s(plan, K8sOptions(namespace=namespace)), plan)
    return [d for d in yaml.safe_load_all(text) if d]


def test_every_k8s_pod_mounts_volumes_it_declares_from_configmaps_rendered_beside_it() -> None:
    docs = _k8s_docs(vllm_plan())
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    pods = [
        d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet") and "monitoring" in d["metadata"]["name"]
    ]
    assert len(pods) == 3
    for pod in pods:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, m
                assert volumes[m["name"]]["configMap"]["name"] in configmaps
    # Grafana reads its datasource where Grafana provisions datasources from
    graf = next(p for p in pods if p["containers"][0]["name"] == "grafana")
    mounts = {m["mountPath"]: m["name"] for m in graf["containers"][0]["volumeMounts"]}
    ds_cm = next(
        v["configMap"]["name"]
        for v in graf["volumes"]
        if v["name"] == mounts["/etc/grafana/provisioning/datasources"]
    )
    assert yaml.safe_load(configmaps[ds_cm]["data"]["llmops.yaml"])["datasources"][0]["uid"] == (
        monitoring.DATASOURCE_UID
    )


def test_the_dcgm_exporter_runs_on_the_nodes_the_engine_is_scheduled_on() -> None:
    docs = _k8s_docs(vllm_plan())
    engine = next(d for d in docs if d["kind"] == "Deployment")  # the engine's, first
    dcgm = next(d for d in docs if d["kind"] == "DaemonSet")
    # GPU feature discovery labels GPU nodes nvidia.com/gpu.present=true
    assert dcgm["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert engine["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # the exporter's Helm chart (deployment/values.yaml) runs it as root with SYS_ADMIN
    ctx = dcgm["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert ctx == {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}}


@pytest.mark.parametrize(("name", "namespace"), [("l", "ml"), ("n" * 60, None)])
def test_the_grafana_secret_the_note_creates_is_the_one_the_pod_reads(
    name: str, namespace: str | None
) -> None:
    plan = dataclasses.replace(vllm_plan(), name=name)
    text = monitoring.add_to_k8s(render_k8s(plan, K8sOptions(namespace=namespace)), plan)
    ns = f" -n {namespace}" if namespace else ""
    m = re.search(
        rf"kubectl create secret generic (\S+){ns} --from-literal=([a-z-]+)=<password>\n", text
    )
    assert m, text
    docs = [d for d in yaml.safe_load_all(text) if d]
    graf = next(d for d in docs if d["kind"] == "Deployment" and "grafana" in d["metadata"]["name"])
    env = {e["name"]: e for e in graf["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (m.group(1), m.group(2))
    # every monitoring object is in the engine's namespace (no key at all without one)
    assert {d["metadata"].get("namespace", "-") for d in docs} == {namespace or "-"}


def test_k8s_grafana_reads_the_prometheus_service() -> None:
    docs = _k8s_docs(vllm_plan())
    prom = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-prometheus")
    )
    cm = next(d for d in docs if d["metadata"]["name"].endswith("-grafana-datasources"))
    ds = yaml.safe_load(cm["data"]["llmops.yaml"])["datasources"][0]
    port = prom["spec"]["ports"][0]["port"]
    assert ds["url"] == f"http://{prom['metadata']['name']}:{port}"
    # Grafana provisions every *.yaml in its provisioning folders
    for d in docs:
        if d["kind"] == "ConfigMap" and "grafana-" in d["metadata"]["name"]:
            assert all(k.endswith((".yaml", ".json")) for k in d["data"]), d["data"]
    providers = next(d for d in docs if d["metadata"]["name"].endswith("-grafana-providers"))
    assert list(providers["data"]) == ["llmops.yaml"]


def _compose_monitoring() -> dict[str, Any]:
    plan = vllm_plan()
    doc: dict[str, Any] = yaml.safe_load(
        monitoring.add_to_compose(render_compose(plan, secrets_file="/s"), plan)
    )
    services: dict[str, Any] = doc["services"]
    return services


def test_compose_prometheus_reads_the_config_its_script_writes() -> None:
    prom = _compose_monitoring()["prometheus"]
    # the command is one shell script: entrypoint `/bin/sh -c`
    assert prom["entrypoint"] == ["/bin/sh", "-c"]
    script = prom["command"][0]
    (path,) = re.findall(r"cat > (\S+) <<", script)
    assert f"--config.file={path}" in script.splitlines()[-1]
    assert script.splitlines()[-1].startswith("exec /bin/prometheus ")
    assert _compose_monitoring()["grafana"]["entrypoint"] == ["/bin/sh", "-c"]


def test_compose_dcgm_gets_every_gpu_through_the_nvidia_driver() -> None:
    dev = _compose_monitoring()["dcgm-exporter"]["deploy"]["resources"]["reservations"]["devices"]
    # compose's GPU reservation: driver nvidia, count all, capability gpu
    assert dev == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_grafana_lets_anonymous_visitors_view_in_compose_and_k8s() -> None:
    # Grafana reads [auth.anonymous] enabled / org_role from GF_AUTH_ANONYMOUS_* variables
    want = {"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer"}
    env = _compose_monitoring()["grafana"]["environment"]
    assert {k: env[k] for k in want} == want
    docs = _k8s_docs(vllm_plan())
    graf = next(d for d in docs if d["kind"] == "Deployment" and "grafana" in d["metadata"]["name"])
    k8s_env = {
        e["name"]: e.get("value") for e in graf["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {k: k8s_env[k] for k in want} == want


def test_the_compose_header_is_kept_above_the_monitoring_note() -> None:
    plan = vllm_plan()
    text = render_compose(plan, secrets_file="/s")
    head = "".join(ln for ln in text.splitlines(keepends=True) if ln.startswith("#"))
    out = monitoring.add_to_compose(text, plan)
    assert out.startswith(head + "# monitoring: Prometheus on 127.0.0.1:9090")


def test_start_scripts_double_dollars_for_compose() -> None:
    # compose interpolates `$VAR` in `command`; `$$` is a literal `$`
    script = monitoring._write_then_exec([("/a/b.yml", "x: $HOME")], ["/bin/true"])
    assert (
        script
        == "mkdir -p /a\ncat > /a/b.yml <<'LLMOPS_EOF'\nx: $$HOME\nLLMOPS_EOF\nexec /bin/true\n"
    )


def test_grafana_provisioning_files_are_version_1() -> None:
    # Grafana's provisioning files (datasources, dashboard providers) are `apiVersion: 1`
    f = monitoring.files(vllm_plan(), "l:8000", "http://p:9090", None)
    ds = yaml.safe_load(f["datasource.yaml"])
    assert ds["apiVersion"] == 1 and yaml.safe_load(f["dashboards.yaml"])["apiVersion"] == 1
    assert set(ds["datasources"][0]) == {"name", "type", "uid", "access", "url", "isDefault"}
    dp: Any = monitoring.DASHBOARD_PROVIDER
    assert dp["providers"][0]["name"]


def test_panel_units_follow_each_metrics_unit() -> None:
    # Grafana unit ids: reqps, percentunit (vLLM's kv_cache_usage_perc is 0-1), s (TTFT in
    # seconds), percent (DCGM_FI_DEV_GPU_UTIL in %), watt, celsius; every panel a timeseries
    by_title = {p["title"]: p for p in monitoring.panels(vllm_plan())}
    units = {t: p["fieldConfig"]["defaults"]["unit"] for t, p in by_title.items()}
    assert units["Requests/s"] == "reqps"
    assert units["KV-cache usage"] == "percentunit"
    assert units["Time to first token"] == "s"
    assert units["GPU utilisation"] == "percent"
    assert units["GPU power"] == "watt"
    assert units["GPU temperature"] == "celsius"
    assert {p["type"] for p in by_title.values()} == {"timeseries"}
    gpu = {
        t: [x["expr"] for x in p["targets"]] for t, p in by_title.items() if t.startswith("GPU ")
    }
    # dcgm-exporter's default counters (etc/default-counters.csv)
    assert gpu == {
        "GPU utilisation": ["DCGM_FI_DEV_GPU_UTIL"],
        "GPU memory used": ["DCGM_FI_DEV_FB_USED"],
        "GPU power": ["DCGM_FI_DEV_POWER_USAGE"],
        "GPU temperature": ["DCGM_FI_DEV_GPU_TEMP"],
    }


def test_the_dcgm_image_is_nvidias_exporter() -> None:
    repo, _, tag = _compose_monitoring()["dcgm-exporter"]["image"].rpartition(":")
    assert repo == "nvcr.io/nvidia/k8s/dcgm-exporter" and tag
