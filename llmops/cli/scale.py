"""`llmops render` beyond one `docker run`: compose (`--add`), Kubernetes, multi-node vLLM.

The glue between the render command and the pure planners and renderers in
``llmops.plan.compose``, ``llmops.plan.k8s`` and ``llmops.plan.multinode``: it reads what they
must not (the compose file given to ``--add``, the fleet inventory for ``--nodes HOST,HOST``, the
catalog) and goes through ``prepare`` like every other render, so the plans cannot disagree.
"""

import math
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.cli import deps
from llmops.errors import DoesNotFitError, UsageError

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts
    from llmops.plan.deploy import Request
    from llmops.plan.k8s import K8sOptions
    from llmops.plan.multinode import NodeLayout
    from llmops.run.launching import Prepared

GIB = 1024**3


def node_layout(nodes: str | None, hw: str | None) -> "NodeLayout":
    """``--nodes N|HOST,HOST`` and ``--hw [NODESx]GPUS``, with the inventory read when
    ``--nodes`` names hosts (``llmops.plan.multinode.node_layout`` decides)."""
    from llmops.plan import multinode

    if nodes is None or nodes.strip().isdigit():
        return multinode.node_layout(nodes, hw)
    inv = deps.inventory()
    known = {h.name: h.ssh for h in inv.hosts}
    return multinode.node_layout(nodes, hw, known, str(inv.path))


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
    from llmops.plan.multinode import cluster_request
    from llmops.run.launching import prepare

    one, cluster = cluster_request(req, node, nodes)
    return prepare(one, cluster, stage="render")


def render_nodes(
    req: "Request",
    node: "HostFacts",
    layout: "NodeLayout",
    fmt: str,
    k8s_cache: str | None,
) -> tuple[str, tuple[str, ...]]:
    """The multi-node render and its warnings."""
    from llmops.catalog.resolve import resolve
    from llmops.plan.multinode import check_format, plan_cluster
    from llmops.plan.render import render_multinode
    from llmops.resources import templates_dir

    check_format(fmt)
    prep = _prepare_nodes(req, node, layout.nodes)
    arch = resolve(req.model).spec.arch
    mp = plan_cluster(prep.plan, layout, attention_heads=arch.attention_heads, layers=arch.layers)
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
