"""Multi-node vLLM on a Ray cluster: tensor parallel within a node, pipeline parallel across.

When one host's GPUs are not enough, vLLM can span several hosts (engines.md §5): one container
per host from the vLLM image with ``--network host --shm-size 10.24g --gpus all`` and
``--entrypoint /bin/bash``; the head runs ``ray start --head --port=6379``, every worker
``ray start --block --address=HEAD:6379``, each with ``VLLM_HOST_IP`` set to its own address;
then one ``vllm serve MODEL --tensor-parallel-size <GPUs per node> --pipeline-parallel-size
<nodes> --distributed-executor-backend ray`` on the head serves the whole cluster.

``plan_multinode`` turns the LaunchPlan made for all the cluster's GPUs (the fit sees them as one
pool) into that layout. Renderers: one shell script with a section per node (``head`` /
``worker``), and Kubernetes StatefulSets (head + workers) with a headless Service for Ray.
``--hw`` takes a node count in front: ``2x8xH100``, ``2 nodes of 8xH100-80GB``.

Pure: no clock, environment, network or disk beyond the arguments.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts, NvidiaFacts
from llmops.plan.launch import LaunchPlan

if TYPE_CHECKING:
    from llmops.plan.deploy import Request

RAY_PORT = 6379
SHM_SIZE = "10.24g"  # examples/online_serving/run_cluster.sh (engines.md §5)
SHM_MIB = 10486  # the same, for a memory-backed /dev/shm in Kubernetes
MAX_NODES = 64  # in --hw's node count
#: A bound on multi-node renders (each node is planned): a typo must not plan a billion nodes.
MAX_RENDER_NODES = 256
#: What a multi-node plan renders as (compose and native describe one host).
FORMATS = ("shell", "json", "k8s")

_NODES_X = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+\s*[x×*]\s*\S.*)$", re.I)
_NODES_OF = re.compile(r"^\s*(\d+)\s*(?:nodes?|hosts?|machines?)\s*(?:of|[x×*:])?\s*(\S.*)$", re.I)


def split_nodes(hw: str) -> tuple[int, str]:
    """``--hw`` text → (nodes, one node's hardware).

    ``2x8xH100`` and ``2 nodes of 8xH100-80GB`` are 2 nodes of ``8xH100``; every single-host
    form (``2x24GB``, ``8xH100``, ``24GB+12GB``) is 1 node, unchanged.

    Raises:
        UsageError: a node count of 0 or beyond 64.
    """
    m = _NODES_X.match(hw) or _NODES_OF.match(hw)
    if not m:
        return 1, hw
    nodes = int(m.group(1))
    if nodes < 1 or nodes > MAX_NODES:
        raise UsageError(
            f"malformed --hw {hw!r}: {nodes} nodes", "e.g. `--hw 2x8xH100` (2 nodes of 8 GPUs)"
        )
    return nodes, m.group(2).strip()


def cluster_facts(node: HostFacts, nodes: int) -> HostFacts:
    """One HostFacts holding every node's GPUs (indices 0..nodes*n-1) for the fit: the memory
    per GPU is what matters, and each node is assumed to be like ``node``."""
    gpus = node.nvidia.healthy_gpus if node.nvidia else ()
    if not gpus:
        raise UsageError(
            "a multi-node plan needs GPUs on each node and the hardware given has none",
            "describe one node's GPUs, e.g. `--hw 2x8xH100` or `--nodes 2 --hw 8xH100`",
        )
    n = len(gpus)
    pool = tuple(replace(g, index=i * n + j) for i in range(nodes) for j, g in enumerate(gpus))
    assert node.nvidia is not None
    nv: NvidiaFacts = replace(node.nvidia, gpus=pool)
    return replace(node, nvidia=nv, source=f"{node.source} x{nodes} nodes")


@dataclass(frozen=True)
class NodeHost:
    """A node from the fleet inventory: its name and ssh target (``--nodes gpu-a,gpu-b``)."""

    name: str
    ssh: str

    @property
    def address(self) -> str:
        """The host part of the ssh target (``root@10.0.0.5:22`` → ``10.0.0.5``)."""
        words = self.ssh.split()
        target = self.ssh
        if words and words[0] == "ssh":
            # a pasted ssh command: the target is the word that is neither an option nor the
            # value of one ("-p 41022", "-i key")
            skip = {i + 1 for i, w in enumerate(words) if w in ("-p", "-i", "-l", "-o", "-J")}
            rest = [
                w for i, w in enumerate(words) if i > 0 and i not in skip and not w.startswith("-")
            ]
            target = rest[-1] if rest else self.ssh
        host = target.rsplit("@", 1)[-1]
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        return host.split(":", 1)[0]

    def ssh_command(self) -> str:
        return self.ssh if self.ssh.split()[:1] == ["ssh"] else f"ssh {shlex.quote(self.ssh)}"


def inventory_names(nodes: str | None) -> tuple[str, ...]:
    """The inventory hosts ``--nodes gpu-a,gpu-b`` names (head first); () for a count or none."""
    if nodes is None or nodes.strip().isdigit():
        return ()
    return tuple(n.strip() for n in nodes.strip().split(",") if n.strip())


@dataclass(frozen=True)
class NodeLayout:
    """How many nodes ``render`` plans, one node's ``--hw`` (None: this host's hardware), and
    the inventory hosts when ``--nodes`` named them."""

    nodes: int
    node_hw: str | None
    hosts: tuple[NodeHost, ...] = ()


def node_layout(
    nodes: str | None,
    hw: str | None,
    inventory: Mapping[str, str] | None = None,
    inventory_path: str = "the inventory",
) -> NodeLayout:
    """``--nodes N|HOST,HOST`` and ``--hw [NODESx]GPUS`` → the layout.

    Args:
        inventory: the fleet inventory (host name → ssh target), needed when ``--nodes``
            names hosts (``inventory_names``).
        inventory_path: where it was read, for the error.

    Raises:
        UsageError: hosts not in the inventory, a count below 1 or above ``MAX_RENDER_NODES``,
            or ``--nodes`` and ``--hw`` giving different counts.
    """
    hw_nodes, node_hw = split_nodes(hw) if hw else (1, None)
    hosts: tuple[NodeHost, ...] = ()
    count = hw_nodes
    if nodes is not None:
        names = inventory_names(nodes)
        if not names and nodes.strip().isdigit():
            count = int(nodes.strip())
        else:
            by_name = dict(inventory or {})
            missing = [n for n in names if n not in by_name]
            if missing:
                raise UsageError(
                    f"--nodes names hosts not in {inventory_path}: {', '.join(missing)}",
                    f"hosts there: {', '.join(by_name)}; or give a count, e.g. `--nodes 2`",
                )
            hosts = tuple(NodeHost(n, by_name[n]) for n in names)
            count = len(hosts)
        if count < 1:
            raise UsageError("--nodes must be 1 or more", "e.g. `--nodes 2`")
        if hw_nodes > 1 and count != hw_nodes:
            raise UsageError(
                f"--nodes says {count} nodes and --hw {hw!r} says {hw_nodes}",
                f"give the count once, e.g. `--hw {node_hw} --nodes {hw_nodes}`",
            )
    if max(count, hw_nodes) > MAX_RENDER_NODES:
        raise UsageError(
            f"{max(count, hw_nodes)} nodes is more than llmops renders (at most "
            f"{MAX_RENDER_NODES})",
            "e.g. `--nodes 2`",
        )
    return NodeLayout(count, node_hw, hosts)


def cluster_request(req: Request, node: HostFacts, nodes: int) -> tuple[Request, HostFacts]:
    """The one-host request and facts that plan ``nodes`` hosts like ``node`` as one GPU pool:
    vLLM (unless asked otherwise) in Docker on every GPU of the pool.

    Raises:
        UsageError: ``--gpus`` (a multi-node plan uses every GPU of each node), or no GPUs.
    """
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
    return one, cluster


def check_format(fmt: str) -> None:
    """Raises UsageError unless a multi-node plan renders as ``fmt``."""
    if fmt not in FORMATS:
        raise UsageError(
            f"a multi-node plan renders as shell, json or k8s, not {fmt}",
            "compose and native describe one host: use `--format shell` or `--format k8s`",
        )


@dataclass(frozen=True)
class MultiNodePlan:
    """A vLLM deployment over a Ray cluster of ``nodes`` hosts with ``gpus_per_node`` GPUs each.

    ``serve`` is the head's LaunchPlan: its ``argv`` is the ``vllm serve`` command (TP/PP/Ray
    flags, the host port, since the containers use the host network).
    """

    name: str
    nodes: int
    gpus_per_node: int
    tensor_parallel: int
    pipeline_parallel: int
    ray_port: int
    serve: LaunchPlan
    hosts: tuple[NodeHost, ...] = ()

    @property
    def head_address(self) -> str | None:
        return self.hosts[0].address if self.hosts else None


def _set_flag(argv: list[str], flag: str, value: str, after: str | None = None) -> list[str]:
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2 :]]
    if after is not None and after in argv:
        i = argv.index(after) + 2
        return [*argv[:i], flag, value, *argv[i:]]
    return [*argv, flag, value]


def plan_multinode(
    plan: LaunchPlan,
    *,
    nodes: int,
    gpus_per_node: int,
    attention_heads: int | None = None,
    layers: int | None = None,
    hosts: tuple[NodeHost, ...] = (),
) -> MultiNodePlan:
    """Lay a vLLM plan made for ``nodes * gpus_per_node`` GPUs out over a Ray cluster.

    Args:
        plan: the docker LaunchPlan for the whole GPU pool (engine vllm).
        nodes: hosts in the cluster (pipeline-parallel size).
        gpus_per_node: GPUs on each host (tensor-parallel size).
        attention_heads, layers: the model's, to check TP and PP divide them.
        hosts: inventory hosts, the head first (optional; the script asks for HEAD_IP otherwise).

    Raises:
        UsageError: another engine, too few nodes, a TP that does not divide the heads, more
            pipeline stages than layers, or a host count that is not ``nodes``.
    """
    _check_multinode(plan, nodes, gpus_per_node, attention_heads, layers, hosts)
    port = plan.host_port
    argv = list(plan.argv)
    argv = _set_flag(argv, "--tensor-parallel-size", str(gpus_per_node))
    argv = _set_flag(argv, "--pipeline-parallel-size", str(nodes), after="--tensor-parallel-size")
    argv = _set_flag(
        argv, "--distributed-executor-backend", "ray", after="--pipeline-parallel-size"
    )
    argv = _set_flag(argv, "--port", str(port))  # host network: no port mapping
    labels = tuple(
        (k, ",".join(str(g) for g in range(gpus_per_node)) if k == "llmops.gpus" else v)
        for k, v in plan.labels
    ) + (("llmops.nodes", str(nodes)),)
    serve = replace(
        plan,
        argv=tuple(argv),
        ports=(replace(plan.ports[0], container_port=port),),
        gpus=tuple(range(gpus_per_node)),
        shm_size_mib=SHM_MIB,
        ipc_host=False,
        labels=labels,
        notes=(
            *plan.notes,
            f"{nodes} nodes x {gpus_per_node} GPUs on Ray: tensor parallel {gpus_per_node} "
            f"within a node, pipeline parallel {nodes} across nodes",
            "Ray and NCCL traffic between nodes is unauthenticated: keep it on a private "
            "network (NODE_IP/VLLM_HOST_IP)",
        ),
    )
    return MultiNodePlan(
        name=plan.name,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        tensor_parallel=gpus_per_node,
        pipeline_parallel=nodes,
        ray_port=RAY_PORT,
        serve=serve,
        hosts=hosts,
    )


def _check_multinode(
    plan: LaunchPlan,
    nodes: int,
    gpus_per_node: int,
    attention_heads: int | None,
    layers: int | None,
    hosts: tuple[NodeHost, ...],
) -> None:
    """``plan_multinode``'s refusals (see there)."""
    if plan.engine != "vllm":
        raise UsageError(
            f"{plan.engine} does not run across hosts; multi-node serving is vLLM on Ray",
            "use `--engine vllm`, or run independent replicas behind a load balancer "
            "(engines.md §5: TGI declined multi-node)",
        )
    if plan.runtime != "docker" or plan.image is None:
        raise UsageError(
            "multi-node vLLM runs in the vLLM image on every node", "use `--runtime docker`"
        )
    if nodes < 2:
        raise UsageError(f"a multi-node plan needs 2 or more nodes, got {nodes}", "`--nodes 2`")
    if gpus_per_node < 1:
        raise UsageError("each node needs at least one GPU", "e.g. `--hw 2x8xH100`")
    if hosts and len(hosts) != nodes:
        raise UsageError(
            f"{len(hosts)} hosts given for {nodes} nodes", "name one inventory host per node"
        )
    if attention_heads is not None and attention_heads % gpus_per_node:
        raise UsageError(
            f"{plan.model} has {attention_heads} attention heads; tensor parallel "
            f"{gpus_per_node} (the GPUs per node) does not divide them",
            "use nodes with a GPU count that divides the heads (1, 2, 4 or 8 usually)",
        )
    if layers is not None and nodes > layers:
        raise UsageError(
            f"{plan.model} has {layers} layers, fewer than {nodes} pipeline stages",
            "use fewer nodes",
        )


def plan_cluster(
    plan: LaunchPlan,
    layout: NodeLayout,
    *,
    attention_heads: int | None = None,
    layers: int | None = None,
) -> MultiNodePlan:
    """``plan_multinode`` for the plan ``cluster_request`` made: its GPUs split evenly over
    ``layout.nodes`` hosts."""
    return plan_multinode(
        plan,
        nodes=layout.nodes,
        gpus_per_node=len(plan.gpus) // layout.nodes,
        attention_heads=attention_heads,
        layers=layers,
        hosts=layout.hosts,
    )


# ------------------------------------------------------------------------------ commands


def wait_for_nodes_cmd(nodes: int) -> str:
    """Shell: wait until the Ray cluster has ``nodes`` live nodes (run inside a container)."""
    py = (
        "import ray; ray.init(address='auto', logging_level='ERROR'); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    return (
        f'until [ "$(python3 -c "{py}" 2>/dev/null || echo 0)" -ge {nodes} ]; do '
        f'echo "llmops: waiting for {nodes} Ray nodes"; sleep 5; done'
    )


def head_script(mp: MultiNodePlan, node_ip: str = '"$VLLM_HOST_IP"') -> str:
    """The head container's ``bash -c`` program: Ray head, wait for every node, vllm serve."""
    serve = " ".join(shlex.quote(a) for a in (*(mp.serve.entrypoint or ("vllm",)), *mp.serve.argv))
    return "\n".join(
        [
            "set -e",
            f"ray start --head --node-ip-address={node_ip} --port={mp.ray_port} "
            "--disable-usage-stats",
            wait_for_nodes_cmd(mp.nodes),
            f"exec {serve}",
        ]
    )


def worker_script(
    mp: MultiNodePlan, head: str = '"$HEAD_IP"', node_ip: str = '"$VLLM_HOST_IP"'
) -> str:
    """A worker container's ``bash -c`` program: join the head and block."""
    return (
        f"exec ray start --block --address={head}:{mp.ray_port} --node-ip-address={node_ip} "
        "--disable-usage-stats"
    )


def multinode_json(mp: MultiNodePlan) -> dict[str, Any]:
    from llmops.hw.facts import to_jsonable

    doc: dict[str, Any] = to_jsonable(mp)
    doc["head_script"] = head_script(mp)
    doc["worker_script"] = worker_script(mp)
    return doc
