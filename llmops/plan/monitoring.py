"""Monitoring for the compose and Kubernetes renders (``render --monitoring``): Prometheus
scraping the engine's ``/metrics`` and NVIDIA's DCGM exporter, and Grafana with the datasource
and one dashboard provisioned. Pure: documents built from the plan; no I/O.

Facts used here, with their sources:

- Engine metric names: :data:`ENGINE_METRICS` (sources in its comment); the same table is what
  ``llmops bench`` and ``llmops top`` read (``llmops.client.metrics_scrape``).
- DCGM exporter fields ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_DEV_POWER_USAGE`` (W), ``DCGM_FI_DEV_GPU_TEMP`` (C): NVIDIA/dcgm-exporter
  ``etc/default-counters.csv`` (the exporter's default set); it listens on :9400 and needs
  ``SYS_ADMIN`` (its Helm chart, ``deployment/values.yaml``).
- Images: pinned tags. ``prom/prometheus:v3.5.0``, ``grafana/grafana:12.1.1`` and
  ``nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless`` are tags in public use; no
  registry is reachable from the machine that wrote this, so pull them once before relying on
  them (``docker pull``) and change :data:`IMAGES` if one is gone.
- Grafana provisioning: ``/etc/grafana/provisioning/datasources/*.yaml`` and
  ``.../dashboards/*.yaml`` (a file provider pointing at a folder of dashboard JSON).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from llmops.plan.engines.base import LaunchPlan

#: Per engine profile: figure -> metric name (None: not exported).
#: vLLM v0.20.2 ``vllm/v1/metrics/loggers.py`` (l.452, 462, 520, 663, 673, 755; counters get
#: ``_total``); TGI ``docs/source/reference/metrics.md`` (huggingface/text-generation-inference
#: at 53fdbe6); llama.cpp b11434 ``tools/server/server-task.cpp`` l.1530-1610 (with
#: ``--metrics``); llmops' backend ``llmops/backend/metrics.py``.
ENGINE_METRICS: dict[str, dict[str, str | None]] = {
    "vllm": {
        "waiting": "vllm:num_requests_waiting",
        "running": "vllm:num_requests_running",
        "kv_usage": "vllm:kv_cache_usage_perc",
        "generated_tokens": "vllm:generation_tokens_total",
        "requests": "vllm:request_success_total",
        "ttft": "vllm:time_to_first_token_seconds",
    },
    "tgi": {
        "waiting": "tgi_queue_size",
        "running": "tgi_batch_current_size",
        "kv_usage": None,
        "generated_tokens": "tgi_request_generated_tokens_sum",
        "requests": "tgi_request_success",
        "ttft": None,
    },
    "llamacpp": {
        "waiting": "llamacpp:requests_deferred",
        "running": "llamacpp:requests_processing",
        "kv_usage": None,
        "generated_tokens": "llamacpp:tokens_predicted_total",
        "requests": None,
        "ttft": None,
    },
    "llmops": {
        "waiting": "llmops_queue_depth",
        "running": "llmops_active_sequences",
        "kv_usage": None,
        "generated_tokens": "llmops_generated_tokens_total",
        "requests": "llmops_requests_total",
        "ttft": "llmops_time_to_first_token_seconds",
    },
}

#: The metrics profile of each llmops engine (the bundled torch backend is "llmops").
PROFILE_OF_ENGINE = {"vllm": "vllm", "tgi": "tgi", "llamacpp": "llamacpp", "torch": "llmops"}

IMAGES = {
    "prometheus": "prom/prometheus:v3.5.0",
    "grafana": "grafana/grafana:12.1.1",
    "dcgm": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless",
}
DCGM_PORT = 9400
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
DATASOURCE_UID = "llmops-prometheus"
SCRAPE_INTERVAL = "5s"


def profile(plan: LaunchPlan) -> dict[str, str | None]:
    return ENGINE_METRICS.get(PROFILE_OF_ENGINE.get(plan.engine, ""), {})


def prometheus_config(engine_target: str, dcgm_target: str | None, job: str) -> dict[str, Any]:
    """prometheus.yml: the engine's /metrics and (when given) the DCGM exporter."""
    jobs: list[dict[str, Any]] = [
        {
            "job_name": job,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [engine_target]}],
        }
    ]
    if dcgm_target:
        jobs.append({"job_name": "dcgm", "static_configs": [{"targets": [dcgm_target]}]})
    return {"global": {"scrape_interval": SCRAPE_INTERVAL}, "scrape_configs": jobs}


def _panel(
    pid: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def panels(plan: LaunchPlan) -> list[dict[str, Any]]:
    """Engine panels (what its metrics allow) then the GPU panels."""
    m = profile(plan)
    want: list[tuple[str, list[tuple[str, str]], str]] = []
    if m.get("requests"):
        want.append(("Requests/s", [(f"sum(rate({m['requests']}[1m]))", "finished")], "reqps"))
    if m.get("generated_tokens"):
        want.append(
            ("Output tokens/s", [(f"sum(rate({m['generated_tokens']}[1m]))", "tokens/s")], "short")
        )
    queue = [(f"sum({m[k]})", k) for k in ("waiting", "running") if m.get(k)]
    if queue:
        want.append(("Requests waiting / running", queue, "short"))
    if m.get("kv_usage"):
        want.append(("KV-cache usage", [(f"avg({m['kv_usage']})", "KV used")], "percentunit"))
    if m.get("ttft"):
        b = f"{m['ttft']}_bucket"
        want.append(
            (
                "Time to first token",
                [
                    (f"histogram_quantile(0.99, sum by (le) (rate({b}[5m])))", "p99"),
                    (f"histogram_quantile(0.5, sum by (le) (rate({b}[5m])))", "p50"),
                ],
                "s",
            )
        )
    want += [
        ("GPU utilisation", [("DCGM_FI_DEV_GPU_UTIL", "GPU {{gpu}}")], "percent"),
        # DCGM reports framebuffer memory in MiB; Grafana's unit for MiB is "mbytes"
        # ("decmbytes" is SI megabytes)
        ("GPU memory used", [("DCGM_FI_DEV_FB_USED", "GPU {{gpu}}")], "mbytes"),
        ("GPU power", [("DCGM_FI_DEV_POWER_USAGE", "GPU {{gpu}}")], "watt"),
        ("GPU temperature", [("DCGM_FI_DEV_GPU_TEMP", "GPU {{gpu}}")], "celsius"),
    ]
    return [
        _panel(i + 1, title, exprs, unit, 12 * (i % 2), 8 * (i // 2))
        for i, (title, exprs, unit) in enumerate(want)
    ]


def dashboard(plan: LaunchPlan) -> dict[str, Any]:
    return {
        "uid": f"llmops-{plan.name}"[:40],
        "title": f"llmops {plan.name} ({plan.engine}, {plan.model})",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "10s",
        "panels": panels(plan),
    }


def datasources(prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
            }
        ],
    }


DASHBOARD_PROVIDER = {
    "apiVersion": 1,
    "providers": [
        {
            "name": "llmops",
            "type": "file",
            "options": {"path": "/var/lib/grafana/dashboards"},
        }
    ],
}


def _dump(obj: Any) -> str:
    text: str = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)
    return text


def files(
    plan: LaunchPlan, engine_target: str, prometheus_url: str, dcgm_target: str | None
) -> dict[str, str]:
    """The config files, by name: prometheus.yml, datasource.yaml, dashboards.yaml, the JSON."""
    return {
        "prometheus.yml": _dump(prometheus_config(engine_target, dcgm_target, plan.name)),
        "datasource.yaml": _dump(datasources(prometheus_url)),
        "dashboards.yaml": _dump(DASHBOARD_PROVIDER),
        "llmops.json": json.dumps(dashboard(plan), indent=1),
    }


# ------------------------------------------------------------------------------- compose
def _write_then_exec(writes: list[tuple[str, str]], exec_argv: list[str]) -> str:
    """A /bin/sh script that writes each file (quoted heredocs: nothing expands) and then execs
    the program; ``$`` is doubled for compose's interpolation."""
    lines = []
    for path, text in writes:
        lines.append(f"mkdir -p {path.rsplit('/', 1)[0]}")
        lines.append(f"cat > {path} <<'LLMOPS_EOF'\n{text.rstrip()}\nLLMOPS_EOF")
    lines.append("exec " + " ".join(exec_argv))
    return "\n".join(lines).replace("$", "$$") + "\n"


def compose_services(plan: LaunchPlan) -> dict[str, dict[str, Any]]:
    """The prometheus, dcgm-exporter and grafana services beside the engine's service. Their
    config travels inside the compose file (written by the container at start), so the file
    stays the single artifact. Grafana's admin password is ``$GRAFANA_ADMIN_PASSWORD`` (never
    rendered); anonymous visitors get a read-only view."""
    port = plan.ports[0].container_port
    f = files(
        plan,
        f"{plan.name}:{port}",
        f"http://prometheus:{PROMETHEUS_PORT}",
        f"dcgm-exporter:{DCGM_PORT}",
    )
    prom_script = _write_then_exec(
        [("/etc/prometheus/prometheus.yml", f["prometheus.yml"])],
        [
            "/bin/prometheus",
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
        ],
    )
    graf_script = _write_then_exec(
        [
            ("/etc/grafana/provisioning/datasources/llmops.yaml", f["datasource.yaml"]),
            ("/etc/grafana/provisioning/dashboards/llmops.yaml", f["dashboards.yaml"]),
            ("/var/lib/grafana/dashboards/llmops.json", f["llmops.json"]),
        ],
        ["/run.sh"],
    )
    gpu_request = {
        "resources": {
            "reservations": {
                "devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
            }
        }
    }
    return {
        "prometheus": {
            "image": IMAGES["prometheus"],
            "entrypoint": ["/bin/sh", "-c"],
            "command": [prom_script],
            "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
            "depends_on": [plan.name, "dcgm-exporter"],
            "restart": "unless-stopped",
        },
        "dcgm-exporter": {
            "image": IMAGES["dcgm"],
            "cap_add": ["SYS_ADMIN"],
            "deploy": gpu_request,
            "restart": "unless-stopped",
        },
        "grafana": {
            "image": IMAGES["grafana"],
            "entrypoint": ["/bin/sh", "-c"],
            "command": [graf_script],
            "environment": {
                "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD}",
                "GF_AUTH_ANONYMOUS_ENABLED": "true",
                "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            },
            "ports": [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"],
            "depends_on": ["prometheus"],
            "restart": "unless-stopped",
        },
    }


def add_to_compose(text: str, plan: LaunchPlan) -> str:
    """The rendered compose text with the monitoring services added (header comments kept).

    Raises:
        ValueError: a service of that name already exists.
    """
    lines = text.splitlines(keepends=True)
    head = "".join(ln for ln in lines if ln.startswith("#"))
    doc = yaml.safe_load("".join(ln for ln in lines if not ln.startswith("#")))
    extra = compose_services(plan)
    clash = sorted(set(extra) & set(doc.get("services", {})))
    if clash:
        raise ValueError(f"the compose file already has a service named {clash[0]}")
    doc["services"].update(extra)
    note = (
        f"# monitoring: Prometheus on 127.0.0.1:{PROMETHEUS_PORT} scrapes {plan.name} and the DCGM "
        f"exporter; Grafana on 127.0.0.1:{GRAFANA_PORT} (dashboard 'llmops {plan.name}').\n"
        "#   set GRAFANA_ADMIN_PASSWORD before `docker compose up`.\n"
    )
    return head + note + _dump(doc)


# ---------------------------------------------------------------------------- kubernetes
def k8s_manifests(
    plan: LaunchPlan, service_name: str, namespace: str | None
) -> list[dict[str, Any]]:
    """ConfigMaps, Prometheus and Grafana Deployments + Services, and a DCGM exporter
    DaemonSet on the GPU nodes, all labelled ``app.kubernetes.io/part-of: llmops``."""
    port = plan.ports[0].container_port
    base = f"{service_name}-monitoring"[:50]
    f = files(
        plan,
        f"{service_name}:{port}",
        f"http://{base}-prometheus:{PROMETHEUS_PORT}",
        f"{base}-dcgm:{DCGM_PORT}",
    )
    k = _K8s(base, service_name, namespace)
    return [
        k.config_map("prometheus-config", {"prometheus.yml": f["prometheus.yml"]}),
        k.workload("prometheus", "Deployment", _prometheus_pod(base)),
        k.service("prometheus", PROMETHEUS_PORT),
        k.workload("dcgm", "DaemonSet", _dcgm_pod()),
        k.service("dcgm", DCGM_PORT),
        k.config_map("grafana-datasources", {"llmops.yaml": f["datasource.yaml"]}),
        k.config_map("grafana-providers", {"llmops.yaml": f["dashboards.yaml"]}),
        k.config_map("grafana-dashboards", {"llmops.json": f["llmops.json"]}),
        k.workload("grafana", "Deployment", _grafana_pod(base)),
        k.service("grafana", GRAFANA_PORT),
    ]


class _K8s:
    """The monitoring objects' shared shape: names under ``base``, llmops' labels, selectors."""

    def __init__(self, base: str, service_name: str, namespace: str | None) -> None:
        self.base, self.service_name, self.namespace = base, service_name, namespace

    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/part-of": "llmops",
            "app.kubernetes.io/component": component,
            "llmops.deployment": self.service_name,
        }

    def meta(self, name: str, component: str) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name, "labels": self.labels(component)}
        if self.namespace:
            m["namespace"] = self.namespace
        return m

    def selector(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/component": component, "llmops.deployment": self.service_name}

    def service(self, component: str, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(f"{self.base}-{component}", component),
            "spec": {
                "selector": self.selector(component),
                "ports": [{"name": "http", "port": port, "targetPort": port}],
            },
        }

    def workload(self, component: str, kind: str, pod: dict[str, Any]) -> dict[str, Any]:
        """A Deployment (one replica) or a DaemonSet running ``pod``."""
        spec: dict[str, Any] = {
            "selector": {"matchLabels": self.selector(component)},
            "template": {"metadata": {"labels": self.labels(component)}, "spec": pod},
        }
        if kind == "Deployment":
            spec["replicas"] = 1
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": self.meta(f"{self.base}-{component}", component),
            "spec": spec,
        }

    def config_map(self, name: str, data: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.meta(f"{self.base}-{name}", name),
            "data": data,
        }


def _prometheus_pod(base: str) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "prometheus",
                "image": IMAGES["prometheus"],
                "args": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                ],
                "ports": [{"containerPort": PROMETHEUS_PORT, "name": "http"}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/prometheus"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": f"{base}-prometheus-config"}}],
    }


def _grafana_pod(base: str) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "grafana",
                "image": IMAGES["grafana"],
                "ports": [{"containerPort": GRAFANA_PORT, "name": "http"}],
                "env": [
                    {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "true"},
                    {"name": "GF_AUTH_ANONYMOUS_ORG_ROLE", "value": "Viewer"},
                    {
                        "name": "GF_SECURITY_ADMIN_PASSWORD",
                        "valueFrom": {
                            "secretKeyRef": {"name": f"{base}-grafana", "key": "admin-password"}
                        },
                    },
                ],
                "volumeMounts": [
                    {"name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources"},
                    {"name": "providers", "mountPath": "/etc/grafana/provisioning/dashboards"},
                    {"name": "dashboards", "mountPath": "/var/lib/grafana/dashboards"},
                ],
            }
        ],
        "volumes": [
            {"name": "datasources", "configMap": {"name": f"{base}-grafana-datasources"}},
            {"name": "providers", "configMap": {"name": f"{base}-grafana-providers"}},
            {"name": "dashboards", "configMap": {"name": f"{base}-grafana-dashboards"}},
        ],
    }


def _dcgm_pod() -> dict[str, Any]:
    return {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "containers": [
            {
                "name": "dcgm-exporter",
                "image": IMAGES["dcgm"],
                "ports": [{"containerPort": DCGM_PORT, "name": "metrics"}],
                "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
            }
        ],
    }


def add_to_k8s(text: str, plan: LaunchPlan) -> str:
    """The rendered manifests with the monitoring objects appended, in the engine Service's
    namespace (a comment says which Secret holds Grafana's admin password; its value is never
    rendered)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    svc = next((d for d in docs if d.get("kind") == "Service"), None)
    service = svc["metadata"]["name"] if svc else plan.name
    namespace = svc["metadata"].get("namespace") if svc else None
    base = f"{service}-monitoring"[:50]
    ns = f" -n {namespace}" if namespace else ""
    note = (
        f"# monitoring: Prometheus ({base}-prometheus:{PROMETHEUS_PORT}), the DCGM exporter on GPU "
        f"nodes, Grafana ({base}-grafana:{GRAFANA_PORT}).\n"
        f"#   kubectl create secret generic {base}-grafana{ns} --from-literal=admin-password=<password>\n"
    )
    body = yaml.safe_dump_all(k8s_manifests(plan, service, namespace), sort_keys=False, width=100)
    return text.rstrip("\n") + "\n" + note + "---\n" + body


def add_monitoring(text: str, plan: LaunchPlan, fmt: str) -> str:
    """``render --monitoring``: the compose or k8s text with the monitoring pieces added.

    Raises:
        UsageError: another format, or a compose file that already has those services.
    """
    from llmops.errors import UsageError

    if fmt == "k8s":
        return add_to_k8s(text, plan)
    if fmt != "compose":
        raise UsageError(
            f"--monitoring is for --format compose or k8s, not {fmt}", "--format compose"
        )
    try:
        return add_to_compose(text, plan)
    except ValueError as exc:
        raise UsageError(str(exc), "rename that service, or render without --monitoring") from exc
