"""System probe: CPU, RAM, swap, /dev/shm, disks, OS, container detection (psutil + /proc).

The parsing helpers are pure functions over file text so they can be tested with captured
``/proc`` contents; ``probe_system`` only gathers the text and numbers.
"""

from __future__ import annotations

import math
import os
import platform as _platform
import re
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from llmops.hw.facts import DiskInfo, SystemFacts
from llmops.paths import llmops_home

MIB = 1024 * 1024


def parse_os_release(text: str) -> str | None:
    """``PRETTY_NAME`` from /etc/os-release text."""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The first ``model name`` (x86) or ``Model``/``CPU part`` (arm) line of /proc/cpuinfo."""
    for key in ("model name", "Model", "Hardware"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return None


def container_evidence(
    *,
    dockerenv_exists: bool,
    containerenv_exists: bool,
    cgroup_text: str,
    env: Mapping[str, str],
) -> tuple[str, ...]:
    """Reasons to believe this process runs inside a container (empty when none).

    Heuristics (general practice, see ops.md §4.5): ``/.dockerenv`` (Docker),
    ``/run/.containerenv`` (Podman), container runtimes in ``/proc/1/cgroup`` (cgroup v1),
    and the ``container`` env var systemd-nspawn/podman set.
    """
    found: list[str] = []
    if dockerenv_exists:
        found.append("/.dockerenv exists")
    if containerenv_exists:
        found.append("/run/.containerenv exists")
    m = re.search(r"(docker|kubepods|containerd|lxc|libpod)", cgroup_text)
    if m:
        found.append(f"/proc/1/cgroup mentions {m.group(1)}")
    if env.get("container"):
        found.append(f"container={env['container']}")
    if env.get("KUBERNETES_SERVICE_HOST"):
        found.append("KUBERNETES_SERVICE_HOST is set")
    return tuple(found)


def hf_cache_dir(env: Mapping[str, str]) -> str:
    """Where huggingface_hub puts downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache."""
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return env["HUGGINGFACE_HUB_CACHE"]
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(home, "hub")


def _existing_ancestor(path: str) -> str:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return str(p)


def disk_info(purpose: str, path: str) -> DiskInfo:
    """Free space of the filesystem that holds ``path`` (or its nearest existing parent)."""
    try:
        usage = shutil.disk_usage(_existing_ancestor(path))
    except OSError as e:
        return DiskInfo(purpose=purpose, path=path, error=e.strerror or str(e))
    return DiskInfo(
        purpose=purpose, path=path, total_mib=usage.total // MIB, free_mib=usage.free // MIB
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def probe_system(
    *, env: Mapping[str, str] | None = None, docker_root_dir: str | None = None
) -> SystemFacts:
    """CPU, memory, /dev/shm, disks where weights and images go, OS, container markers.

    Shell equivalent: ``lscpu; free -m; df -m /dev/shm ~/.cache/huggingface /var/lib/docker``.
    """
    import psutil

    env = os.environ if env is None else env
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    shm_total = shm_free = None
    if os.path.isdir("/dev/shm"):
        try:
            st = os.statvfs("/dev/shm")
            shm_total = st.f_blocks * st.f_frsize // MIB
            shm_free = st.f_bavail * st.f_frsize // MIB
        except OSError:
            pass
    disks = [disk_info("hf_cache", hf_cache_dir(env))]
    root = docker_root_dir or ("/var/lib/docker" if os.path.isdir("/var/lib/docker") else None)
    if root:
        disks.append(disk_info("docker_root", root))
    disks.append(disk_info("state", str(llmops_home(env))))
    evidence = container_evidence(
        dockerenv_exists=os.path.exists("/.dockerenv"),
        containerenv_exists=os.path.exists("/run/.containerenv"),
        cgroup_text=_read("/proc/1/cgroup"),
        env=env,
    )
    uname = _platform.uname()
    return SystemFacts(
        hostname=socket.gethostname(),
        os_name=parse_os_release(_read("/etc/os-release")) or f"{uname.system} {uname.release}",
        kernel=uname.release,
        arch=uname.machine,
        python_version=_platform.python_version(),
        cpu_model=parse_cpu_model(_read("/proc/cpuinfo")) or _platform.processor() or None,
        cpu_cores=psutil.cpu_count(logical=False),
        cpu_threads=psutil.cpu_count(logical=True),
        cpu_usable=usable_cpus(_affinity(), _read("/sys/fs/cgroup/cpu.max")),
        ram_total_mib=vm.total // MIB,
        ram_available_mib=vm.available // MIB,
        swap_total_mib=sw.total // MIB,
        swap_used_mib=sw.used // MIB,
        shm_total_mib=shm_total,
        shm_free_mib=shm_free,
        in_container=bool(evidence),
        container_evidence=evidence,
        is_root=(os.geteuid() == 0) if hasattr(os, "geteuid") else None,
        disks=tuple(disks),
    )


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count()


def usable_cpus(affinity: int | None, cpu_max: str | None) -> int | None:
    """CPUs a process may keep busy: the affinity count, capped by a cgroup v2 quota
    (``/sys/fs/cgroup/cpu.max``: ``QUOTA PERIOD`` or ``max PERIOD``), rounded up."""
    quota = None
    parts = (cpu_max or "").split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]) > 0:
        quota = max(1, math.ceil(int(parts[0]) / int(parts[1])))
    if affinity is None:
        return quota
    return min(affinity, quota) if quota else affinity


__all__ = [
    "container_evidence",
    "disk_info",
    "hf_cache_dir",
    "parse_cpu_model",
    "usable_cpus",
    "parse_os_release",
    "probe_system",
]
