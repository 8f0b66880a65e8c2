"""No user value escapes its place in a rendered file (issue 14, item 3).

Every render is fed hostile values (newlines, ``$(...)``, backticks, quotes, ``${VAR}``) in the
name, model, notes, arguments, labels, env, image and hosts, and then used for real: bash runs
the shell renders with a ``docker`` (and engine) that records its argv, ``docker-compose
config`` reads the compose file, YAML parses the manifests. Nothing runs that was not meant
to, and every value arrives exactly as given.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import InventoryError, UsageError
from llmops.plan import names
from llmops.plan.k8s import K8sOptions, render_k8s
from llmops.plan.multinode import NodeHost, plan_multinode
from llmops.plan.render import render, render_multinode
from llmops.resources import templates_dir
from llmops.run.fleet import parse_inventory
from llmops.run.image import BuildRequest, check_request, render_dockerfile
from tests.conftest import require_or_skip
from tests.support.scale_cases import vllm_plan


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


# A program that appends its argv, NUL-separated and ended by a NUL line, to $LOG.
_RECORDER = '#!/usr/bin/env bash\nprintf "%s\\0" "$(basename "$0")" "$@" >> "$LOG"\nprintf "\\n\\0" >> "$LOG"\n'


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    calls, cur = [], []
    for item in log.read_text().split("\0")[:-1]:
        if item == "\n":
            calls.append(cur)
            cur = []
        else:
            cur.append(item)
    return calls


def _hostile(pwn: Path) -> dict[str, str]:
    """Values that run ``touch PWN`` if any layer lets a shell read them as code."""
    return {
        "newline": f"x\ntouch {pwn}\n",
        "subst": f"$(touch {pwn})",
        "backtick": f"`touch {pwn}`",
        "quote": f"a'b\"; touch {pwn}; echo '",
        "dollar": "${HF_TOKEN} $$ $HOME",
    }


def _hostile_plan(pwn: Path, **kw: Any) -> Any:
    h = _hostile(pwn)
    plan = vllm_plan()
    return dataclasses.replace(
        plan,
        name=h["newline"],  # never accepted at the CLI, and still harmless here
        model=h["newline"] + h["subst"],
        notes=(*plan.notes, h["newline"] + h["backtick"]),
        argv=(*plan.argv, *h.values()),
        env=(*plan.env, ("LLMOPS_TEST_VALUE", h["quote"] + h["subst"])),
        labels=(*plan.labels, ("llmops.test", h["subst"] + h["newline"])),
        **kw,
    )


def _run(script: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for prog in ("docker", "vllm", "llmops-recorder"):
        _exe(bin_ / prog, _RECORDER)
    full = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "LOG": str(tmp_path / "log")}
    return subprocess.run(
        ["bash", str(script), *args],
        env={**full, **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_shell_render_runs_one_docker_with_every_value_literal(tmp_path: Path) -> None:
    pwn = tmp_path / "PWN"
    plan = _hostile_plan(pwn)
    script = tmp_path / "run.sh"
    script.write_text(render(plan, "shell", templates=templates_dir(), data_dir=str(tmp_path)))
    out = _run(script, tmp_path)
    assert not pwn.exists(), script.read_text()
    calls = _calls(tmp_path / "log")
    assert len(calls) == 1, calls  # a newline in the name/model/notes added no command
    argv = calls[0]
    assert out.returncode == 0, out.stderr
    for value in _hostile(pwn).values():
        assert value in argv  # the arguments after `--`, each exactly as given
    assert f"LLMOPS_TEST_VALUE={plan.env[-1][1]}" in argv
    assert f"llmops.test={plan.labels[-1][1]}" in argv
    assert f"llmops-{plan.name}" in argv
    # comments stay comments: one line each, the newline written as \n
    assert "# llmops deployment x\\ntouch " in script.read_text()


def test_native_render_exports_values_and_reads_secrets_as_data(tmp_path: Path) -> None:
    pwn = tmp_path / "PWN"
    plan = _hostile_plan(pwn, runtime="native", image=None, entrypoint=None)
    plan = dataclasses.replace(
        plan, name="n", argv=("llmops-recorder", *plan.argv[-len(_hostile(pwn)) :])
    )
    data = tmp_path / "state"
    secrets = data / "deployments" / "n" / "secrets.env"
    secrets.parent.mkdir(parents=True)
    secret = f"sk-$(touch {pwn})`touch {pwn}`=="
    secrets.write_text(f"VLLM_API_KEY={secret}\nHF_TOKEN=hf_x y\n")
    script = tmp_path / "native.sh"
    script.write_text(render(plan, "native", templates=templates_dir(), data_dir=str(data)))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    # the engine reports the environment it was given
    _exe(
        bin_ / "llmops-recorder",
        '#!/usr/bin/env bash\nprintf "%s\\0" "$@" "$VLLM_API_KEY" "$HF_TOKEN" '
        '"$LLMOPS_TEST_VALUE" >> "$LOG"\nprintf "\\n\\0" >> "$LOG"\n',
    )
    out = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "LOG": str(tmp_path / "log")},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert not pwn.exists(), script.read_text()
    (argv,) = _calls(tmp_path / "log")
    assert argv[: len(_hostile(pwn))] == list(_hostile(pwn).values())
    assert argv[-3:] == [secret, "hf_x y", plan.env[-1][1]]


def test_native_env_names_are_checked() -> None:
    plan = dataclasses.replace(
        vllm_plan(), runtime="native", image=None, env=(("A=1 touch x; B", "v"),)
    )
    with pytest.raises(UsageError, match="environment variable name"):
        render(plan, "native", templates=templates_dir(), data_dir="/d")


def test_multinode_script_never_runs_a_host_value(tmp_path: Path) -> None:
    """A head address from hosts.yaml (refused there now, see below) is data in the script."""
    pwn = tmp_path / "PWN"
    head = NodeHost("gpu-a", f"root@$(touch {pwn})")
    worker = NodeHost("gpu-b", f"root@`touch {pwn}`")
    mp = plan_multinode(
        dataclasses.replace(vllm_plan(), notes=(f"n\ntouch {pwn}",)),
        nodes=2,
        gpus_per_node=1,
        hosts=(head, worker),
    )
    script = tmp_path / "mn.sh"
    script.write_text(
        render_multinode(mp, "shell", templates=templates_dir(), data_dir=str(tmp_path))
    )
    out = _run(script, tmp_path, "worker", NODE_IP="10.0.0.9")
    assert not pwn.exists(), script.read_text()
    assert out.returncode == 0, out.stderr
    (argv,) = _calls(tmp_path / "log")
    assert f"HEAD_IP=$(touch {pwn})" in argv  # passed on as the (bogus) address it is
    assert "llmops-l-worker" in argv
    bad = _run(script, tmp_path, "nope")
    assert bad.returncode == 2 and not pwn.exists()


def _compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if shutil.which("docker") and probe.returncode == 0:
        return ["docker", "compose"]
    require_or_skip(
        "LLMOPS_REQUIRE_DOCKER", "neither docker-compose nor the compose plugin is installed"
    )
    raise AssertionError("unreachable")


def test_compose_escapes_dollars_in_values_pure() -> None:
    plan = dataclasses.replace(
        vllm_plan(),
        argv=(*vllm_plan().argv, "${HF_TOKEN}", "a$b"),
        env=(*vllm_plan().env, ("X", "$HOME")),
        labels=(*vllm_plan().labels, ("llmops.test", "${USER}")),
        model="m\n---\nservices: {evil: {image: x}}",
        notes=("n\nservices: {}",),
    )
    text = render(plan, "compose", templates=templates_dir(), data_dir="/d")
    doc = yaml.safe_load(text)
    assert list(doc["services"]) == ["l"]  # the newline added no document or service
    svc = doc["services"]["l"]
    assert svc["command"][-2:] == ["$${HF_TOKEN}", "a$$b"]
    assert svc["environment"]["X"] == "$$HOME"
    assert svc["labels"]["llmops.test"] == "$${USER}"
    # llmops' own interpolations are kept
    assert svc["environment"]["VLLM_API_KEY"].startswith("${LLMOPS_API_KEY:?")


@pytest.mark.docker
def test_compose_config_passes_dollar_values_through(docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hostile = ["${HF_TOKEN}", "$HOME", "a$$b", "$(touch x)"]
    plan = dataclasses.replace(
        vllm_plan(),
        argv=(*vllm_plan().argv, *hostile),
        env=(*vllm_plan().env, ("X", "${LLMOPS_API_KEY}")),
    )
    path = tmp_path / "compose.yaml"
    path.write_text(render(plan, "compose", templates=templates_dir(), data_dir="/d"))
    env = {**os.environ, "LLMOPS_API_KEY": "sk-secret-1", "HF_TOKEN": "hf_secret2", "HOME": "/h"}
    out = subprocess.run(
        [*_compose_cmd(), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    svc = yaml.safe_load(out.stdout)["services"]["l"]
    # compose v1 prints a literal $ as $$ again; v2 prints it once: either way, no value
    # of compose's environment was filled into a user's value
    command = [a.replace("$$", "$") for a in svc["command"]]
    assert command[-len(hostile) :] == hostile
    assert svc["environment"]["X"].replace("$$", "$") == "${LLMOPS_API_KEY}"
    assert svc["environment"]["VLLM_API_KEY"] == "sk-secret-1"  # the interpolation we meant
    assert "hf_secret2" not in out.stdout.replace(svc["environment"].get("HF_TOKEN", "-"), "")


def test_k8s_newline_in_name_or_model_adds_no_object() -> None:
    plan = dataclasses.replace(
        vllm_plan(),
        name="x\n---\napiVersion: v1\nkind: Secret",
        model="m\n---\nkind: Pod",
        notes=("a\nkind: Pod",),
    )
    docs = [d for d in yaml.safe_load_all(render_k8s(plan)) if d is not None]
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    for d in docs:
        assert names.is_dns_label(d["metadata"]["name"].replace("-hf-cache", ""))


@pytest.mark.parametrize(
    "opts",
    [
        K8sOptions(namespace="team a"),
        K8sOptions(namespace="ns\n---\nkind: Pod"),
        K8sOptions(namespace="Prod"),
        K8sOptions(storage_class="fast; rm"),
        K8sOptions(hf_cache="hostPath:/data\n/x"),
    ],
)
def test_k8s_options_are_checked(opts: K8sOptions) -> None:
    with pytest.raises(UsageError):
        render_k8s(vllm_plan(), opts)


@pytest.mark.parametrize(
    "base",
    ["python:3.11\nRUN touch /pwned", "python:3.11 AS x", 'python"', "", "a b", "$(x)"],
)
def test_dockerfile_base_image_cannot_add_an_instruction(base: str) -> None:
    req = BuildRequest(base_image=base)
    with pytest.raises(UsageError, match="--base-image"):
        check_request(req)
    with pytest.raises(UsageError, match="--base-image"):
        render_dockerfile(req, templates_dir())


def test_dockerfile_accepts_real_references() -> None:
    for ref in (
        "python:3.11-slim-bookworm",
        "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
        "registry.example.com:5000/team/base:1.2",
        "debian@sha256:" + "a" * 64,
    ):
        text = render_dockerfile(BuildRequest(base_image=ref), templates_dir())
        assert f"\nFROM {ref}\n" in text


def test_build_torch_cli_refuses_a_newline_base_image() -> None:
    r = CliRunner().invoke(
        app, ["build", "torch", "--base-image", "x\nRUN touch /pwned", "--print-dockerfile"]
    )
    assert r.exit_code == 2, r.output
    assert "RUN touch" not in r.stdout and "Traceback" not in r.output


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["bad name!", "a\nb", "..", ".x", "-x", "a/b", "x" * 129, ""])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError) as e:
        names.check_name(name)
    assert "\n" not in e.value.message and e.value.hint


@pytest.mark.parametrize("name", ["a", "qwen2-5-7b-vllm", "My_Model.v2", "x" * 128])
def test_good_names_pass(name: str) -> None:
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", ["bad name!", "a\nb", "..", "a/b", "$(touch x)"])
@pytest.mark.parametrize("fmt", ["shell", "k8s", "compose"])
def test_render_refuses_bad_names_at_the_cli(name: str, fmt: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["render", "smollm2", "--hw", "24GB", "--name", name, "--format", fmt]
    )
    assert r.exit_code == 2, r.output
    assert "invalid deployment name" in r.output and "hint:" in r.output
    assert "Traceback" not in r.output
    error_lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1
    assert not out.exists()
    home = Path(os.environ["LLMOPS_HOME"])
    assert not (home / "deployments").exists() or not any((home / "deployments").iterdir())


def test_printable_escapes_controls_and_bidi() -> None:
    assert names.printable("a\nb\x1b]8;;x\x07\u202e") == "a\\nb\\x1b]8;;x\\x07\\u202e"
    assert names.printable("a\nb", lines=True) == "a\nb"


# -------------------------------------------------------------------------- inventory


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ssh": "root@$(touch /tmp/x)"}, "ssh"),
        ({"ssh": "root@`id`"}, "ssh"),
        ({"ssh": "root@host name"}, "ssh"),
        ({"ssh": "root@h\nx"}, "ssh"),
        ({"ssh": "root@h;id"}, "ssh"),
        ({"ssh": "ssh -p 22 'root@h'"}, "ssh"),
        ({"ssh": "root@h", "labels": ["a b"]}, "labels"),
        ({"ssh": "root@h", "llmops": "/opt/x;id"}, "llmops"),
    ],
)
def test_inventory_values_are_checked(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InventoryError) as e:
        parse_inventory(yaml.safe_dump({"hosts": {"gpu-a": spec}}), "hosts.yaml")
    msg = e.value.message
    assert "\n" not in msg and "hosts.yaml" in msg and "gpu-a" in msg and f"`{field}:`" in msg


def test_inventory_host_names_are_checked() -> None:
    with pytest.raises(InventoryError, match="host name"):
        parse_inventory(yaml.safe_dump({"hosts": {"a\nb": {"ssh": "h"}}}), "hosts.yaml")


@pytest.mark.parametrize(
    "ssh",
    [
        "root@203.0.113.7:22",
        "gpu-box",
        "ssh -p 41022 root@ssh4.vast.ai",
        "ssh -o StrictHostKeyChecking=no -i ~/.ssh/id_ed25519 root@10.0.0.5",
        "root@[fe80::1]:22",
        "ssh://u@h.example.com:2222",
    ],
)
def test_inventory_accepts_real_targets(ssh: str) -> None:
    inv = parse_inventory(yaml.safe_dump({"hosts": {"gpu-a": {"ssh": ssh}}}), "hosts.yaml")
    assert inv.hosts[0].ssh == ssh
