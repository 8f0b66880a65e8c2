"""`llmops render` beyond one `docker run`: compose (`--add`), Kubernetes, multi-node vLLM.

The glue between the render command and the pure renderers in ``llmops.plan.compose``,
``llmops.plan.k8s`` and ``llmops.plan.multinode``: it reads what they must not (the compose file
given to ``--add``, the fleet inventory for ``--nodes HOST,HOST``, the catalog) and goes through
``prepare`` like every other render, so the plans cannot disagree.
"""

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.cli import deps
from llmops.errors import DoesNotFitError, UsageError

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts
    from llmops.plan.deploy import Request
    from llmops.plan.k8s import K8sOptions
    from llmops.plan.multinode import NodeHost
    from llmops.run.launching import Prepared

GIB = 1024**3


def nodes_and_hw(
    nodes: str | None, hw: str | None
) -> "tuple[int, str | None, tuple[NodeHost, ...]]":
    """``--nodes N|HOST,HOST`` and ``--hw [NODESx]GPUS`` → (nodes, one node's --hw, hosts)."""
    from llmops.plan.multinode import NodeHost, split_nodes

    hw_nodes, node_hw = split_nodes(hw) if hw else (1, None)
    hosts: tuple[NodeHost, ...] = ()
    count = hw_nodes
    if nodes is not None:
        text = nodes.strip()
        if text.isdigit():
            count = int(text)
        else:
            names = [n.strip() for n in text.split(",") if n.strip()]
            inv = deps.inventory()
            by_name = {h.name: h for h in inv.hosts}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise UsageError(
                    f"--nodes names hosts not in {inv.path}: {', '.join(missing)}",
                    f"hosts there: {', '.join(by_name)}; or give a count, e.g. `--nodes 2`",
                )
            hosts = tuple(NodeHost(n, by_name[n].ssh) for n in names)
            count = len(hosts)
        if count < 1:
            raise UsageError("--nodes must be 1 or more", "e.g. `--nodes 2`")
        if hw_nodes > 1 and count != hw_nodes:
            raise UsageError(
                f"--nodes says {count} nodes and --hw {hw!r} says {hw_nodes}",
                f"give the count once, e.g. `--hw {node_hw} --nodes {hw_nodes}`",
            )
    if max(count, hw_nodes) > MAX_NODES:
        raise UsageError(
            f"{max(count, hw_nodes)} nodes is more than llmops renders (at most {MAX_NODES})",
            "e.g. `--nodes 2`",
        )
    return count, node_hw, hosts


#: A bound on multi-node renders (each node is planned): a typo must not plan a billion nodes.
MAX_NODES = 256


def k8s_options(prep: "Prepared", cache: str | None) -> "K8sOptions":
    """The claim is sized for the weights with room for a second copy (repos often ship both
    safetensors and the original checkpoint) and updates."""
    from llmops.plan.k8s import K8sOptions

    weights = prep.decision.weights_bytes or 0
    size = max(50, math.ceil(2 * weights / GIB))
    opts = K8sOptions(hf_cache=cache or "pvc", cache_size_gib=size)
    opts.host_path()  # validate now: a usage error, not a half-written manifest
    return opts


def prepare_single(req: "Request", facts: "HostFacts") -> "Prepared":
    """``prepare`` for one host; when vLLM does not fit, say which ``--nodes`` would."""
    from llmops.run.launching import prepare

    try:
        return prepare(req, facts, stage="render")
    except DoesNotFitError as e:
        if req.engine not in (None, "vllm") or req.gpus is not None:
            raise
        if not (facts.nvidia and facts.nvidia.healthy_gpus):
            raise
        for n in (2, 3, 4):
            try:
                _prepare_nodes(req, facts, n)
            except (DoesNotFitError, UsageError):
                continue
            gpn = len(facts.nvidia.healthy_gpus)
            raise DoesNotFitError(
                e.message,
                f"it fits on {n} such hosts: `--nodes {n}` plans multi-node vLLM on Ray (tensor "
                f"parallel {gpn} within a host, pipeline parallel {n} across); or {e.hint}",
            ) from e
        raise


def _prepare_nodes(req: "Request", node: "HostFacts", nodes: int) -> "Prepared":
    from llmops.plan.multinode import cluster_facts
    from llmops.run.launching import prepare

    if req.gpus is not None:
        raise UsageError(
            "--gpus picks GPUs on one host; a multi-node plan uses every GPU of each node",
            "drop --gpus, and describe one node with --hw (e.g. `--hw 8xH100 --nodes 2`)",
        )
    cluster = cluster_facts(node, nodes)
    total = len(cluster.nvidia.gpus) if cluster.nvidia else 0
    one = replace(
        req,
        engine=req.engine or "vllm",
        runtime=req.runtime or "docker",
        gpus=tuple(range(total)),
    )
    return prepare(one, cluster, stage="render")


def render_nodes(
    req: "Request",
    node: "HostFacts",
    nodes: int,
    hosts: "tuple[NodeHost, ...]",
    fmt: str,
    k8s_cache: str | None,
) -> tuple[str, tuple[str, ...]]:
    """The multi-node render and its warnings."""
    from llmops.catalog.resolve import resolve
    from llmops.plan.multinode import plan_multinode
    from llmops.plan.render import render_multinode
    from llmops.resources import templates_dir

    if fmt not in ("shell", "json", "k8s"):
        raise UsageError(
            f"a multi-node plan renders as shell, json or k8s, not {fmt}",
            "compose and native describe one host: use `--format shell` or `--format k8s`",
        )
    prep = _prepare_nodes(req, node, nodes)
    spec = resolve(req.model).spec
    gpn = len(prep.plan.gpus) // nodes
    mp = plan_multinode(
        prep.plan,
        nodes=nodes,
        gpus_per_node=gpn,
        attention_heads=spec.arch.attention_heads,
        layers=spec.arch.layers,
        hosts=hosts,
    )
    text = render_multinode(
        mp,
        fmt,
        templates=templates_dir(),
        data_dir=str(prep.data_dir),
        k8s=k8s_options(prep, k8s_cache) if fmt == "k8s" else None,
    )
    return text, prep.warnings


def render_single(prep: "Prepared", fmt: str, add: Path | None, k8s_cache: str | None) -> str:
    """One host's render; ``--add FILE`` merges the compose service into FILE's services."""
    from llmops.plan.render import render, secrets_file
    from llmops.resources import templates_dir

    if add is not None:
        if fmt != "compose":
            raise UsageError("--add merges into a compose file", "add `--format compose`")
        from llmops.plan.compose import merge_compose

        try:
            existing = add.read_text()
        except OSError as e:
            raise UsageError(
                f"cannot read the compose file {add}: {e.strerror or e}",
                "pass an existing file, e.g. one from `llmops render M --format compose > f.yaml`",
            ) from e
        return merge_compose(
            existing,
            prep.plan,
            secrets_file=secrets_file(prep.plan, str(prep.data_dir)),
            where=str(add),
        )
    return render(
        prep.plan,
        fmt,
        templates=templates_dir(),
        data_dir=str(prep.data_dir),
        k8s=k8s_options(prep, k8s_cache) if fmt == "k8s" else None,
    )
