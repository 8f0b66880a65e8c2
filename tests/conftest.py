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


ENGINE_IMAGE = "llmops-test/engine"
_ENTRY = r"""#!/bin/sh
# A stand-in engine for tests: takes the engine's flags, honours --port, and behaves as
# /mode says: serve (a real HTTP server: busybox httpd), crash (an OOM line, exit 1), hang.
port=80
while [ $# -gt 0 ]; do
  case "$1" in --port) port="$2"; shift;; esac
  shift
done
echo "args: $*"
case "$(cat /mode)" in
  serve) echo "Downloading weights"; sleep 1; echo "Starting Webserver on $port"
         exec httpd -f -v -p "$port" -h /www ;;
  crash) echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" >&2
         exit 1 ;;
  hang)  echo "Loading model"; exec sleep 100000 ;;
esac
"""


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="session")
def engine_images(docker_client):  # type: ignore[no-untyped-def]
    """Build llmops-test/engine:{serve,crash,hang} from busybox-static; returns a tagger."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        require_or_skip("LLMOPS_REQUIRE_DOCKER", "busybox-static is not installed")
    for mode in ("serve", "crash", "hang"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(busybox, arcname="bin/busybox")
            for applet in ("sh", "httpd", "sleep", "cat", "echo"):
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                tar.addfile(info)
            _add_file(tar, "entry.sh", _ENTRY.encode(), 0o755)
            _add_file(tar, "mode", mode.encode())
            _add_file(tar, "www/health", b"ok\n")
            _add_file(tar, "www/v1/models", b'{"object":"list","data":[{"id":"test"}]}\n')
        docker_client.api.import_image_from_data(
            buf.getvalue(),
            repository=ENGINE_IMAGE,
            tag=mode,
            changes=['ENTRYPOINT ["/bin/sh", "/entry.sh"]'],
        )

    def tag_as(image: str, mode: str = "serve") -> str:
        repo, _, tag = image.rpartition(":")
        docker_client.images.get(f"{ENGINE_IMAGE}:{mode}").tag(repo, tag)
        return image

    return tag_as


# ---- CI must not pass by skipping ------------------------------------------------------------
# With LLMOPS_FAIL_ON_SKIP=1 (set by .ci/run) a skip fails the run unless its reason is one that
# depends on hardware CI cannot have (a real NVIDIA driver) or on how the machine's root account
# is set up.
ALLOWED_SKIPS = ("NVIDIA driver", "login PATH")
_SKIPPED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = (
            str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        )
        _SKIPPED.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _required("LLMOPS_FAIL_ON_SKIP"):
        return
    bad = [(n, r) for n, r in _SKIPPED if not any(a in r for a in ALLOWED_SKIPS)]
    if bad:
        import sys

        print("\nLLMOPS_FAIL_ON_SKIP=1 and these tests were skipped:", file=sys.stderr)
        for nodeid, reason in bad:
            print(f"  {nodeid}: {reason}", file=sys.stderr)
        session.exitstatus = 1
