"""The single place where the CLI builds adapters. CLI tests monkeypatch these factories."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import FactsFileError

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts


def nvml_module() -> Any | None:
    """The pynvml-compatible module to probe GPUs with; None means the real ``pynvml``."""
    return None


def collect_facts(
    sections: Iterable[str] | None = None,
    *,
    gpu_smoke_test: bool = False,
    gpu_smoke_test_image: str | None = None,
    hf_online_check: bool = True,
) -> HostFacts:
    """Probe this host (the sections asked for, default all)."""
    from llmops.hw.probe import collect

    return collect(
        sections,
        nvml=nvml_module(),
        gpu_smoke_test=gpu_smoke_test,
        gpu_smoke_test_image=gpu_smoke_test_image,
        hf_online_check=hf_online_check,
    )


def load_facts_file(path: Path) -> HostFacts:
    """Read HostFacts saved by ``llmops doctor --json`` (or a bare HostFacts object)."""
    from dataclasses import replace

    from llmops.hw.facts import host_facts_from_json

    try:
        text = path.read_text()
    except OSError as e:
        raise FactsFileError(
            f"cannot read facts file {path}: {e.strerror or e}",
            "save one with `llmops doctor --json > host.json`",
        ) from e
    try:
        facts = host_facts_from_json(text)
    except ValueError as e:
        raise FactsFileError(
            f"facts file {path} is not valid HostFacts JSON: {e}",
            "save one with `llmops doctor --json > host.json`",
        ) from e
    return replace(facts, source=f"file:{path}")


def deployment_store() -> Any:
    """The state dir of deployments ($LLMOPS_HOME/deployments)."""
    from llmops.run.state import DeploymentStore

    return DeploymentStore()


def docker_runtime(required: bool = False) -> Any | None:
    """A DockerRuntime on a reachable engine; None when unreachable (unless ``required``)."""
    from llmops.errors import DockerError
    from llmops.run.docker import DockerRuntime, _client

    try:
        return DockerRuntime(_client())
    except DockerError:
        if required:
            raise
        return None


def deployments() -> Any:
    """Both runtimes and the store, merged (``llmops.run.deployments.Deployments``)."""
    from llmops.run.deployments import Deployments
    from llmops.run.native import NativeRuntime

    store = deployment_store()
    return Deployments(store, docker_runtime(), NativeRuntime(store))
