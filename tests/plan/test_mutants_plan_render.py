"""plan/render.py: formats, argument grouping and the filters every value goes through,
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md). Rendered scripts are
run through ``sh -n`` / parsed back where that says more than a string compare."""

from __future__ import annotations

import json
import shlex

import pytest

from llmops.errors import UsageError
from llmops.plan.launch import LaunchOptions, plan_launch
from llmops.plan.render import (
    argv_groups,
    check_format,
    container_name,
    continued,
    env_name,
    plan_json,
    render,
    secrets_file,
)
from llmops.resources import templates_dir
from tests.support.launch_cases import GGUF, SMOL


def _docker():  # type: ignore[no-untyped-def]
    return plan_launch(GGUF, LaunchOptions(engine="llamacpp", name="q"), None)


def _native():  # type: ignore[no-untyped-def]
    return plan_launch(SMOL, LaunchOptions(engine="torch", runtime="native", name="s"), None)


def test_argv_groups_pair_flags_with_their_values() -> None:
    argv = ["serve", "model dir", "--port", "8080", "--flag", "--x", "1", "2", "-v"]
    assert argv_groups(argv) == [
        "serve 'model dir'",  # a run of positionals stays together
        "--port 8080",
        "--flag",
        "--x 1",
        "2",  # a second value after a flag's value starts a group of its own
        "-v",
    ]
    assert argv_groups([]) == []
    assert argv_groups(["--a", "$(x)"]) == ["--a '$(x)'"]


def test_continued_is_one_shell_command_again() -> None:
    argv = ["llama-server", "--model", "/m/it's.gguf", "--port", "8080", "--jinja"]
    text = continued(argv, indent=2)
    assert text == "llama-server \\\n  --model '/m/it'\"'\"'s.gguf' \\\n  --port 8080 \\\n  --jinja"
    assert shlex.split(text.replace("\\\n", " ")) == argv
    assert continued(["a", "--b"]) == "a \\\n    --b"  # four spaces by default


@pytest.mark.parametrize("name", ["HF_TOKEN", "_X", "a1", "A"])
def test_env_names(name: str) -> None:
    assert env_name(name) == name


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "A\n"])
def test_not_env_names(name: str) -> None:
    with pytest.raises(UsageError) as e:
        env_name(name)
    assert "invalid environment variable name" in e.value.message


def test_formats() -> None:
    for fmt in ("shell", "native", "json", "compose", "k8s"):
        assert check_format(fmt) == fmt
    with pytest.raises(UsageError) as e:
        check_format("yaml")
    assert "shell, native, json, compose, k8s" in (e.value.hint or "")
    with pytest.raises(UsageError):
        render(_docker(), "yaml", templates=templates_dir(), data_dir="/d")


def test_names_of_the_container_and_the_secrets_file() -> None:
    p = _docker()
    assert container_name(p) == "llmops-q"
    assert secrets_file(p, "/srv/llmops") == "/srv/llmops/deployments/q/secrets.env"


def test_plan_json_adds_the_endpoint_and_the_container() -> None:
    d = plan_json(_docker())
    assert d["container_name"] == "llmops-q" and d["endpoint"] == _docker().endpoint
    n = plan_json(_native())
    assert n["container_name"] is None and n["name"] == "s"
    doc = json.loads(render(_native(), "json", templates=templates_dir(), data_dir="/d"))
    assert doc["schema"] == 1 and doc["plan"]["name"] == "s"


def test_shell_and_native_formats_match_the_runtime() -> None:
    with pytest.raises(UsageError) as e:
        render(_native(), "shell", templates=templates_dir(), data_dir="/d")
    assert "--format native" in (e.value.hint or "")
    with pytest.raises(UsageError) as e:
        render(_docker(), "native", templates=templates_dir(), data_dir="/d")
    assert "--runtime native" in (e.value.hint or "")
    sh = render(_docker(), "shell", templates=templates_dir(), data_dir="/srv/x")
    assert "docker run" in sh and "llmops-q" in sh and "/srv/x/deployments/q/secrets.env" in sh
    nat = render(_native(), "native", templates=templates_dir(), data_dir="/srv/x")
    assert "docker run" not in nat and "/srv/x/deployments/s/secrets.env" in nat


def test_compose_and_k8s_go_to_their_renderers() -> None:
    c = render(_docker(), "compose", templates=templates_dir(), data_dir="/srv/x")
    assert "services:" in c and "/srv/x/deployments/q/secrets.env" in c
    k = render(_docker(), "k8s", templates=templates_dir(), data_dir="/srv/x")
    assert "kind: Deployment" in k or "kind: StatefulSet" in k


def test_render_k8s_format_is_the_k8s_manifests() -> None:
    from llmops.plan.k8s import K8sOptions, render_k8s
    from tests.support.scale_cases import vllm_plan

    plan = vllm_plan()
    out = render(plan, "k8s", templates=templates_dir(), data_dir="/d", k8s=K8sOptions())
    assert out == render_k8s(plan, K8sOptions())


def test_render_multinode_k8s() -> None:
    from llmops.plan.k8s import K8sOptions, render_k8s_multinode
    from llmops.plan.multinode import plan_multinode
    from llmops.plan.render import render_multinode
    from tests.support.scale_cases import vllm_plan

    mp = plan_multinode(vllm_plan(), nodes=2, gpus_per_node=4, attention_heads=32, layers=32)
    out = render_multinode(mp, "k8s", templates=templates_dir(), data_dir="/d", k8s=K8sOptions())
    assert out == render_k8s_multinode(mp, K8sOptions())
