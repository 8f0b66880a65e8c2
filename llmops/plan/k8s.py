"""A LaunchPlan as Kubernetes manifests: a Deployment, a Service and the HF-cache claim.

What carries over from ``docker run``: the image, entrypoint and arguments; the GPUs as
``nvidia.com/gpu`` limits, scheduled onto GPU nodes (node selector from NVIDIA's GPU feature
discovery plus a toleration for the usual GPU taint); ``/dev/shm`` as a memory-backed emptyDir
(host IPC is not an option in a pod; engines.md §4 #1); the HF cache on a PersistentVolumeClaim
or a hostPath; secrets as references to a Secret named after the deployment (never values);
the llmops labels (values made label-safe).

Probes: a startup probe on the health path long enough for a weight download (30 min by
default), a readiness probe that waits for ``/v1/models`` (an HTTP GET where the route is open;
an exec probe sending the API key from the container's own environment where the engine
protects ``/v1``), and a liveness probe on the health path.

Pure: documents are plain dicts; ``render_k8s`` dumps them as multi-document YAML.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.errors import UsageError
from llmops.plan import names
from llmops.plan.launch import LaunchPlan, Mount

if TYPE_CHECKING:
    from llmops.plan.multinode import MultiNodePlan

GPU_RESOURCE = "nvidia.com/gpu"
# Set by NVIDIA GPU feature discovery / the GPU operator on nodes with NVIDIA GPUs.
GPU_NODE_LABEL = "nvidia.com/gpu.present"
STARTUP_PERIOD_S = 10
DEFAULT_SHM_MIB = 16 * 1024  # engines.md §6.3: --shm-size 16g where host IPC is not allowed
LABEL_KEYS = ("deployment", "engine", "model", "quant")


@dataclass(frozen=True)
class K8sOptions:
    """Kubernetes-only choices.

    Args:
        namespace: metadata.namespace of every object (None: the kubectl context's).
        hf_cache: ``pvc`` (a claim named NAME-hf-cache) or ``hostPath:/dir`` on the node.
        cache_size_gib: the claim's requested size.
        storage_class: the claim's storageClassName (None: the cluster default).
    """

    namespace: str | None = None
    hf_cache: str = "pvc"
    cache_size_gib: int = 200
    storage_class: str | None = None

    def check(self) -> None:
        """Raises UsageError for a namespace that is not a DNS-1123 label, a storage class
        that is not a DNS-1123 subdomain, or an unknown HF cache."""
        if self.namespace is not None:
            names.dns_label(self.namespace, "namespace")
        if self.storage_class is not None:
            names.dns_subdomain(self.storage_class, "storage class")
        self.host_path()

    def host_path(self) -> str | None:
        if self.hf_cache == "pvc":
            return None
        kind, _, path = self.hf_cache.partition(":")
        if kind.lower() != "hostpath" or not path.startswith("/") or not path.isprintable():
            raise UsageError(
                f"unknown HF cache {self.hf_cache!r} for Kubernetes",
                "use `pvc` (default) or `hostPath:/absolute/dir/on/the/node`",
            )
        return path


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label from ``text`` (lower case, ``-`` for anything else, trimmed): a
    deployment name such as ``My_Model.v2`` becomes ``my-model-v2``.

    Raises:
        UsageError: when nothing of ``text`` is left (the result is always a DNS-1123 label).
    """
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    if not out:
        raise UsageError(
            f"cannot make a Kubernetes name from {names.printable(repr(text))}",
            "pass `--name my-model`",
        )
    return names.dns_label(out)


def label_value(text: str) -> str:
    """A valid label value: alphanumerics, ``-_.``, at most 63, alphanumeric at both ends."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", out)


def labels(plan: LaunchPlan, component: str | None = None) -> dict[str, str]:
    d = plan.label_dict()
    out = {
        "app.kubernetes.io/name": dns_name(plan.name),
        "app.kubernetes.io/managed-by": "llmops",
    }
    if component:
        out["app.kubernetes.io/component"] = component
    for k in LABEL_KEYS:
        v = label_value(d.get("llmops." + k, ""))
        if v:
            out["llmops." + k] = v
    return out


def selector(plan: LaunchPlan, component: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": dns_name(plan.name)}
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def meta(
    plan: LaunchPlan, name: str, opts: K8sOptions, component: str | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name}
    if opts.namespace:
        m["namespace"] = opts.namespace
    m["labels"] = labels(plan, component)
    return m


def secret_name(plan: LaunchPlan) -> str:
    return dns_name(plan.name)


def secret_key(secret: str) -> str:
    return secret.replace("_", "-")  # api_key -> api-key


def env(plan: LaunchPlan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plan.env]
    for s in plan.secret_env:
        ref: dict[str, Any] = {"name": secret_name(plan), "key": secret_key(s.secret)}
        if not s.required:
            ref["optional"] = True  # e.g. an HF token for a public model: start without it
        out.append({"name": s.env, "valueFrom": {"secretKeyRef": ref}})
    return out


def _ready_probe(plan: LaunchPlan, port: int) -> dict[str, Any]:
    path = plan.health.ready_path
    key = next((s.env for s in plan.secret_env if s.secret == "api_key"), None)
    timing = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    if key is None or not plan.health.needs_auth_for_ready:
        return {"httpGet": {"path": path, "port": "http"}, **timing}
    # The engine protects /v1 with the API key and an httpGet header cannot read a Secret:
    # ask from inside the container, where the key is already in the environment.
    url = f"http://localhost:{port}{path}"
    if plan.engine == "llamacpp":
        cmd = ["sh", "-c", f'curl -fsS -o /dev/null -H "Authorization: Bearer ${key}" {url}']
    else:
        code = (
            "import os, urllib.request; urllib.request.urlopen(urllib.request.Request("
            f"'{url}', headers={{'Authorization': 'Bearer ' + os.environ['{key}']}}), timeout=5)"
        )
        cmd = ["python3", "-c", code]
    return {"exec": {"command": cmd}, **timing}


def container(plan: LaunchPlan, *, name: str = "engine") -> dict[str, Any]:
    """The engine container (without volume mounts: see ``pod_volumes``)."""
    if plan.image is None:
        raise UsageError(
            "Kubernetes runs containers; this plan uses the native runtime",
            "use `--runtime docker` (the default for --format k8s)",
        )
    port = plan.ports[0].container_port
    c: dict[str, Any] = {"name": name, "image": plan.image}
    if plan.entrypoint:
        c["command"] = list(plan.entrypoint)
    c["args"] = list(plan.argv)
    c["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    e = env(plan)
    if e:
        c["env"] = e
    if plan.gpus:
        c["resources"] = {"limits": {GPU_RESOURCE: len(plan.gpus)}}
    start = max(plan.health.start_period_s, 1800)
    c["startupProbe"] = {
        "httpGet": {"path": plan.health.path, "port": "http"},
        "periodSeconds": STARTUP_PERIOD_S,
        "timeoutSeconds": 5,
        "failureThreshold": math.ceil(start / STARTUP_PERIOD_S),
    }
    c["readinessProbe"] = _ready_probe(plan, port)
    c["livenessProbe"] = {
        "httpGet": {"path": plan.health.path, "port": "http"},
        "periodSeconds": 30,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
    }
    return c


def shm_mib(plan: LaunchPlan) -> int:
    return plan.shm_size_mib or DEFAULT_SHM_MIB


def _cache_volume(plan: LaunchPlan, opts: K8sOptions) -> dict[str, Any]:
    hp = opts.host_path()
    if hp is not None:
        return {"name": "hf-cache", "hostPath": {"path": hp, "type": "DirectoryOrCreate"}}
    return {
        "name": "hf-cache",
        "persistentVolumeClaim": {"claimName": f"{dns_name(plan.name, 54)}-hf-cache"},
    }


def _is_cache(m: Mount) -> bool:
    return m.kind == "bind"


def pod_volumes(
    plan: LaunchPlan, opts: K8sOptions, *, cache: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts): the HF cache, emptyDirs for named volumes, /dev/shm in memory.

    ``cache=False`` leaves the cache volume out of ``volumes`` (a StatefulSet's claim template
    provides it).
    """
    vols: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    binds = [m for m in plan.mounts if _is_cache(m)]
    if binds and cache:
        vols.append(_cache_volume(plan, opts))
    for m in binds:
        vm: dict[str, Any] = {"name": "hf-cache", "mountPath": m.target}
        if len(binds) > 1:
            vm["subPath"] = dns_name(m.target)
        if m.read_only:
            vm["readOnly"] = True
        mounts.append(vm)
    for i, m in enumerate(x for x in plan.mounts if not _is_cache(x)):
        vname = f"cache-{i}"
        vols.append({"name": vname, "emptyDir": {}})
        mounts.append({"name": vname, "mountPath": m.target})
    vols.append(
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_mib(plan)}Mi"}}
    )
    mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return vols, mounts


def pod_spec(
    plan: LaunchPlan, opts: K8sOptions, c: dict[str, Any], *, cache: bool = True
) -> dict[str, Any]:
    vols, mounts = pod_volumes(plan, opts, cache=cache)
    c = {**c, "volumeMounts": mounts}
    spec: dict[str, Any] = {
        # no *_PORT service variables: a Service named `vllm` would set VLLM_PORT (engines.md §4 #16)
        "enableServiceLinks": False,
        "containers": [c],
        "volumes": vols,
    }
    if plan.gpus:
        spec["nodeSelector"] = {GPU_NODE_LABEL: "true"}
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def claim(plan: LaunchPlan, opts: K8sOptions, name: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{opts.cache_size_gib}Gi"}},
    }
    if opts.storage_class:
        spec["storageClassName"] = opts.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(plan, name or f"{dns_name(plan.name, 54)}-hf-cache", opts),
        "spec": spec,
    }


def service(plan: LaunchPlan, opts: K8sOptions, component: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(plan, dns_name(plan.name), opts),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(plan, component),
            "ports": [
                {"name": "http", "port": plan.host_port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def manifests(plan: LaunchPlan, opts: K8sOptions | None = None) -> list[dict[str, Any]]:
    """The objects for one deployment: [PersistentVolumeClaim,] Deployment, Service."""
    opts = opts or K8sOptions()
    name = dns_name(plan.name)
    docs: list[dict[str, Any]] = []
    if opts.host_path() is None and any(_is_cache(m) for m in plan.mounts):
        docs.append(claim(plan, opts))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(plan, name, opts),
        "spec": {
            "replicas": 1,
            # GPUs are exclusive: the old pod must go before the new one can schedule
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(plan)},
            "template": {
                "metadata": {"labels": labels(plan)},
                "spec": pod_spec(plan, opts, container(plan)),
            },
        },
    }
    docs += [deployment, service(plan, opts)]
    return docs


def secret_comment(plan: LaunchPlan, opts: K8sOptions) -> str:
    if not plan.secret_env:
        return ""
    ns = f" -n {names.comment(opts.namespace)}" if opts.namespace else ""
    lits = " ".join(f"--from-literal={secret_key(s.secret)}=<{s.secret}>" for s in plan.secret_env)
    optional = [secret_key(s.secret) for s in plan.secret_env if not s.required]
    text = (
        f"# Secrets come from the Secret {secret_name(plan)} (values are never rendered); create "
        "it\n# before applying (a pod waits in CreateContainerConfigError without it):\n"
        f"#   kubectl create secret generic {secret_name(plan)}{ns} {lits}\n"
    )
    if optional:
        text += f"#   ({', '.join(optional)} may be left out: the pod starts without it)\n"
    return text


def dump_all(docs: list[dict[str, Any]]) -> str:
    import yaml

    text: str = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=100)
    return text


def render_k8s(plan: LaunchPlan, opts: K8sOptions | None = None) -> str:
    """Multi-document YAML for ``kubectl apply -f``, with the Secret to create in a comment."""
    opts = opts or K8sOptions()
    opts.check()
    c = names.comment
    head = (
        f"# llmops deployment {c(plan.name)}: {c(plan.model)} ({c(plan.quant)}) on "
        f"{c(plan.engine)}, for Kubernetes.\n"
        "# Rendered by `llmops render --format k8s`; apply with `kubectl apply -f`.\n"
    )
    notes = "".join(f"# note: {c(n)}\n" for n in plan.notes)
    return head + secret_comment(plan, opts) + notes + "---\n" + dump_all(manifests(plan, opts))


# ------------------------------------------------------------------------------ multi-node


def multinode_manifests(mp: MultiNodePlan, opts: K8sOptions | None = None) -> list[dict[str, Any]]:
    """A vLLM Ray cluster: a head StatefulSet (Ray head, then ``vllm serve``), a worker
    StatefulSet (``nodes - 1`` Ray workers), a headless Service for Ray (publishing pods before
    they are ready, since the head is only ready once the workers joined) and the API Service.

    Each pod asks for all of a node's GPUs, so the scheduler puts them on different nodes. The HF
    cache is a claim per pod (volumeClaimTemplates) or the node's hostPath.
    """
    from llmops.plan.multinode import head_script, worker_script

    opts = opts or K8sOptions()
    plan = mp.serve
    name = dns_name(plan.name, 50)
    ray_svc = f"{name}-ray"
    head_host = f"{name}-head-0.{ray_svc}"
    pod_ip = {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(plan, ray_svc, opts),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector(plan),
                "ports": [{"name": "ray", "port": mp.ray_port, "protocol": "TCP"}],
            },
        },
        service(plan, opts, component="head"),
    ]
    use_pvc = opts.host_path() is None and any(_is_cache(m) for m in plan.mounts)
    for role, replicas in (("head", 1), ("worker", mp.nodes - 1)):
        c = container(plan, name="ray-head" if role == "head" else "ray-worker")
        c["command"] = ["/bin/bash", "-c"]
        if role == "head":
            c["args"] = [head_script(mp)]
            c["ports"] = [*c["ports"], {"name": "ray", "containerPort": mp.ray_port}]
        else:
            c["args"] = [worker_script(mp, head=head_host)]
            c.pop("ports")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                c.pop(probe)
        c["env"] = [pod_ip, *c.get("env", [])]
        spec: dict[str, Any] = {
            "serviceName": ray_svc,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector(plan, role)},
            "template": {
                "metadata": {"labels": labels(plan, role)},
                "spec": pod_spec(plan, opts, c, cache=not use_pvc),
            },
        }
        if use_pvc:
            tpl = claim(plan, opts, name="hf-cache")
            spec["volumeClaimTemplates"] = [{"metadata": {"name": "hf-cache"}, "spec": tpl["spec"]}]
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": meta(plan, f"{name}-{role}", opts, role),
                "spec": spec,
            }
        )
    return docs


def render_k8s_multinode(mp: MultiNodePlan, opts: K8sOptions | None = None) -> str:
    opts = opts or K8sOptions()
    opts.check()
    plan = mp.serve
    c = names.comment
    head = (
        f"# llmops multi-node deployment {c(plan.name)}: {c(plan.model)} ({c(plan.quant)}) "
        "on vLLM over "
        f"Ray, for Kubernetes.\n# {mp.nodes} pods x {mp.gpus_per_node} GPUs: tensor parallel "
        f"{mp.tensor_parallel} within a pod, pipeline parallel {mp.pipeline_parallel} across "
        "pods.\n# Rendered by `llmops render --format k8s`; apply with `kubectl apply -f`.\n"
    )
    notes = "".join(f"# note: {c(n)}\n" for n in plan.notes)
    return (
        head
        + secret_comment(plan, opts)
        + notes
        + "---\n"
        + dump_all(multinode_manifests(mp, opts))
    )
