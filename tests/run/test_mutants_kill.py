"""`kill`'s container stop and discovery, and the rest of its sequence (benchmarks/MUTATION.md).

``KillSequence._stop_container`` stops exactly the container it is given, so calling it on a
container of this test is safe on a shared Docker engine: it never lists or matches anything
(the discovery that can reach other users' containers is in tests/run/test_kill.py, run by the
mutation benchmark only with ``--host-unsafe``).

The discovery, ``KillSequence.foreign_containers``, is reached otherwise only by
tests/run/test_kill.py, which lists every container on the engine (so the benchmark runs it only
with ``--host-unsafe``). Its rules (the filter, the image reference, the fallback to the image's
tags, this install's labels, the process argv) are checked below against a small stand-in of the
Docker client exposing what the sequence reads and raising docker's own exceptions, so no one's
containers are touched; the install id is the real one of a temporary home.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import psutil
import pytest

from llmops.run.kill import KillResult, KillSequence, KillTarget, match_argv
from llmops.run.state import install_id
from tests.support.sentinels import unique


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


@pytest.mark.docker
def test_a_running_container_is_stopped(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    # a shell that exits on SIGTERM: stopped within the grace
    c = container(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"])
    t0 = time.monotonic()
    r = _seq(docker_client)._stop_container(_target(c), 20.0)
    assert r == KillResult(_target(c), "stopped")
    assert time.monotonic() - t0 < 15  # it exited on SIGTERM, not at the end of the grace
    c.reload()
    assert c.status == "exited"


@pytest.mark.docker
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


@pytest.mark.docker
def test_an_exited_container_is_gone_and_left_as_it_is(docker_client, container) -> None:  # type: ignore[no-untyped-def]
    c = container(["true"])
    c.wait(timeout=30)
    assert _seq(docker_client)._stop_container(_target(c), 1.0) == KillResult(_target(c), "gone")
    c.reload()
    assert c.status == "exited"


@pytest.mark.docker
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


# ------------------------------------------------------------------------- stand-ins


@dataclass
class FakeTunnels:
    running: list[Any] = field(default_factory=list)
    grace: list[float] = field(default_factory=list)

    def status(self) -> list[Any]:
        return self.running

    def records(self) -> list[Any]:
        return self.running

    def stop(self, name: str, grace_s: float = 10.0) -> bool:
        self.grace.append(grace_s)
        return True


@dataclass
class FakeDeps:
    home: Path
    rows: list[Any] = field(default_factory=list)
    grace: list[Any] = field(default_factory=list)
    probes: list[bool] = field(default_factory=list)

    @property
    def store(self) -> Any:
        return SimpleNamespace(home=self.home)

    def status(self, probe: bool = True) -> list[Any]:
        self.probes.append(probe)
        return self.rows

    def stop(self, name: str, grace_s: int = 20) -> bool:
        self.grace.append(grace_s)
        return True


class Image:
    def __init__(self, tags: list[str] | None) -> None:
        self._tags = tags

    @property
    def tags(self) -> list[str]:
        if self._tags is None:
            raise docker.errors.ImageNotFound("image removed")
        return self._tags


class Container:
    def __init__(
        self,
        name: str,
        *,
        image: str | None = "busybox:latest",
        tags: list[str] | None = None,
        path: str | None = "/bin/sh",
        args: list[str] | None = None,
        labels: dict[str, str] | None = None,
        status: str = "running",
        attrs: bool = True,
    ) -> None:
        self.name = name
        self.short_id = f"id-{name}"
        cfg: dict[str, Any] = {} if image is None else {"Image": image}
        self.attrs = {"Config": cfg, "Path": path, "Args": args} if attrs else None
        self.image = Image(tags if tags is not None else [])
        self.labels = labels
        self.status = status
        self.reloaded = 0
        self.stopped: list[Any] = []

    def reload(self) -> None:
        self.reloaded += 1

    def stop(self, timeout: Any = None) -> None:
        self.stopped.append(timeout)
        self.status = "exited"


class Containers:
    def __init__(self, items: list[Container], error: Exception | None = None) -> None:
        self.items = items
        self.error = error

    def list(self) -> list[Container]:
        if self.error is not None:
            raise self.error
        return self.items

    def get(self, ident: str) -> Container:
        if self.error is not None:
            raise self.error
        for c in self.items:
            if c.short_id == ident:
                return c
        raise docker.errors.NotFound(f"no such container {ident}")


def _client(items: list[Container], error: Exception | None = None) -> Any:
    return SimpleNamespace(containers=Containers(items, error))


def _fseq(tmp_path: Path, client: Any, **kw: Any) -> KillSequence:
    return KillSequence(FakeTunnels(), FakeDeps(tmp_path / "home"), client, **kw)


def _found(seq: KillSequence) -> list[tuple[str, str, str, str, bool]]:
    return [(t.kind, t.name, t.ident, t.matched_by, t.foreign) for t in seq.foreign_containers()]


# ------------------------------------------------------------------------- container discovery


def test_without_a_docker_client_no_container_is_listed(tmp_path: Path) -> None:
    assert _fseq(tmp_path, None).foreign_containers() == []


def test_an_engine_container_is_a_foreign_target_by_image_or_by_process(tmp_path: Path) -> None:
    items = [
        Container("tgi", image="ghcr.io/huggingface/text-generation-inference:3.3.5"),
        Container("shell", args=["-c", "sleep 1"]),
        Container("proc", path="/usr/bin/llama-server", args=["-m", "x.gguf"]),
        Container("noargs", path="/usr/local/bin/vllm", args=None),
        Container("nopath", path=None, args=["vllm"]),
    ]
    assert _found(_fseq(tmp_path, _client(items))) == [
        (
            "container",
            "tgi",
            "id-tgi",
            "image ghcr.io/huggingface/text-generation-inference",
            True,
        ),
        ("container", "proc", "id-proc", "container process: program llama-server", True),
        ("container", "noargs", "id-noargs", "container process: program vllm", True),
    ]


def test_the_container_filter_scopes_discovery(tmp_path: Path) -> None:
    items = [Container("a", image="vllm/vllm-openai:v1"), Container("b", image="vllm/vllm-openai")]
    seq = _fseq(tmp_path, _client(items), container_filter=lambda c: c.name == "b")
    assert [t.name for t in seq.foreign_containers()] == ["b"]


def test_a_container_without_attrs_or_labels_is_judged_by_its_image_tags(tmp_path: Path) -> None:
    items = [Container("x", attrs=False, tags=["vllm/vllm-openai:latest"], labels=None)]
    assert _found(_fseq(tmp_path, _client(items))) == [
        ("container", "x", "id-x", "image vllm/vllm-openai", True)
    ]


def test_the_image_tags_count_only_when_the_reference_says_nothing(tmp_path: Path) -> None:
    tags = ["vllm/vllm-openai:latest"]
    items = [
        Container("by-id", image="sha256:" + "a" * 64, tags=tags),
        Container("empty", image="", tags=tags),
        Container("missing", image=None, tags=tags),
        # created from busybox: that the same image also carries an engine tag says nothing
        Container("named", image="busybox:latest", tags=tags),
        # the image was removed since: its tags cannot be read, the reference stays unknown
        Container("gone-image", image="sha256:" + "b" * 64, tags=None),
    ]
    assert [t.name for t in _fseq(tmp_path, _client(items)).foreign_containers()] == [
        "by-id",
        "empty",
        "missing",
    ]


def test_only_this_installs_deployment_containers_are_left_out(tmp_path: Path) -> None:
    seq = _fseq(tmp_path, None)
    own = install_id(tmp_path / "home")
    img = "vllm/vllm-openai:v0.20.2"
    items = [
        Container("ours", image=img, labels={"llmops.deployment": "d", "llmops.install": own}),
        Container(
            "other", image=img, labels={"llmops.deployment": "d", "llmops.install": "f" * 16}
        ),
        Container("label-only", image=img, labels={"llmops.install": own}),
    ]
    seq.docker_client = _client(items)
    assert [t.name for t in seq.foreign_containers()] == ["other", "label-only"]


def test_a_docker_error_while_listing_is_recorded_not_raised(tmp_path: Path) -> None:
    seq = _fseq(tmp_path, _client([], docker.errors.APIError("daemon gone")))
    assert seq.foreign_containers() == []
    assert seq.docker_error is not None and seq.docker_error.startswith("cannot list containers: ")
    assert "daemon gone" in seq.docker_error
    assert _fseq(tmp_path, _client([])).docker_error is None


def test_discover_adds_foreign_targets_only_when_asked(tmp_path: Path) -> None:
    t = SimpleNamespace(name="port-1", pid=4242, via="ngrok", running=True)
    deps = FakeDeps(
        tmp_path / "home",
        rows=[SimpleNamespace(name="d", status="running", ident="c", runtime="docker")],
    )
    client = _client([Container("eng", image="vllm/vllm-openai")])
    seq = KillSequence(FakeTunnels(running=[t]), deps, client, process_filter=lambda _p: False)
    own = [("tunnel", "port-1"), ("deployment", "d")]
    assert [(x.kind, x.name) for x in seq.discover(False)] == own
    assert [(x.kind, x.name) for x in seq.discover(True)] == [*own, ("container", "eng")]
    # the records' state is enough: discovery never sends a health probe to a deployment
    assert deps.probes and not any(deps.probes)


# ------------------------------------------------------------------------- container stop


def test_stopping_a_container_reloads_it_and_passes_the_grace(tmp_path: Path) -> None:
    c = Container("eng", image="vllm/vllm-openai")
    t = KillTarget("container", "eng", c.short_id, "image vllm/vllm-openai", True)
    seq = _fseq(tmp_path, _client([c]))
    assert seq._stop_container(t, 7.9) == KillResult(t, "stopped")
    assert c.reloaded == 1 and c.stopped == [7]
    assert seq._stop_container(t, 7.9) == KillResult(t, "gone")  # exited now: left as it is
    assert c.stopped == [7]


def test_a_container_that_is_not_running_is_gone(tmp_path: Path) -> None:
    c = Container("eng", status="restarting")
    t = KillTarget("container", "eng", c.short_id, "image vllm/vllm-openai", True)
    assert _fseq(tmp_path, _client([c]))._stop_container(t, 1) == KillResult(t, "gone")
    assert c.stopped == []


def test_a_removed_container_is_gone_and_a_docker_error_fails(tmp_path: Path) -> None:
    t = KillTarget("container", "eng", "id-none", "image vllm/vllm-openai", True)
    assert _fseq(tmp_path, _client([]))._stop_container(t, 1) == KillResult(t, "gone")
    err = _client([], docker.errors.APIError("permission denied on the socket"))
    r = _fseq(tmp_path, err)._stop_container(t, 1)
    assert (r.target, r.outcome) == (t, "failed") and "permission denied on the socket" in r.detail


def test_execute_passes_the_grace_and_stops_containers_last(tmp_path: Path) -> None:
    c = Container("eng", image="vllm/vllm-openai")
    tunnels = FakeTunnels()
    deps = FakeDeps(tmp_path / "home")
    seq = KillSequence(tunnels, deps, _client([c]))
    ct = KillTarget("container", "eng", c.short_id, "image vllm/vllm-openai", True)
    tt = KillTarget("tunnel", "tun", "1", "llmops tunnel (ngrok)", False)
    dt = KillTarget("deployment", "dep", "x", "llmops deployment (docker)", False)
    got = seq.execute([ct, dt, tt], 3.7)
    assert got == [KillResult(tt, "stopped"), KillResult(dt, "stopped"), KillResult(ct, "stopped")]
    assert tunnels.grace == [3.7] and deps.grace == [3] and c.stopped == [3]


# ------------------------------------------------------------------------- tunnel protection


@pytest.fixture
def tunnel_proc(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A real `ngrok` (a symlink to a Python that sleeps) with a `llama-server` grandchild."""
    ngrok = tmp_path / "ngrok"
    os.symlink(sys.executable, ngrok)
    server = tmp_path / "llama-server"
    os.symlink(shutil.which("sleep") or "/bin/sleep", server)
    code = (
        f"import subprocess,time; subprocess.Popen(['sh','-c','{server} 1000']); time.sleep(1000)"
    )
    p = subprocess.Popen([str(ngrok), "-c", code])
    try:
        deadline = psutil.time.time() + 10
        while True:
            kids = [
                c.pid
                for c in psutil.Process(p.pid).children(recursive=True)
                if match_argv(c.cmdline())
            ]
            if kids:
                break
            assert psutil.time.time() < deadline
            psutil.time.sleep(0.05)
        yield p.pid, kids[0]
    finally:
        for c in psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []:
            c.kill()
        p.kill()
        p.wait()


def test_a_tunnel_record_protects_its_process_tree(tmp_path: Path, tunnel_proc) -> None:  # type: ignore[no-untyped-def]
    pid, grandchild = tunnel_proc
    assert match_argv(psutil.Process(pid).cmdline()) == "program ngrok"
    mine = {pid, grandchild}
    rec = SimpleNamespace(name="t", pid=pid, via="ngrok", running=True)
    unowned = KillSequence(
        FakeTunnels(), FakeDeps(tmp_path), process_filter=lambda p: p.pid in mine
    )
    assert {int(t.ident) for t in unowned.foreign_processes()} == {pid, grandchild}
    owned = KillSequence(
        FakeTunnels([rec]), FakeDeps(tmp_path), process_filter=lambda p: p.pid in mine
    )
    assert owned.foreign_processes() == []
