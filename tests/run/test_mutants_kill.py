"""`kill`'s container stop, against real containers this test makes (benchmarks/MUTATION.md).

``KillSequence._stop_container`` stops exactly the container it is given, so calling it on a
container of this test is safe on a shared Docker engine: it never lists or matches anything
(the discovery that can reach other users' containers is in tests/run/test_kill.py, run by the
mutation benchmark only with ``--host-unsafe``).
"""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace

import pytest

from llmops.run.kill import KillResult, KillSequence, KillTarget
from tests.sentinels import unique

pytestmark = pytest.mark.docker


def _seq(client):  # type: ignore[no-untyped-def]
    none = SimpleNamespace(status=lambda probe=False: [], records=lambda: [])
    return KillSequence(SimpleNamespace(status=lambda: [], records=lambda: []), none, client)


def _target(c) -> KillTarget:  # type: ignore[no-untyped-def]
    return KillTarget("container", c.name, c.short_id, "image vllm/vllm-openai", True)


@pytest.fixture
def container(docker_client, busybox_image: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    made = []

    def run(cmd: list[str]):  # type: ignore[no-untyped-def]
        name = (
            unique(f"killmut-{len(made)}-{request.node.name[-20:]}")
            .replace("[", "-")
            .replace("]", "")
        )
        c = docker_client.containers.run(busybox_image, cmd, detach=True, name=name, init=False)
        made.append(c)
        return c

    yield run
    for c in made:
        with contextlib.suppress(Exception):
            c.remove(force=True)


def test_a_running_container_is_stopped(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    # a shell that exits on SIGTERM: stopped within the grace
    c = container(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"])
    t0 = time.monotonic()
    r = _seq(docker_client)._stop_container(_target(c), 20.0)
    assert r == KillResult(_target(c), "stopped")
    assert time.monotonic() - t0 < 15  # it exited on SIGTERM, not at the end of the grace
    c.reload()
    assert c.status == "exited"


def test_the_grace_is_passed_to_docker_stop(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    # PID 1 without a TERM handler ignores SIGTERM: docker stop waits the grace, then SIGKILLs
    c = container(["sleep", "1000"])
    t0 = time.monotonic()
    r = _seq(docker_client)._stop_container(_target(c), 2.0)
    took = time.monotonic() - t0
    assert r.outcome == "stopped"
    assert 1.5 <= took < 15
    c.reload()
    assert c.status == "exited"


def test_an_exited_container_is_gone_and_left_as_it_is(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    c = container(["true"])
    c.wait(timeout=30)
    assert _seq(docker_client)._stop_container(_target(c), 1.0) == KillResult(_target(c), "gone")
    c.reload()
    assert c.status == "exited"


def test_a_removed_container_is_gone(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    c = container(["sleep", "1000"])
    t = _target(c)
    c.remove(force=True)
    assert _seq(docker_client)._stop_container(t, 1.0) == KillResult(t, "gone")


def test_without_docker_a_container_is_gone() -> None:
    t = KillTarget("container", "x", "abc123", "image vllm/vllm-openai", True)
    assert _seq(None)._stop_container(t, 1.0) == KillResult(t, "gone")


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        (
            "ghcr.io/huggingface/text-generation-inference:3.3.5",
            "ghcr.io/huggingface/text-generation-inference",
        ),
        ("vllm/vllm-openai:v0.20.2", "vllm/vllm-openai"),
        ("ghcr.io/ggml-org/llama.cpp:server-cuda", "ghcr.io/ggml-org/llama.cpp"),
        ("ghcr.io/ggerganov/llama.cpp:server", "ghcr.io/ggerganov/llama.cpp"),
        ("docker.io/ngrok/ngrok:latest", "ngrok/ngrok"),
        ("cloudflare/cloudflared:2024.1.0", "cloudflare/cloudflared"),
    ],
)
def test_every_engine_and_tunnel_image_is_recognised(ref: str, repo: str) -> None:
    """Pure (no Docker): `kill --all` knows each engine's and tunnel's image (engines.md §6.1)."""
    from llmops.run.kill import match_container

    assert match_container([ref], "/bin/sh", ["-c", "sleep 1"], {}) == f"image {repo}"


def test_a_container_neither_by_image_nor_by_process_is_not_matched() -> None:
    """Pure: a shell in a busybox container is nobody's engine; its process argv decides."""
    from llmops.run.kill import match_container

    assert match_container(["busybox:latest"], "/bin/sh", ["-c", "sleep 1"], {}) is None
    assert match_container(["busybox:latest"], None, [], {}) is None
    assert (
        match_container(["busybox:latest"], "/usr/bin/python3", ["-m", "vllm.entrypoints"], {})
        == "container process: python -m vllm.entrypoints"
    )


def test_interpreter_flags_before_the_script_are_skipped() -> None:
    from llmops.run.kill import match_argv

    assert match_argv(["python3", "-u", "/opt/bin/vllm", "serve"]) == "python script vllm"
    assert match_argv(["python3", "-W", "ignore", "-u", "/opt/bin/vllm"]) == "python script vllm"


def test_another_installs_deployment_container_is_foreign() -> None:
    from llmops.run.kill import match_container

    img = ["vllm/vllm-openai:v0.20.2"]
    other = {"llmops.deployment": "x", "llmops.install": "someone-else"}
    assert match_container(img, None, [], other, "mine") == "image vllm/vllm-openai"
    ours = {"llmops.deployment": "x", "llmops.install": "mine"}
    assert match_container(img, None, [], ours, "mine") is None


def test_own_targets_are_never_foreign_and_broken_records_are_set_aside() -> None:
    tunnels = SimpleNamespace(
        status=lambda: [
            SimpleNamespace(name="t1", pid=11, via="ssh", running=True),
            SimpleNamespace(name="t2", pid=12, via="ssh", running=False),
        ],
        records=lambda: [],
    )
    rows = [
        SimpleNamespace(name="d1", status="running", ident="abc", runtime="docker"),
        SimpleNamespace(name="d2", status="broken", ident=None, runtime="native"),
        SimpleNamespace(name="d3", status="exited", ident="def", runtime="docker"),
    ]
    deps = SimpleNamespace(status=lambda probe=False: rows)
    seq = KillSequence(tunnels, deps, None)
    got = seq.own_targets()
    assert [(t.kind, t.name, t.ident, t.foreign) for t in got] == [
        ("tunnel", "t1", "11", False),
        ("deployment", "d1", "abc", False),
    ]
    assert [d.name for d in seq.broken] == ["d2"]
