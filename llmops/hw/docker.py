"""Docker probe: is an engine reachable, which runtimes and CDI specs does it offer for GPUs.

The only module under ``hw/`` that imports the docker SDK (lazily). The decisions (what an
error means, which runtime can give a container GPUs) are pure functions so they are tested
with captured messages; ``probe_docker`` talks to the real engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmops.hw.facts import DockerFacts, GpuSmokeTest

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
DEFAULT_SMOKE_IMAGE = "nvidia/cuda:12.4.1-base-ubuntu22.04"


def classify_connect_error(message: str, *, socket_exists: bool, cli_installed: bool) -> str:
    """Map a failure to reach the engine to ``permission_denied | daemon_down | not_installed | other``."""
    low = message.lower()
    if "permission denied" in low:
        return "permission_denied"
    if not socket_exists and not cli_installed:
        return "not_installed"
    if any(
        s in low
        for s in ("connection refused", "no such file", "connection aborted", "cannot connect")
    ):
        return "daemon_down"
    if "timed out" in low or "timeout" in low:
        return "daemon_down"
    return "other"


def diagnose_gpu_error(message: str) -> str:
    """Which known failure a GPU container start hit (strings from ops.md §6).

    Returns one of ``no_runtime`` (classic ``could not select device driver``), ``cdi_no_vendor``
    (newer engines resolving --gpus through CDI), ``cdi_unresolvable`` (toolkit installed, CDI
    spec stale), ``nvml_permission`` (container without caps), ``no_image`` or ``other``.
    """
    low = message.lower()
    if "could not select device driver" in low:
        return "no_runtime"
    if "failed to discover gpu vendor from cdi" in low or "no known gpu vendor" in low:
        return "cdi_no_vendor"
    if "unresolvable cdi devices" in low:
        return "cdi_unresolvable"
    if "nvml error: insufficient permissions" in low:
        return "nvml_permission"
    if "no such image" in low or "pull access denied" in low or "not found: manifest" in low:
        return "no_image"
    return "other"


def cdi_nvidia_specs(dirs: Iterable[str]) -> tuple[str, ...]:
    """Spec files under the CDI dirs that declare NVIDIA GPUs (``kind: nvidia.com/gpu``)."""
    found: list[str] = []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            continue
        for f in sorted(p.iterdir()):
            if f.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                if "nvidia.com/gpu" in f.read_text(errors="replace"):
                    found.append(str(f))
            except OSError:
                continue
    return tuple(found)


def _socket_path(host: str) -> str | None:
    return host[len("unix://") :] if host.startswith("unix://") else None


def facts_from_info(info: Mapping[str, Any], version: Mapping[str, Any]) -> dict[str, Any]:
    """The DockerFacts fields that come from ``docker info`` / ``docker version`` payloads."""
    cdi_dirs = tuple(info.get("CDISpecDirs") or ())
    return {
        "server_version": info.get("ServerVersion") or version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "os_name": info.get("OperatingSystem"),
        "storage_driver": info.get("Driver"),
        "root_dir": info.get("DockerRootDir"),
        "runtimes": tuple(sorted((info.get("Runtimes") or {}).keys())),
        "default_runtime": info.get("DefaultRuntime"),
        "cdi_spec_dirs": cdi_dirs,
    }


def docker_client(env: Mapping[str, str] | None = None, timeout_s: int = 10) -> Any:
    """A docker SDK client for DOCKER_HOST or the default socket (may raise DockerException)."""
    import docker

    return docker.from_env(environment=dict(os.environ if env is None else env), timeout=timeout_s)


def run_gpu_smoke_test(client: Any, image: str = DEFAULT_SMOKE_IMAGE) -> GpuSmokeTest:
    """Run ``nvidia-smi -L`` in a container that requests every GPU (``docker run --gpus all``).

    The exact error the engine gives is kept and diagnosed, so doctor can say which part of
    the NVIDIA container stack is missing.
    """
    import docker
    from docker.types import DeviceRequest

    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            client.images.pull(image)
        out = client.containers.run(
            image,
            ["nvidia-smi", "-L"],
            device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])],
            remove=True,
            labels={"llmops.purpose": "gpu-smoke-test"},
        )
        text = out.decode(errors="replace").strip() if isinstance(out, bytes) else str(out)
        return GpuSmokeTest(ok=True, image=image, output=text)
    except docker.errors.ContainerError as e:
        msg = (e.stderr or b"").decode(errors="replace").strip() if e.stderr else str(e)
        return GpuSmokeTest(ok=False, image=image, error=msg, diagnosis=diagnose_gpu_error(msg))
    except docker.errors.DockerException as e:
        msg = getattr(e, "explanation", None) or str(e)
        msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        return GpuSmokeTest(ok=False, image=image, error=msg, diagnosis=diagnose_gpu_error(msg))
    finally:
        # `remove=True` does not remove a container that failed to start.
        try:
            for c in client.containers.list(
                all=True, filters={"label": "llmops.purpose=gpu-smoke-test"}
            ):
                c.remove(force=True)
        except Exception:  # best effort cleanup; the probe result matters more
            pass


def probe_docker(
    *,
    env: Mapping[str, str] | None = None,
    gpu_smoke_test_image: str | None = None,
    gpu_smoke_test: bool = False,
) -> DockerFacts:
    """Engine reachability, versions, storage driver, NVIDIA runtime and CDI specs.

    Shell equivalent: ``docker version; docker info --format '{{json .Runtimes}} {{json
    .CDISpecDirs}}'; ls /etc/cdi /var/run/cdi; which nvidia-ctk``.
    """
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST") or DEFAULT_SOCKET
    sock = _socket_path(host)
    socket_exists = sock is None or os.path.exists(sock)
    cli_installed = bool(shutil.which("docker") or shutil.which("dockerd"))
    ctk = shutil.which("nvidia-ctk")
    base: dict[str, Any] = {"host": host, "nvidia_ctk": ctk}
    if sock is not None and not socket_exists and not cli_installed:
        return DockerFacts(
            reachable=False,
            error=f"no Docker engine: {sock} does not exist and docker is not installed",
            error_kind="not_installed",
            cdi_nvidia_specs=cdi_nvidia_specs(DEFAULT_CDI_DIRS),
            **base,
        )
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a hard dependency
        return DockerFacts(
            reachable=False, error=f"docker SDK missing: {e}", error_kind="other", **base
        )
    try:
        client = docker_client(env)
        client.ping()
        info = client.info()
        version = client.version()
    except docker.errors.DockerException as e:
        msg = str(e)
        kind = classify_connect_error(msg, socket_exists=socket_exists, cli_installed=cli_installed)
        if kind == "permission_denied":
            msg = f"permission denied on {host}"
        elif kind == "daemon_down":
            msg = f"no Docker engine answers on {host}"
        return DockerFacts(
            reachable=False,
            error=msg,
            error_kind=kind,
            cdi_nvidia_specs=cdi_nvidia_specs(DEFAULT_CDI_DIRS),
            **base,
        )
    fields = facts_from_info(info, version)
    smoke = None
    if gpu_smoke_test:
        smoke = run_gpu_smoke_test(client, gpu_smoke_test_image or DEFAULT_SMOKE_IMAGE)
    with contextlib.suppress(Exception):
        client.close()
    return DockerFacts(
        reachable=True,
        cdi_nvidia_specs=cdi_nvidia_specs(fields["cdi_spec_dirs"] or DEFAULT_CDI_DIRS),
        gpu_smoke_test=smoke,
        **base,
        **fields,
    )
