"""HostFacts of a host without llmops: pure parsers of what the probe script printed.

``PROBE_SCRIPT`` (:mod:`llmops.hw.probe_script`, whose names this module re-exports) prints one
``@@llmops:NAME`` section per thing it read. :func:`parse_probe_output` turns that text into the
same ``HostFacts`` the local probe builds, reusing the local probes' pure helpers
(``parse_os_release``, ``container_evidence``, ``detect_platform``, ``facts_from_info``,
``parse_version``) so a remote host is judged exactly like a local one. This module runs nothing.

Secrets: of an HF token the script prints only its length, first three and last four
characters; :func:`_mask` builds the same masked form as ``hw.hf.mask_secret`` from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from llmops.hw import smi
from llmops.hw.facts import (
    DiskInfo,
    DockerFacts,
    HfFacts,
    HostFacts,
    NvidiaFacts,
    PlatformFacts,
    SystemFacts,
    ToolInfo,
)
from llmops.hw.probe_script import ID_VARS, MARK, PROBE_SCRIPT, SECTIONS, TOOLS, probe_argv


def split_sections(text: str) -> dict[str, str]:
    """``@@llmops:NAME`` marker lines → {NAME: the text until the next marker}."""
    out: dict[str, str] = {}
    name: str | None = None
    buf: list[str] = []
    for line in text.splitlines():
        if line.startswith(MARK):
            if name is not None:
                out[name] = "\n".join(buf).strip("\n")
            name, buf = line[len(MARK) :].strip(), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = "\n".join(buf).strip("\n")
    return out


def _kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() and k.strip() not in out:
            out[k.strip()] = v.strip()
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo lines → {key: MiB} (the file says kB, i.e. KiB)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s+(\d+)\s*kB", line)
        if m:
            out[m.group(1)] = int(m.group(2)) // 1024
    return out


def parse_df_row(line: str) -> tuple[int, int] | None:
    """One ``df -Pk`` data row → (total MiB, available MiB); None for an error line.

    Columns are ``Filesystem 1024-blocks Used Available Capacity Mounted-on``; the mount point
    may contain spaces, so the numbers are found left of the ``NN%`` column.
    """
    parts = line.split()
    for i, p in enumerate(parts):
        if re.fullmatch(r"\d+%|-", p) and i >= 3:
            total, avail = _int(parts[i - 3]), _int(parts[i - 1])
            if total is not None and avail is not None:
                return total // 1024, avail // 1024
    return None


def parse_disks(text: str) -> tuple[tuple[DiskInfo, ...], tuple[int, int] | None]:
    """The ``df`` section: (DiskInfo per purpose, (total, free) MiB of /dev/shm or None)."""
    disks: list[DiskInfo] = []
    shm: tuple[int, int] | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("disk "):
            _, purpose, path = (line.split(" ", 2) + ["", ""])[:3]
            row = lines[i + 1] if i + 1 < len(lines) else ""
            parsed = parse_df_row(row)
            if purpose == "shm":
                shm = parsed
            elif parsed is None:
                disks.append(DiskInfo(purpose=purpose, path=path, error=row.strip() or "df failed"))
            else:
                disks.append(
                    DiskInfo(purpose=purpose, path=path, total_mib=parsed[0], free_mib=parsed[1])
                )
            i += 2
            continue
        i += 1
    return tuple(disks), shm


def _env_names(text: str) -> dict[str, str]:
    """Names (value "") plus the instance-id values the script printed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.strip().partition("=")
        if not k or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            continue
        if sep and k in ID_VARS:
            out[k] = v.strip().strip('"').strip("'")
        else:
            out.setdefault(k, "")
    return out


def _container(sections: Mapping[str, str]) -> tuple[str, ...]:
    from llmops.hw.system import container_evidence

    text = sections.get("container", "")
    lines = set(text.splitlines())
    kv = _kv(text)
    env = {"container": kv.get("container", "")}
    if "kubernetes" in lines:
        env["KUBERNETES_SERVICE_HOST"] = "set"
    return container_evidence(
        dockerenv_exists="dockerenv" in lines,
        containerenv_exists="containerenv" in lines,
        cgroup_text=sections.get("cgroup", ""),
        env=env,
    )


def _system(s: Mapping[str, str]) -> SystemFacts:
    from llmops.hw.system import parse_cpu_model, parse_os_release, usable_cpus

    uname = (s.get("uname", "").splitlines() + ["", "", ""])[:3]
    hostname, kernel, arch = (u.strip() or None for u in uname)
    mem = parse_meminfo(s.get("meminfo", ""))
    cpu = s.get("cpuinfo", "")
    kv = _kv(cpu)
    disks, shm = parse_disks(s.get("df", ""))
    evidence = _container(s)
    uid = _int(s.get("id"))
    swap_total = mem.get("SwapTotal")
    swap_free = mem.get("SwapFree")
    return SystemFacts(
        hostname=hostname,
        os_name=parse_os_release(s.get("os-release", ""))
        or (f"Linux {kernel}" if kernel else None),
        kernel=kernel,
        arch=arch,
        python_version=s.get("python", "").strip() or None,
        cpu_model=parse_cpu_model(cpu),
        cpu_cores=_int(kv.get("cores")) or None,
        cpu_threads=_int(kv.get("threads")) or None,
        cpu_usable=usable_cpus(_int(kv.get("usable")) or None, kv.get("cpumax")),
        ram_total_mib=mem.get("MemTotal"),
        ram_available_mib=mem.get("MemAvailable"),
        swap_total_mib=swap_total,
        swap_used_mib=(
            swap_total - swap_free if swap_total is not None and swap_free is not None else None
        ),
        shm_total_mib=shm[0] if shm else None,
        shm_free_mib=shm[1] if shm else None,
        in_container=bool(evidence),
        container_evidence=evidence,
        is_root=None if uid is None else uid == 0,
        disks=disks,
    )


def _platform(s: Mapping[str, str]) -> PlatformFacts:
    from llmops.hw.platform import detect_platform, detect_virtualization

    evidence = _container(s)
    dmi = _kv(s.get("dmi", ""))
    virt = detect_virtualization(
        dmi.get("vendor", ""),
        dmi.get("product", ""),
        "hypervisor" if "hypervisor" in s.get("dmi", "").splitlines() else "",
    )
    return detect_platform(
        _env_names(s.get("env", "")),
        _env_names(s.get("etc-environment", "")),
        in_container=bool(evidence),
        container_reasons=evidence,
        virtualization=virt,
    )


def _nvidia(s: Mapping[str, str]) -> NvidiaFacts:
    head = _kv(s.get("nvidia", ""))
    fields = [f for f in head.get("fields", "").split(",") if f]
    rc = _int(head.get("rc"))
    if not fields:
        return smi.failure_facts("", 127) or NvidiaFacts(error="nvidia-smi is not installed")
    return smi.parse_query_gpu(
        s.get("nvidia-gpus", ""),
        fields,
        exit_code=rc,
        apps_text=s.get("nvidia-apps", ""),
        cuda_text=s.get("nvidia-q", ""),
    )


def _docker(s: Mapping[str, str]) -> DockerFacts:
    from llmops.hw.docker import classify_connect_error, facts_from_info

    head = _kv(s.get("docker", ""))
    host = head.get("host") or "unix:///var/run/docker.sock"
    ctk = head.get("ctk") or None
    cdi = tuple(line.strip() for line in s.get("cdi", "").splitlines() if line.strip())
    base: dict[str, Any] = {"host": host, "nvidia_ctk": ctk, "cdi_nvidia_specs": cdi}
    cli = head.get("cli") == "yes"
    socket_exists = head.get("socket") == "yes"
    raw = s.get("docker-info", "").strip()
    info: Any = None
    if raw.startswith("{"):
        try:
            info = json.loads(raw.splitlines()[0])
        except ValueError:
            info = None
    if not cli:
        if socket_exists:
            return DockerFacts(
                reachable=False,
                error=f"{host} exists but the docker CLI is not installed, so it was not queried",
                error_kind="other",
                **base,
            )
        return DockerFacts(
            reachable=False,
            error="no Docker engine: /var/run/docker.sock does not exist and docker is not installed",
            error_kind="not_installed",
            **base,
        )
    if not isinstance(info, dict) or info.get("ServerErrors") or not info.get("ServerVersion"):
        msg = raw or "docker info printed nothing"
        if isinstance(info, dict):
            msg = "; ".join(str(e) for e in info.get("ServerErrors") or []) or msg
        kind = classify_connect_error(msg, socket_exists=socket_exists, cli_installed=True)
        if kind == "permission_denied":
            msg = f"permission denied on {host}"
        elif kind == "daemon_down":
            msg = f"no Docker engine answers on {host}"
        return DockerFacts(reachable=False, error=msg, error_kind=kind, **base)
    version: dict[str, Any] = {}
    ver_raw = s.get("docker-version", "").strip()
    if ver_raw.startswith("{"):
        try:
            version = json.loads(ver_raw.splitlines()[0]) or {}
        except ValueError:
            version = {}
    return DockerFacts(reachable=True, **base, **facts_from_info(info, version))


def _mask(length: int, first3: str, last4: str) -> str:
    """The same masked form as ``hw.hf.mask_secret``, from the parts the script printed."""
    if length <= 8:
        return "…" * min(length, 3)
    prefix = first3 if first3[2:3] == "_" else ""
    return f"{prefix}…{last4}"


def _hf(s: Mapping[str, str]) -> HfFacts:
    kv = _kv(s.get("hf", ""))
    source = kv.get("source") or None
    length = _int(kv.get("len")) or 0
    return HfFacts(
        token_present=source is not None,
        token_source=source,
        token_masked=_mask(length, kv.get("first3", ""), kv.get("last4", "")) if source else None,
        token_valid=None,
        online=None,
        offline_mode=kv.get("offline") == "1",
        error=(
            "the token was not checked against the Hub (checked only where llmops runs)"
            if source
            else None
        ),
        cache_dir=kv.get("cache") or None,
        cache_size_mib=_int(kv.get("size_mib")),
        cache_repos=_int(kv.get("repos")),
    )


def _tools(s: Mapping[str, str]) -> tuple[ToolInfo, ...]:
    from llmops.hw.tools import parse_version

    out: list[ToolInfo] = []
    for name in TOOLS:
        text = s.get(f"tool:{name}", "")
        first, _, rest = text.partition("\n")
        path = first.partition("=")[2].strip() if first.startswith("path=") else ""
        if not path:
            out.append(ToolInfo(name=name))
            continue
        out.append(ToolInfo(name=name, path=path, version=parse_version(rest, name)))
    return tuple(out)


def parse_probe_output(
    text: str,
    *,
    sections: Iterable[str] | None = None,
    source: str,
    llmops_version: str,
    collected_at: str,
) -> HostFacts:
    """The probe script's output → HostFacts (the sections asked for; the others None).

    Raises:
        ValueError: when the text is not the probe's output (no ``@@llmops:end`` marker: the
            script was cut short or a login banner replaced it).
    """
    s = split_sections(text)
    if "end" not in s:
        raise ValueError("the probe's output is incomplete (no end marker)")
    wanted = set(SECTIONS if sections is None else sections)
    kw: dict[str, Any] = {}
    if "nvidia" in wanted:
        kw["nvidia"] = _nvidia(s)
    if "system" in wanted:
        kw["system"] = _system(s)
    if "docker" in wanted:
        kw["docker"] = _docker(s)
    if "platform" in wanted:
        kw["platform"] = _platform(s)
    if "hf" in wanted:
        kw["hf"] = _hf(s)
    if "tools" in wanted:
        kw["tools"] = _tools(s)
    return HostFacts(llmops_version=llmops_version, collected_at=collected_at, source=source, **kw)


__all__ = [
    "ID_VARS",
    "MARK",
    "PROBE_SCRIPT",
    "SECTIONS",
    "parse_df_row",
    "parse_disks",
    "parse_meminfo",
    "parse_probe_output",
    "probe_argv",
    "split_sections",
]
