"""``llmops build llamacpp``: a local image of the llama-server llmops installed.

No registry is needed: the image is the binary, the shared libraries ``ldd`` names for it and
their loader, on an empty (``scratch``) base, or on a local base image given with
``--base-image`` (a debootstrapped Debian, say). Its entrypoint is ``llama-server``, like the
official ``ghcr.io/ggml-org/llama.cpp:server`` images, so ``up --runtime docker --image TAG``
starts it with the same argv as the official image.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.hw.engines import InstalledEngine

_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def shared_libs(program: str) -> list[str]:
    """Absolute paths of the shared libraries (and loader) ``program`` needs, per ``ldd``."""
    try:
        out = subprocess.run(
            ["ldd", program], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LlmopsError(f"cannot run ldd on {program}: {e}", "install libc-bin (ldd)") from e
    libs = []
    for line in out.splitlines():
        if "not found" in line:
            raise LlmopsError(
                f"{program} needs a library that is not installed: {line.strip()}",
                "reinstall the engine: `llmops engine install llamacpp --force`",
            )
        m = _LDD.search(line)
        if m:
            libs.append(m.group(1))
    return libs


def image_tag(rec: InstalledEngine) -> str:
    return f"llmops/llamacpp:{rec.version}-{rec.variant}"


def dockerfile(base: str | None) -> str:
    return "\n".join(
        [
            f"FROM {base or 'scratch'}",
            "COPY rootfs/ /",
            "ENV LLAMA_ARG_HOST=0.0.0.0 LLAMA_ARG_PORT=8080",
            "EXPOSE 8080",
            'ENTRYPOINT ["/app/llama-server"]',
            "",
        ]
    )


def build_image(
    client: Any,
    rec: InstalledEngine,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    log: Callable[[str], None] = lambda _l: None,
) -> tuple[str, str]:
    """Build the image; (tag, image id).

    Raises:
        LlmopsError: ldd fails, a library is missing, or the Docker build fails.
    """
    tag = tag or image_tag(rec)
    with tempfile.TemporaryDirectory(prefix="llmops-llamacpp-image-") as tmp:
        ctx = Path(tmp)
        root = ctx / "rootfs"
        (root / "app").mkdir(parents=True)
        (root / "tmp").mkdir()
        (root / "models").mkdir()
        shutil.copy2(rec.program, root / "app" / "llama-server")
        if base_image is None:
            for lib in shared_libs(rec.program):
                dest = root / lib.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(lib, dest)  # follows symlinks: the file under the soname
        (ctx / "Dockerfile").write_text(dockerfile(base_image))
        import docker.errors

        try:
            image, lines = client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
        except docker.errors.BuildError as e:
            raise LlmopsError(
                f"building {tag} failed: {e.msg}",
                "is the base image present (`docker images`)?" if base_image else "see above",
            ) from e
        for chunk in lines:
            text = chunk.get("stream", "").rstrip() if isinstance(chunk, dict) else ""
            if text:
                log(text)
    return tag, str(image.id)


__all__ = ["build_image", "dockerfile", "image_tag", "shared_libs"]
