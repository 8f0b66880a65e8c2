"""Shared fixtures: isolated state, stable output width, and the real Docker engine.

Tests that need Docker skip with a reason when no engine answers, and FAIL instead when
``LLMOPS_REQUIRE_DOCKER=1`` (CI sets it), so CI can never pass by skipping them.

The suite shares the host's Docker engine and process table with whatever else runs there
(a user's real deployments on a GPU host, another test run). It only touches what it made:
every test has its own ``LLMOPS_HOME`` (so its own llmops install id: ``ps``/``down``/``kill``
see only that test's containers), Docker objects are named with this run's ``RUN_ID``, ports
are picked free, and engine stand-ins live under ``llmops-test/`` (never a real engine's tag).
``tests/support/sentinels.py`` plants a foreign container and process before the first test and fails
the run when the suite harmed them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sentinels

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
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        require_or_skip("LLMOPS_REQUIRE_DOCKER", "busybox-static is not installed")
    return sentinels.ensure_busybox_image(docker_client, BUSYBOX_IMAGE)


@pytest.fixture(scope="session")
def engine_images(docker_client):  # type: ignore[no-untyped-def]
    """Build the strict stand-ins ``llmops-test/{tgi,vllm,llamacpp}:{serve,crash,hang}``
    (tests/support/engine_standin.py); returns ``stand_in(engine, mode="serve") -> image``."""
    from tests.support import engine_standin

    busybox = engine_standin.busybox_path()
    if busybox is None:
        require_or_skip("LLMOPS_REQUIRE_DOCKER", "busybox-static is not installed")
    engine_standin.build(docker_client, str(busybox))
    return engine_standin.image


pytest_plugins = ["pytester", "tests.support.skipguard"]


def pytest_sessionstart(session: pytest.Session) -> None:
    sentinels.plant()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import sys

    harmed = sentinels.check_and_remove()
    if harmed:
        print(
            "\nthe suite harmed what it did not make (it must touch only its own):", file=sys.stderr
        )
        for line in harmed:
            print(f"  {line}", file=sys.stderr)
        session.exitstatus = 1
