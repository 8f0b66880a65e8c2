"""Multi-node vLLM on Ray: --hw node prefixes, TP within a node x PP across nodes, the shell
script (run for real against stand-in docker/ray/vllm executables) and the StatefulSets
(against the Kubernetes schema). The two issue cases: llama3.1-70b bf16 on 2 hosts x 2x80 GB,
and qwen2.5-72b fp16 at 32k x 48 sequences, which needs 2 nodes of 8 H100."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import UsageError
from llmops.plan.deploy import Request
from llmops.plan.hardware import parse_hw
from llmops.plan.multinode import (
    MAX_RENDER_NODES,
    NodeHost,
    NodeLayout,
    cluster_request,
    node_layout,
    plan_multinode,
    split_nodes,
)
from tests.support.launch_cases import RTX
from tests.support.scale_cases import golden, tgi_plan, validate_k8s, vllm_plan

LLAMA = ["llama3.1-70b", "--quant", "bf16", "--hw", "2x2x80GB"]
QWEN = ["qwen2.5-72b", "--quant", "fp16", "--context", "32768", "--concurrency", "48"]


@pytest.fixture
def fixed_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    home = Path("/tmp/llmops-golden-home")
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setenv("HF_HOME", "/tmp/llmops-golden-hf")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["render", *args])


@pytest.mark.parametrize(
    ("text", "nodes", "node"),
    [
        ("2x8xH100", 2, "8xH100"),
        ("2 x 8 x H100-80GB", 2, "8 x H100-80GB"),
        ("2 nodes of 8xH100-80GB", 2, "8xH100-80GB"),
        ("3 hosts x 4x24GB", 3, "4x24GB"),
        ("2x24GB", 1, "2x24GB"),
        ("8xH100", 1, "8xH100"),
        ("24GB+12GB", 1, "24GB+12GB"),
        ("1xRTX4090,ram:64GB", 1, "1xRTX4090,ram:64GB"),
        ("cpu:64GB", 1, "cpu:64GB"),
    ],
)
def test_hw_node_prefix_and_single_host_forms_unchanged(text: str, nodes: int, node: str) -> None:
    assert split_nodes(text) == (nodes, node)
    parse_hw(node)  # what is left is a valid single-host --hw


def test_hw_zero_nodes_is_refused() -> None:
    with pytest.raises(UsageError, match="0 nodes"):
        split_nodes("0x8xH100")


def test_node_layout_from_nodes_and_hw() -> None:
    assert node_layout(None, None) == NodeLayout(1, None)
    assert node_layout(None, "2x8xH100") == NodeLayout(2, "8xH100")
    assert node_layout(" 3 ", "8xH100") == NodeLayout(3, "8xH100")
    assert node_layout("2", "2x8xH100") == NodeLayout(2, "8xH100")
    inv = {"gpu-a": "root@10.0.0.5", "gpu-b": "ssh -p 2 u@10.0.0.6", "gpu-c": "c"}
    got = node_layout("gpu-b, gpu-a", "2x80GB", inv, "hosts.yaml")
    assert got == NodeLayout(
        2, "2x80GB", (NodeHost("gpu-b", "ssh -p 2 u@10.0.0.6"), NodeHost("gpu-a", "root@10.0.0.5"))
    )


@pytest.mark.parametrize(
    ("nodes", "hw", "match"),
    [
        ("0", None, "--nodes must be 1 or more"),
        (",", None, "--nodes must be 1 or more"),
        ("3", "2x8xH100", "--nodes says 3 nodes and --hw '2x8xH100' says 2"),
        ("gpu-a,gpu-z", None, "not in hosts.yaml: gpu-z"),
        (str(MAX_RENDER_NODES + 1), None, f"at most {MAX_RENDER_NODES}"),
    ],
)
def test_node_layout_refusals(nodes: str, hw: str | None, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        node_layout(nodes, hw, {"gpu-a": "a"}, "hosts.yaml")


def test_cluster_request_pools_every_gpu_of_each_node_for_vllm_in_docker() -> None:
    one, cluster = cluster_request(Request(model="m"), RTX, 3)
    assert cluster.nvidia is not None and RTX.nvidia is not None
    n = len(RTX.nvidia.healthy_gpus)
    assert [g.index for g in cluster.nvidia.gpus] == list(range(3 * n))
    assert (one.engine, one.runtime, one.gpus) == ("vllm", "docker", tuple(range(3 * n)))
    kept = cluster_request(Request(model="m", engine="tgi", runtime="native"), RTX, 2)[0]
    assert (kept.engine, kept.runtime) == ("tgi", "native")
    with pytest.raises(UsageError, match="--gpus picks GPUs on one host"):
        cluster_request(Request(model="m", gpus=(0,)), RTX, 2)


def test_plan_rewrites_tp_adds_pp_and_ray() -> None:
    base = vllm_plan()
    mp = plan_multinode(base, nodes=2, gpus_per_node=4, attention_heads=32, layers=32)
    argv = list(mp.serve.argv)
    assert argv[argv.index("--tensor-parallel-size") + 1] == "4"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
    assert argv.count("--tensor-parallel-size") == 1
    assert (mp.tensor_parallel, mp.pipeline_parallel) == (4, 2)
    assert mp.serve.gpus == (0, 1, 2, 3) and not mp.serve.ipc_host


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"nodes": 1, "gpus_per_node": 2}, "2 or more nodes"),
        ({"nodes": 2, "gpus_per_node": 3, "attention_heads": 32}, "does not divide"),
        ({"nodes": 40, "gpus_per_node": 1, "layers": 32}, "fewer than 40 pipeline stages"),
        ({"nodes": 2, "gpus_per_node": 2, "hosts": (NodeHost("a", "a"),)}, "1 hosts given"),
    ],
)
def test_plan_refusals(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        plan_multinode(vllm_plan(), **kw)


def test_tgi_is_refused_with_the_reason() -> None:
    with pytest.raises(UsageError, match="tgi does not run across hosts"):
        plan_multinode(tgi_plan(), nodes=2, gpus_per_node=2)


def test_node_host_addresses() -> None:
    assert NodeHost("a", "root@10.0.0.5:22").address == "10.0.0.5"
    assert NodeHost("a", "ssh -p 41022 root@ssh4.vast.ai").address == "ssh4.vast.ai"
    assert NodeHost("a", "ssh -i key -p 2 u@[fe80::1]:2").address == "fe80::1"
    assert NodeHost("a", "gpu-box").ssh_command() == "ssh gpu-box"


# ------------------------------------------------------------------ the two issue cases


def test_llama70b_bf16_on_2_hosts_of_2x80gb(fixed_home: Path) -> None:
    r = cli(*LLAMA, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["multinode"]
    assert (doc["nodes"], doc["gpus_per_node"]) == (2, 2)
    argv = doc["serve"]["argv"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    assert "--dtype" in argv and argv[argv.index("--dtype") + 1] == "bfloat16"
    shell = cli(*LLAMA)
    assert shell.exit_code == 0, shell.output
    golden("multinode-llama70b-2x2x80gb.sh", shell.stdout)
    k8s = cli(*LLAMA, "--format", "k8s")
    assert k8s.exit_code == 0, k8s.output
    golden("multinode-llama70b-2x2x80gb-k8s.yaml", k8s.stdout)
    docs = [d for d in yaml.safe_load_all(k8s.stdout) if d]
    validate_k8s(docs)
    sts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    head, worker = sts["llama3-1-70b-vllm-head"], sts["llama3-1-70b-vllm-worker"]
    assert (head["spec"]["replicas"], worker["spec"]["replicas"]) == (1, 1)
    for s in (head, worker):
        c = s["spec"]["template"]["spec"]["containers"][0]
        assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
        assert c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert s["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "hf-cache"
    hc = head["spec"]["template"]["spec"]["containers"][0]
    assert "ray start --head" in hc["args"][0] and "--pipeline-parallel-size 2" in hc["args"][0]
    assert hc["readinessProbe"]["exec"]["command"][0] == "python3"
    wc = worker["spec"]["template"]["spec"]["containers"][0]
    assert "--address=llama3-1-70b-vllm-head-0.llama3-1-70b-vllm-ray:6379" in wc["args"][0]
    ray = next(d for d in docs if d["metadata"]["name"] == "llama3-1-70b-vllm-ray")
    assert ray["spec"]["clusterIP"] == "None" and ray["spec"]["publishNotReadyAddresses"]


def test_qwen72b_needs_two_nodes_of_8_h100(fixed_home: Path) -> None:
    one = cli(*QWEN, "--hw", "8xH100")
    assert one.exit_code == 3
    assert "`--nodes 2` plans multi-node vLLM on Ray" in one.output
    r = cli(*QWEN, "--hw", "2 nodes of 8xH100-80GB", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["multinode"]
    assert (doc["tensor_parallel"], doc["pipeline_parallel"]) == (8, 2)
    same = cli(*QWEN, "--hw", "8xH100-80GB", "--nodes", "2", "--format", "json")
    assert json.loads(same.stdout) == json.loads(r.stdout)
    golden("multinode-qwen72b-2x8xh100.sh", cli(*QWEN, "--hw", "2x8xH100").stdout)
    validate_k8s(
        [d for d in yaml.safe_load_all(cli(*QWEN, "--hw", "2x8xH100", "-f", "k8s").stdout) if d]
    )


def test_multinode_refuses_compose_gpus_and_tgi(fixed_home: Path) -> None:
    r = cli(*LLAMA, "--format", "compose")
    assert r.exit_code == 2 and "shell, json or k8s" in r.output
    r = cli(*LLAMA, "--gpus", "0,1")
    assert r.exit_code == 2 and "--gpus picks GPUs on one host" in r.output
    r = cli(*LLAMA, "--engine", "tgi")
    assert r.exit_code == 2 and "tgi does not run across hosts" in r.output
    r = cli(*LLAMA, "--nodes", "3")
    assert r.exit_code == 2 and "--nodes says 3 nodes" in r.output


def test_inventory_hosts_name_the_nodes(fixed_home: Path) -> None:
    fixed_home.mkdir(parents=True, exist_ok=True)
    (fixed_home / "hosts.yaml").write_text(
        "hosts:\n  gpu-a:\n    ssh: root@10.0.0.5:22\n  gpu-b:\n    ssh: ssh -p 2222 root@10.0.0.6\n"
    )
    try:
        r = cli("llama3.1-70b", "--quant", "bf16", "--hw", "2x80GB", "--nodes", "gpu-a,gpu-b")
        assert r.exit_code == 0, r.output
        assert "gpu-a (head):  ssh root@10.0.0.5:22 'bash -s -- head' <" in r.stdout
        assert "gpu-b (worker):  ssh -p 2222 root@10.0.0.6 'bash -s -- worker' <" in r.stdout
        assert '[ -n "$HEAD_IP" ] || HEAD_IP=10.0.0.5\n' in r.stdout  # never inside "${..:-}"
        bad = cli("llama3.1-70b", "--hw", "2x80GB", "--nodes", "gpu-a,gpu-z")
        assert bad.exit_code == 2 and "gpu-z" in bad.output
    finally:
        (fixed_home / "hosts.yaml").unlink()


# ------------------------------------------------- the script, run against stand-in tools


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_script_runs_head_and_worker_for_real(fixed_home: Path, tmp_path: Path) -> None:
    """bash runs the rendered script with a `docker` that records its argv and then runs the
    container's program itself (bash -c), with `ray`/`vllm` executables and a `ray` Python
    module standing in: the quoting, the wait for the nodes and the serve line are real."""
    script = tmp_path / "deploy.sh"
    script.write_text(cli(*LLAMA).stdout)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "log"
    _exe(
        bin_ / "docker",
        '#!/usr/bin/env bash\nprintf "docker %s\\n" "$*" >> "$LOG"\n'
        'while [ "$1" != "--entrypoint" ]; do\n'
        '  case "$1" in -e) export "$2"; shift 2;; *) shift;; esac\ndone\n'
        'shift 3  # --entrypoint /bin/bash IMAGE\n[ "$1" = -c ] && exec bash -c "$2"\n',
    )
    _exe(bin_ / "ray", '#!/bin/sh\necho "ray $*" >> "$LOG"\n')
    _exe(bin_ / "vllm", '#!/bin/sh\necho "vllm $*" >> "$LOG"\n')
    (tmp_path / "py" / "ray").mkdir(parents=True)
    (tmp_path / "py" / "ray" / "__init__.py").write_text(
        "def init(**kw):\n    assert kw['address'] == 'auto'\n"
        "def nodes():\n    return [{'Alive': True}, {'Alive': True}, {'Alive': False}]\n"
    )
    env = {
        **os.environ,
        "PATH": f"{bin_}:{os.environ['PATH']}",
        "PYTHONPATH": str(tmp_path / "py"),
        "LOG": str(log),
        "HEAD_IP": "10.0.0.5",
        "NODE_IP": "10.0.0.5",
    }
    for role in ("head", "worker"):
        out = subprocess.run(
            ["bash", str(script), role], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    lines = log.read_text().splitlines()
    docker = [x for x in lines if x.startswith("docker")]
    assert len(docker) == 2
    for d in docker:
        for part in (
            "--network host",
            "--shm-size 10.24g",
            "--gpus all",
            "--entrypoint /bin/bash",
            "VLLM_HOST_IP=10.0.0.5",
        ):
            assert part in d
    assert "ray start --head --node-ip-address=10.0.0.5 --port=6379 --disable-usage-stats" in lines
    serve = next(x for x in lines if x.startswith("vllm"))
    assert serve.startswith("vllm serve meta-llama/Llama-3.1-70B-Instruct ")
    assert (
        "--tensor-parallel-size 2 --pipeline-parallel-size 2 --distributed-executor-backend ray"
        in serve
    )
    assert lines[-1] == (
        "ray start --block --address=10.0.0.5:6379 --node-ip-address=10.0.0.5 --disable-usage-stats"
    )
    bad = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    no_head = {k: v for k, v in env.items() if k != "HEAD_IP"}
    bad = subprocess.run(
        ["bash", str(script), "worker"], env=no_head, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "HEAD_IP" in bad.stderr
