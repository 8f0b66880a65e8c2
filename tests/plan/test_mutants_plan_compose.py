"""plan/compose.py: the compose service's volumes, the secrets header and the host ports
`--add` checks against, pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md).
The golden files (test_render_compose.py) show whole services; these state one rule each."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from llmops.errors import UsageError
from llmops.plan.compose import (
    _host_ports,
    compose_service,
    merge_compose,
    render_compose,
    secrets_help,
)
from llmops.plan.launch import Mount
from tests.support.scale_cases import vllm_plan


def _volumes(*mounts: Mount) -> list[str]:
    plan = dataclasses.replace(vllm_plan(), mounts=mounts)
    return list(compose_service(plan, secrets_file="/s")["volumes"])


def test_bind_mounts_keep_absolute_paths_and_read_home_for_tilde() -> None:
    # compose interpolates ${HOME} but never expands `~`; an absolute path is literal
    assert _volumes(Mount("/data/hf", "/root/.cache/huggingface")) == [
        "/data/hf:/root/.cache/huggingface"
    ]
    assert _volumes(Mount("~/hf", "/c"), Mount("~", "/h")) == ["${HOME}/hf:/c", "${HOME}:/h"]
    # a `$` in a literal path is doubled, so compose does not read it as a variable
    assert _volumes(Mount("/a$b", "/c")) == ["/a$$b:/c"]


def test_a_read_only_mount_ends_in_ro() -> None:
    # compose short syntax: SOURCE:TARGET[:MODE], MODE ro for read-only
    assert _volumes(Mount("/m", "/models", read_only=True)) == ["/m:/models:ro"]
    assert _volumes(Mount("v", "/c", kind="volume", read_only=True)) == ["v:/c:ro"]


def test_an_optional_secret_is_listed_as_optional() -> None:
    doc = {"services": {"a": {"environment": {"HF_TOKEN": "${HF_TOKEN:-}"}}}}
    help_ = secrets_help(doc)
    assert "export HF_TOKEN=hf_..." in help_ and "(optional here)" in help_
    required = {"services": {"a": {"environment": {"HF_TOKEN": "${HF_TOKEN:?set it}"}}}}
    assert "(optional here)" not in secrets_help(required)
    assert secrets_help({"services": {"a": {"environment": {"X": "1"}}}}) == ""


def test_host_ports_of_each_compose_ports_syntax() -> None:
    assert _host_ports("8000:80") == {8000}
    assert _host_ports("127.0.0.1:8000-8002:80-82/tcp") == {8000, 8001, 8002}
    assert _host_ports("80") == set()  # a random host port
    assert _host_ports({"target": 80, "published": "9000"}) == {9000}
    assert _host_ports({"target": 80, "published": 9000}) == {9000}
    assert _host_ports({"target": 80}) == set()
    # an interpolation compose has not resolved yet is no port (and no crash)
    assert _host_ports({"target": 80, "published": "${LOW}-9000"}) == set()
    assert _host_ports({"target": 80, "published": "${PORT}"}) == set()


def test_add_beside_a_service_whose_port_is_a_variable() -> None:
    plan = vllm_plan()
    existing = yaml.safe_dump(
        {"services": {"web": {"image": "nginx", "ports": [{"target": 80, "published": "${A}-9"}]}}}
    )
    doc = yaml.safe_load(merge_compose(existing, plan, secrets_file="/s", where="c.yaml"))
    assert set(doc["services"]) == {"web", plan.name}


def test_render_has_the_header_then_the_document() -> None:
    text = render_compose(vllm_plan(), secrets_file="/s")
    assert text.startswith("# llmops deployment(s) for docker compose.")
    assert yaml.safe_load(text)["services"]["l"]["container_name"] == "llmops-l"


def test_add_to_a_file_whose_volumes_are_not_a_mapping_is_refused() -> None:
    existing = "services:\n  web:\n    image: nginx\nvolumes:\n  - data\n"
    with pytest.raises(UsageError) as e:
        merge_compose(existing, vllm_plan(), secrets_file="/s", where="c.yaml")
    assert "volumes" in e.value.message and "c.yaml" in e.value.message
