"""`--format compose`: goldens, the service's contents, `--add` merging and its refusals, and
`docker-compose config` on the output (the real tool; docker marker)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from llmops.errors import UsageError
from llmops.plan.compose import merge_compose, render_compose
from llmops.plan.render import render, secrets_file
from llmops.resources import templates_dir
from tests.conftest import require_or_skip
from tests.support.scale_cases import DATA, golden, llamacpp_plan, tgi_plan, vllm_plan


def _compose(plan) -> str:  # type: ignore[no-untyped-def]
    return render(plan, "compose", templates=templates_dir(), data_dir=DATA)


@pytest.mark.parametrize(
    ("name", "make"), [("vllm", vllm_plan), ("tgi-2gpu", tgi_plan), ("llamacpp", llamacpp_plan)]
)
def test_golden_compose(name: str, make) -> None:  # type: ignore[no-untyped-def]
    golden(f"compose-{name}.yaml", _compose(make()))


def test_vllm_service_carries_what_docker_run_would() -> None:
    plan = vllm_plan()
    doc = yaml.safe_load(_compose(plan))
    svc = doc["services"]["l"]
    assert svc["image"] == plan.image and svc["entrypoint"] == ["vllm"]
    assert svc["command"] == list(plan.argv)
    assert svc["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}
    ]
    assert svc["ipc"] == "host" and "shm_size" not in svc
    assert svc["ports"] == ["0.0.0.0:8000:8000"]
    # secrets come from compose's environment, never from a file only `llmops up` creates
    assert "env_file" not in svc
    assert svc["environment"]["VLLM_API_KEY"] == (
        "${LLMOPS_API_KEY:?set LLMOPS_API_KEY to the API key clients will send}"
    )
    assert svc["environment"]["HF_TOKEN"].startswith("${HF_TOKEN:?")  # Llama 3.1 is gated
    assert svc["restart"] == "unless-stopped"
    assert svc["labels"]["llmops.deployment"] == "l" and svc["labels"]["llmops.engine"] == "vllm"
    assert "http://localhost:8000/health" in " ".join(svc["healthcheck"]["test"])
    assert svc["healthcheck"]["start_period"] == "1800s"
    # the named volume is declared, under its real name (the one `llmops up` uses)
    assert "llmops-vllm-cache:/root/.cache/vllm" in svc["volumes"]
    assert doc["volumes"] == {"llmops-vllm-cache": {"name": "llmops-vllm-cache"}}
    # secrets: named, never valued
    assert "sk-" not in _compose(plan) and "hf_" not in svc["environment"]["HF_TOKEN"]


def test_tgi_gets_shm_and_both_gpus_and_home_paths_become_variables() -> None:
    plan = tgi_plan(hf_cache_dir="~/.cache/huggingface")
    svc = yaml.safe_load(_compose(plan))["services"]["m"]
    assert svc["shm_size"] == f"{plan.shm_size_mib}m" and "ipc" not in svc
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["0", "1"]
    assert svc["volumes"] == ["${HOME}/.cache/huggingface:/data"]


def test_every_secret_is_an_interpolation_the_header_explains() -> None:
    """Pure: no env_file anywhere, every secret env var of every service is `${VAR:?msg}`
    (required) or `${VAR:-}` (optional), and the header says how to set each variable."""
    import re

    text = _add(_compose(vllm_plan()), tgi_plan(host_port=8080))
    doc = yaml.safe_load(text)
    header = text.split("services:")[0]
    for name, svc in doc["services"].items():
        assert "env_file" not in svc, name
        for key in ("VLLM_API_KEY", "API_KEY", "LLAMA_API_KEY", "HF_TOKEN"):
            value = svc.get("environment", {}).get(key)
            if value is None:
                continue
            m = re.fullmatch(r"\$\{(\w+):(\?[^}]+|-)\}", value)
            assert m, (name, key, value)
            assert f"export {m.group(1)}=" in header
    assert doc["services"]["m"]["environment"]["API_KEY"].startswith("${LLMOPS_API_KEY:?")
    # the public model's plan asked for no token; the gated one's is required
    assert "HF_TOKEN" not in doc["services"]["m"]["environment"]
    assert doc["services"]["l"]["environment"]["HF_TOKEN"].startswith("${HF_TOKEN:?")


def test_native_plan_is_refused() -> None:
    plan = dataclasses.replace(vllm_plan(), runtime="native", image=None)
    with pytest.raises(UsageError, match="native"):
        render_compose(plan, secrets_file="/x")


def _add(existing: str, plan) -> str:  # type: ignore[no-untyped-def]
    return merge_compose(existing, plan, secrets_file=secrets_file(plan, DATA), where="f.yaml")


def test_add_merges_a_second_service_and_keeps_the_first() -> None:
    first = _compose(vllm_plan())
    merged = _add(first, tgi_plan())
    golden("compose-add-vllm-tgi.yaml", merged)
    doc = yaml.safe_load(merged)
    assert list(doc["services"]) == ["l", "m"]
    assert doc["services"]["l"] == yaml.safe_load(first)["services"]["l"]
    assert doc["volumes"] == {"llmops-vllm-cache": {"name": "llmops-vllm-cache"}}


def test_add_into_a_hand_written_file_declares_the_volume() -> None:
    existing = "services:\n  web:\n    image: nginx\n    ports: ['80:80']\nvolumes:\n  data: {}\n"
    doc = yaml.safe_load(_add(existing, vllm_plan()))
    assert set(doc["services"]) == {"web", "l"}
    assert set(doc["volumes"]) == {"data", "llmops-vllm-cache"}


def test_add_refuses_a_service_name_clash() -> None:
    with pytest.raises(UsageError, match="service l is already in f.yaml") as e:
        _add(_compose(vllm_plan()), vllm_plan(host_port=9000))
    assert "--name" in (e.value.hint or "")


@pytest.mark.parametrize(
    "ports",
    [
        "['8000:80']",
        "['127.0.0.1:8000:80']",
        "['7990-8010:7990-8010']",
        "['8000:80/tcp']",
        "[{target: 80, published: 8000}]",
        "[{target: 80, published: '8000'}]",
    ],
)
def test_add_refuses_a_host_port_clash_in_every_syntax(ports: str) -> None:
    existing = f"services:\n  web:\n    image: nginx\n    ports: {ports}\n"
    with pytest.raises(UsageError, match="host port 8000 is already published by service web"):
        _add(existing, vllm_plan())


def test_add_suggests_a_free_port_and_ignores_unpublished_ones() -> None:
    existing = "services:\n  a:\n    image: x\n    ports: ['8000:1', '8001:2']\n"
    with pytest.raises(UsageError) as e:
        _add(existing, vllm_plan())
    assert "--port 8002" in (e.value.hint or "")
    # a container-only port ("8000") publishes a random host port: no clash
    assert "l:" in _add("services:\n  a:\n    image: x\n    ports: ['8000']\n", vllm_plan())


@pytest.mark.parametrize("text", ["- a\n- b\n", "services: [1]\n", "a: [\n"])
def test_add_refuses_what_is_not_a_compose_file(text: str) -> None:
    with pytest.raises(UsageError, match="f.yaml"):
        _add(text, vllm_plan())


# --------------------------------------------------------------------- the real compose tool


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


@pytest.mark.docker
def test_docker_compose_config_accepts_the_output(docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    cmd = _compose_cmd()
    data = str(tmp_path / "state")  # never created: the file must run as written
    plans = [vllm_plan(), tgi_plan(host_port=8080), llamacpp_plan(host_port=8081)]
    text = render(plans[0], "compose", templates=templates_dir(), data_dir=data)
    for p in plans[1:]:
        text = merge_compose(text, p, secrets_file=secrets_file(p, data), where="f")
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    base = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_API_KEY", "HF_TOKEN")}
    # a required secret unset: compose stops and says which variable to set
    missing = subprocess.run(
        [*cmd, "-f", str(path), "config"], capture_output=True, text=True, cwd=tmp_path, env=base
    )
    assert missing.returncode != 0
    assert "LLMOPS_API_KEY" in missing.stderr or "HF_TOKEN" in missing.stderr, missing.stderr
    env = {**base, "LLMOPS_API_KEY": "sk-llmops-test", "HF_TOKEN": "hf_test"}
    out = subprocess.run(
        [*cmd, "-f", str(path), "config"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(resolved["services"]) == {"l", "m", "q"}
    assert resolved["services"]["l"]["environment"]["VLLM_API_KEY"] == "sk-llmops-test"
    assert resolved["services"]["q"]["environment"]["LLAMA_API_KEY"] == "sk-llmops-test"
    assert resolved["services"]["l"]["environment"]["HF_TOKEN"] == "hf_test"
    assert not Path(data).exists()
    dev = resolved["services"]["m"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["device_ids"] == ["0", "1"] and dev["capabilities"] == ["gpu"]
    assert "llmops-vllm-cache" in resolved["volumes"]
    # and the tool does reject a broken file, so the check above means something
    path.write_text(text.replace("deploy:", "deploy_typo:", 1))
    bad = subprocess.run([*cmd, "-f", str(path), "config"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0
