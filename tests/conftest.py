"""Shared fixtures: isolated state, stable output width, and the real Docker engine.

Tests that need Docker skip with a reason when no engine answers, and FAIL instead when
``LLMOPS_REQUIRE_DOCKER=1`` (CI sets it), so CI can never pass by skipping them.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_IMAGE = "llmops-test/busybox:latest"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own LLMOPS_HOME and HF cache, no HF token, and a wide terminal."""
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "llmops-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "LLMOPS_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    yield


def _required(var: str) -> bool:
    return os.environ.get(var, "") not in ("", "0")


def require_or_skip(var: str, reason: str) -> None:
    """Skip with ``reason``, or fail when the environment variable ``var`` demands the part."""
    if _required(var):
        pytest.fail(f"{var}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    """A client of the real Docker engine (skip/fail per LLMOPS_REQUIRE_DOCKER)."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as e:  # any failure to reach the engine
        require_or_skip("LLMOPS_REQUIRE_DOCKER", f"no Docker engine answers: {e}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:  # type: ignore[no-untyped-def]
    """A tiny local image made from Debian's busybox-static (no registry is reachable)."""
    try:
        docker_client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except Exception:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        require_or_skip("LLMOPS_REQUIRE_DOCKER", "busybox-static is not installed")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "echo", "cat", "sleep", "ls", "env", "true", "false"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    docker_client.api.import_image_from_data(
        buf.getvalue(), repository=BUSYBOX_IMAGE.split(":")[0], tag="latest"
    )
    return BUSYBOX_IMAGE
