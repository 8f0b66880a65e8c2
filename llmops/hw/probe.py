"""Collect HostFacts on this host: the one place that runs every read-only probe.

Each section is probed by its own adapter module (``nvml``, ``system``, ``docker``,
``platform``, ``hf``, ``tools``); a section that is not asked for stays ``None``.
No probe raises for a missing part (no driver, no daemon, offline): the facts say so.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from typing import Any

from llmops import __version__
from llmops.hw.facts import HostFacts

SECTIONS = ("nvidia", "system", "docker", "platform", "hf", "tools")


def collect(
    sections: Iterable[str] | None = None,
    *,
    nvml: Any | None = None,
    env: Mapping[str, str] | None = None,
    gpu_smoke_test: bool = False,
    gpu_smoke_test_image: str | None = None,
    hf_online_check: bool = True,
) -> HostFacts:
    """Probe the local host.

    Args:
        sections: which sections to probe (default: all of ``SECTIONS``).
        nvml: a pynvml-compatible module (tests pass a fake); default the real ``pynvml``.
        env: environment to read (default ``os.environ``).
        gpu_smoke_test: also run a container that requests GPUs (needs Docker).
        gpu_smoke_test_image: the image for that container (default a CUDA base image).
        hf_online_check: validate the HF token against the Hub when a token is present.
    """
    wanted = set(SECTIONS if sections is None else sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown fact sections: {sorted(unknown)}")
    env = os.environ if env is None else env
    kw: dict[str, Any] = {}
    if "nvidia" in wanted:
        from llmops.hw.nvml import probe_nvidia

        kw["nvidia"] = probe_nvidia(nvml)
    if "docker" in wanted:
        from llmops.hw.docker import probe_docker

        kw["docker"] = probe_docker(
            env=env, gpu_smoke_test=gpu_smoke_test, gpu_smoke_test_image=gpu_smoke_test_image
        )
    if "system" in wanted:
        from llmops.hw.system import probe_system

        docker_root = kw["docker"].root_dir if kw.get("docker") is not None else None
        kw["system"] = probe_system(env=env, docker_root_dir=docker_root)
    if "platform" in wanted:
        from llmops.hw.platform import probe_platform

        kw["platform"] = probe_platform(env=env)
    if "hf" in wanted:
        from llmops.hw.hf import probe_hf

        kw["hf"] = probe_hf(env=env, online_check=hf_online_check)
    if "tools" in wanted:
        from llmops.hw.tools import probe_tools

        kw["tools"] = probe_tools(env=env)
    return HostFacts(
        llmops_version=__version__,
        collected_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        source="local",
        **kw,
    )
