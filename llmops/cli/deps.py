"""The single place where the CLI builds adapters. CLI tests monkeypatch these factories."""

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
) -> "HostFacts":
    """Probe this host (the sections asked for, default all).

    Under ``llmops --host H`` with no llmops on H, the facts come from H instead: its shell
    commands and ``nvidia-smi``, parsed by pure functions (``hw/remote_probe.py``). When llmops
    itself runs remotely for ``--host`` it is told ``LLMOPS_FACTS_SOURCE=ssh:...``, which
    becomes the facts' ``source``.
    """
    import os
    from dataclasses import replace

    remote = remote_session()
    if remote is not None:
        from llmops.run.remote import collect_remote_facts

        if gpu_smoke_test:
            from llmops.cli.output import warn

            warn(f"--gpu-smoke-test needs llmops on {remote.label}; skipped")
        return collect_remote_facts(remote, sections)
    from llmops.hw.probe import collect

    facts = collect(
        sections,
        nvml=nvml_module(),
        gpu_smoke_test=gpu_smoke_test,
        gpu_smoke_test_image=gpu_smoke_test_image,
        hf_online_check=hf_online_check,
    )
    source = os.environ.get("LLMOPS_FACTS_SOURCE")
    return replace(facts, source=source) if source else facts


def remote_session() -> Any | None:
    """The SshHost that ``llmops --host H`` opened for a facts-only command on a host without
    llmops (None when the command runs here)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get("llmops.remote_facts")


def ssh_host(target: str, *, trust_new_host: bool = False) -> Any:
    """An ``llmops.run.ssh.SshHost`` for what the user typed (not yet connected)."""
    from llmops.run.ssh import open_host

    return open_host(target, trust_new_host=trust_new_host)


def load_facts_file(path: Path) -> "HostFacts":
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


def deployment_resolver() -> Any:
    """NAME → the deployment's endpoint and key, for the client layer (which imports no ``run``):
    ``llmops.run.state.resolve_deployment``."""
    from llmops.run.state import resolve_deployment

    return resolve_deployment


def deployments() -> Any:
    """Both runtimes and the store, merged (``llmops.run.deployments.Deployments``)."""
    from llmops.run.deployments import Deployments
    from llmops.run.native import NativeRuntime

    store = deployment_store()
    return Deployments(store, docker_runtime(), NativeRuntime(store))


def planning_facts(
    hw: str | None, facts_file: Path | None, sections: Iterable[str] | None = None
) -> "HostFacts":
    """The hardware a command plans for; the one reading of ``--hw`` and ``--facts``.

    ``--facts FILE``: a host saved by ``doctor --json`` (``--hw`` then replaces its GPUs/RAM).
    ``--hw SPEC``: GPUs as described, Docker with GPU support assumed; ``--hw cpu`` without a
    size takes this host's RAM. Neither: this host, probed (``sections``).
    """
    from llmops import __version__
    from llmops.hw.facts import DockerFacts, HostFacts
    from llmops.plan.hardware import facts_from_hw, parse_hw

    if facts_file is not None:
        facts = load_facts_file(facts_file)
        return facts if hw is None else facts_from_hw(parse_hw(hw), facts)
    if hw is not None:
        spec = parse_hw(hw)
        base = HostFacts(
            llmops_version=__version__,
            collected_at="",
            source=f"hw:{hw}",
            docker=DockerFacts(reachable=True, runtimes=("nvidia", "runc")),
        )
        if spec.cpu_only and spec.ram_mib is None:
            from dataclasses import replace

            base = replace(base, system=collect_facts(["system"]).system)
        return facts_from_hw(spec, base)
    return collect_facts(sections)


def docker_client() -> Any:
    """A docker SDK client from the environment (not pinged: the first call reports trouble)."""
    import docker

    return docker.from_env()


def gpu_admin() -> Any:
    """The NVML adapter for power limits and ECC (``llmops.run.gpu_admin.GpuAdmin``)."""
    from llmops.run.gpu_admin import GpuAdmin

    return GpuAdmin(nvml_module())


def tunnel_manager() -> Any:
    """llmops' tunnels on this host (``llmops.run.tunnels.TunnelManager``)."""
    from llmops.run.tunnels import TunnelManager

    return TunnelManager()


def kill_sequence() -> Any:
    """What ``llmops kill`` stops, in order: tunnels, deployments, other engines
    (``llmops.run.kill.KillSequence``); containers are skipped when Docker is unreachable."""
    from llmops.errors import DockerError
    from llmops.run.kill import KillSequence

    d = deployments()
    try:
        client = d.docker().client
    except DockerError:
        client = None
    return KillSequence(tunnel_manager(), d, client)


def fit_tool() -> Any:
    """``plan → (argv, the engine's memory report)``: llama.cpp's ``llama-fit-params`` on this
    host, for ``fit --verify`` (``llmops.run.fit_verify.run_fit_tool``)."""
    from llmops.run.fit_verify import run_fit_tool

    return run_fit_tool


def inventory(path: Path | None = None) -> Any:
    """The fleet inventory (``llmops.run.fleet.load_inventory``; None: the default file)."""
    from llmops.run.fleet import load_inventory

    return load_inventory(path)
