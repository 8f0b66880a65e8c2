"""Platform probe: vast.ai, RunPod, some other container, a VM, or bare metal.

Detection reads environment variable NAMES (never the values of API keys such as RunPod's
``RUNPOD_API_KEY`` or vast.ai's ``CONTAINER_API_KEY``) from the process environment and from
``/etc/environment``, because SSH sessions on vast.ai may not see the container's variables
(ops.md §4.2, §4.5).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llmops.hw.facts import PlatformFacts
from llmops.hw.system import container_evidence

VAST_MARKERS = ("VAST_CONTAINERLABEL", "VAST_TCP_PORT_22", "CONTAINER_API_KEY")
RUNPOD_MARKERS = ("RUNPOD_POD_ID", "RUNPOD_POD_HOSTNAME", "RUNPOD_GPU_COUNT")
_VM_VENDORS = {
    "qemu": "kvm",
    "kvm": "kvm",
    "vmware": "vmware",
    "microsoft corporation": "hyper-v",
    "xen": "xen",
    "amazon ec2": "aws",
    "google": "gce",
    "innotek gmbh": "virtualbox",
    "openstack": "openstack",
}


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines of /etc/environment (quotes stripped, ``export`` tolerated)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def detect_virtualization(sys_vendor: str, product_name: str, cpu_flags: str) -> str | None:
    """Hypervisor name from DMI strings and the cpuinfo ``hypervisor`` flag (None: bare metal)."""
    text = f"{sys_vendor} {product_name}".lower()
    for needle, name in _VM_VENDORS.items():
        if needle in text:
            return name
    if " hypervisor" in f" {cpu_flags} ":
        return "unknown-hypervisor"
    return None


def detect_platform(
    env: Mapping[str, str],
    etc_environment: Mapping[str, str],
    *,
    in_container: bool,
    container_reasons: tuple[str, ...] = (),
    virtualization: str | None = None,
) -> PlatformFacts:
    """Decide the platform from what was read; pure."""
    merged = {**etc_environment, **env}
    vast = [k for k in VAST_MARKERS if k in merged]
    if "CONTAINER_ID" in merged and "CONTAINER_API_KEY" in merged and "CONTAINER_ID" not in vast:
        vast.append("CONTAINER_ID")
    if vast:
        where = ["env " + k + (" (/etc/environment)" if k not in env else "") for k in vast]
        return PlatformFacts(
            kind="vast.ai",
            evidence=tuple(where),
            instance_id=merged.get("CONTAINER_ID"),
            virtualization=virtualization,
        )
    runpod = [k for k in RUNPOD_MARKERS if k in merged]
    if runpod:
        where = ["env " + k + (" (/etc/environment)" if k not in env else "") for k in runpod]
        return PlatformFacts(
            kind="runpod",
            evidence=tuple(where),
            instance_id=merged.get("RUNPOD_POD_ID"),
            virtualization=virtualization,
        )
    if in_container:
        return PlatformFacts(
            kind="container", evidence=container_reasons, virtualization=virtualization
        )
    if virtualization:
        return PlatformFacts(
            kind="vm", evidence=(f"hypervisor: {virtualization}",), virtualization=virtualization
        )
    return PlatformFacts(kind="bare-metal", evidence=("no container or hypervisor markers",))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def probe_platform(*, env: Mapping[str, str] | None = None) -> PlatformFacts:
    """Read env, /etc/environment, container markers and DMI strings, then decide."""
    env = os.environ if env is None else env
    reasons = container_evidence(
        dockerenv_exists=os.path.exists("/.dockerenv"),
        containerenv_exists=os.path.exists("/run/.containerenv"),
        cgroup_text=_read("/proc/1/cgroup"),
        env=env,
    )
    flags = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1]
            break
    virt = detect_virtualization(
        _read("/sys/class/dmi/id/sys_vendor").strip(),
        _read("/sys/class/dmi/id/product_name").strip(),
        flags,
    )
    return detect_platform(
        env,
        parse_environment_file(_read("/etc/environment")),
        in_container=bool(reasons),
        container_reasons=reasons,
        virtualization=virt,
    )
