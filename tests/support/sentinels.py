"""The host's own things, planted before the first test and checked after the last.

A ``make test`` on a user's GPU host shares its Docker engine and process table with real
deployments. To prove the suite touches only what it made, the session plants, before any
test runs (see ``pytest_sessionstart`` in ``tests/conftest.py``):

- a container carrying ``llmops.*`` labels of *another* llmops install (another user or
  ``LLMOPS_HOME`` on the same engine), on an image tagged like a real engine;
- a container with an ``llmops.deployment`` label but no install id (a label inherited from an
  image), named like a default deployment (``llmops-smollm2-...``);
- a plain container of a known engine image, running;
- a process whose program is ``llama-server`` (what ``kill --all`` targets on a real host).

After the last test, ``pytest_sessionfinish`` checks each is still there, running, with the
same identity (container id; pid + start time), then removes them. A suite that deleted or
stopped one of them fails, naming it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any

#: This test run's id: in every Docker object name and label the suite makes.
RUN_ID = os.environ.get("LLMOPS_TEST_RUN_ID") or uuid.uuid4().hex[:8]
SENTINEL_LABEL = "llmops-test.sentinel"


def unique(base: str) -> str:
    """A deployment/container name of this test run (``base-<run id>``): never a user's."""
    return f"{base}-{RUN_ID}"


#: An engine image tag no user has: the sentinel's engine-looking image.
SENTINEL_ENGINE_TAG = f"vllm/vllm-openai:llmops-sentinel-{RUN_ID}"


def ensure_busybox_image(client: Any, image: str) -> str:
    """A tiny local image made from Debian's busybox-static (no registry is reachable)."""
    try:
        client.images.get(image)
        return image
    except Exception:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "echo", "cat", "sleep", "ls", "env", "true", "false"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    repo, _, tag = image.rpartition(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)
    return image


@dataclass
class Planted:
    containers: dict[str, str] = field(default_factory=dict)  # what it is -> container id
    process: subprocess.Popen[bytes] | None = None
    process_create_time: float | None = None
    tmpdir: str | None = None
    client: Any = None
    problems: list[str] = field(default_factory=list)


PLANTED = Planted()


def _docker_client() -> Any | None:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:
        return None


def plant() -> None:
    """Plant the sentinels (containers only when a Docker engine answers and busybox exists).

    ``LLMOPS_TEST_SENTINELS=0`` skips them: for the many small pytest runs of
    ``benchmarks/mutation.py``, never for ``make test`` or CI."""
    import psutil

    if os.environ.get("LLMOPS_TEST_SENTINELS", "1") == "0":
        return

    PLANTED.tmpdir = tempfile.mkdtemp(prefix=f"llmops-sentinel-{RUN_ID}-")
    prog = os.path.join(PLANTED.tmpdir, "llama-server")
    os.symlink(shutil.which("sleep") or "/bin/sleep", prog)
    PLANTED.process = subprocess.Popen(
        [prog, "100000"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    PLANTED.process_create_time = psutil.Process(PLANTED.process.pid).create_time()

    busybox = shutil.which("busybox") or "/bin/busybox"
    client = _docker_client()
    if client is None or not os.path.exists(busybox):
        return
    PLANTED.client = client
    image = ensure_busybox_image(client, "llmops-test/busybox:latest")
    repo, _, tag = SENTINEL_ENGINE_TAG.rpartition(":")
    client.images.get(image).tag(repo, tag)
    mark = {SENTINEL_LABEL: RUN_ID}
    other_install = {
        "llmops.deployment": "smollm2",
        "llmops.engine": "vllm",
        "llmops.model": "smollm2",
        "llmops.port": "8000",
        "llmops.install": "0123456789abcdef",
    }
    specs = {
        "another install's deployment": (SENTINEL_ENGINE_TAG, {**mark, **other_install}, None),
        "a deployment label inherited from an image": (
            image,
            {**mark, "llmops.deployment": f"sentinel-{RUN_ID}"},
            f"llmops-smollm2-sentinel-{RUN_ID}",
        ),
        "a plain engine container": (SENTINEL_ENGINE_TAG, mark, f"sentinel-engine-{RUN_ID}"),
    }
    for what, (img, labels, name) in specs.items():
        c = client.containers.run(img, ["sleep", "100000"], detach=True, labels=labels, name=name)
        PLANTED.containers[what] = c.id


def check_and_remove() -> list[str]:
    """What the suite harmed (empty when everything survived); removes the sentinels."""
    import psutil

    problems: list[str] = []
    p = PLANTED.process
    if p is not None:
        alive = p.poll() is None
        same = False
        with contextlib.suppress(psutil.Error):
            same = psutil.Process(p.pid).create_time() == PLANTED.process_create_time
        if not (alive and same):
            problems.append(f"the host's llama-server process (pid {p.pid}) was killed")
        with contextlib.suppress(OSError):
            p.kill()
        with contextlib.suppress(Exception):
            p.wait(timeout=5)
    client = PLANTED.client
    if client is not None:
        import docker

        for what, cid in PLANTED.containers.items():
            try:
                c = client.containers.get(cid)
                if c.status != "running":
                    problems.append(f"the host's container ({what}) was stopped: {c.status}")
                c.remove(force=True)
            except docker.errors.NotFound:
                problems.append(f"the host's container ({what}) was deleted")
            except docker.errors.DockerException as e:
                problems.append(f"the host's container ({what}) could not be checked: {e}")
        with contextlib.suppress(Exception):
            client.images.remove(SENTINEL_ENGINE_TAG, noprune=True)
    if PLANTED.tmpdir:
        shutil.rmtree(PLANTED.tmpdir, ignore_errors=True)
    return problems
