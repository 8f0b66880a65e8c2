"""The parsing and decision helpers behind the system, platform, Docker, HF and tools probes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmops.hw import docker as hwdocker
from llmops.hw import hf, platform, system, tools


def test_os_release_and_cpuinfo() -> None:
    assert system.parse_os_release(
        'NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    ) == ("Debian GNU/Linux 12 (bookworm)")
    assert system.parse_os_release("NAME=x\n") is None
    cpu = "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
    assert system.parse_cpu_model(cpu) == "AMD EPYC 7763 64-Core Processor"


def test_container_evidence() -> None:
    ev = system.container_evidence(
        dockerenv_exists=False,
        containerenv_exists=False,
        cgroup_text="12:cpu:/docker/abc123\n",
        env={},
    )
    assert ev == ("/proc/1/cgroup mentions docker",)
    assert (
        system.container_evidence(
            dockerenv_exists=False, containerenv_exists=False, cgroup_text="0::/\n", env={}
        )
        == ()
    )


def test_hf_cache_dir_precedence() -> None:
    assert system.hf_cache_dir({"HF_HUB_CACHE": "/x"}) == "/x"
    assert system.hf_cache_dir({"HF_HOME": "/h"}) == "/h/hub"


def test_disk_info_walks_up_to_an_existing_parent(tmp_path: Path) -> None:
    d = system.disk_info("hf_cache", str(tmp_path / "not" / "yet"))
    assert d.error is None and d.free_mib is not None and d.free_mib > 0


def test_probe_system_reads_this_host() -> None:
    s = system.probe_system(env={"HF_HOME": "/tmp/hf"})
    assert s.ram_total_mib and s.ram_total_mib > 0
    assert s.cpu_threads == os.cpu_count()
    assert {d.purpose for d in s.disks} >= {"hf_cache", "state"}


@pytest.mark.parametrize(
    ("env", "etc", "kind", "instance"),
    [
        ({"VAST_CONTAINERLABEL": "C.123", "CONTAINER_ID": "123"}, {}, "vast.ai", "123"),
        ({}, {"VAST_TCP_PORT_22": "41022", "CONTAINER_ID": "9"}, "vast.ai", "9"),
        ({"RUNPOD_POD_ID": "abc", "RUNPOD_API_KEY": "secret-value"}, {}, "runpod", "abc"),
    ],
)
def test_platform_detection(env: dict, etc: dict, kind: str, instance: str) -> None:
    p = platform.detect_platform(env, etc, in_container=True)
    assert p.kind == kind and p.instance_id == instance
    assert "secret-value" not in repr(p)


def test_platform_container_vm_and_bare_metal() -> None:
    assert (
        platform.detect_platform({}, {}, in_container=True, container_reasons=("x",)).kind
        == "container"
    )
    assert platform.detect_platform({}, {}, in_container=False, virtualization="kvm").kind == "vm"
    assert platform.detect_platform({}, {}, in_container=False).kind == "bare-metal"
    assert platform.detect_virtualization("QEMU", "Standard PC", "") == "kvm"
    assert platform.detect_virtualization("Dell Inc.", "PowerEdge", "fpu vme") is None
    assert platform.parse_environment_file('export A="1"\n# c\nB=2\n') == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        ('could not select device driver "" with capabilities: [[gpu]]', "no_runtime"),
        ("failed to discover GPU vendor from CDI: no known GPU vendor found", "cdi_no_vendor"),
        (
            "failed to inject CDI devices: unresolvable CDI devices runtime.nvidia.com/gpu=all",
            "cdi_unresolvable",
        ),
        (
            "nvidia-container-cli: initialization error: nvml error: insufficient permissions",
            "nvml_permission",
        ),
        ('404 Client Error: Not Found ("No such image: nvidia/cuda:12")', "no_image"),
        ("something else", "other"),
    ],
)
def test_gpu_error_diagnosis(msg: str, kind: str) -> None:
    assert hwdocker.diagnose_gpu_error(msg) == kind


def test_connect_error_classification() -> None:
    c = hwdocker.classify_connect_error
    assert c("Permission denied", socket_exists=True, cli_installed=True) == "permission_denied"
    assert c("Connection refused", socket_exists=True, cli_installed=True) == "daemon_down"
    assert (
        c("No such file or directory", socket_exists=False, cli_installed=False) == "not_installed"
    )


def test_docker_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no dockerd
    d = hwdocker.probe_docker(
        env={"DOCKER_HOST": f"unix://{tmp_path}/nope.sock", "PATH": str(tmp_path)}
    )
    assert not d.reachable and d.error_kind == "not_installed"


def test_cdi_spec_detection(tmp_path: Path) -> None:
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
    (tmp_path / "other.yaml").write_text("kind: vendor.com/fpga\n")
    assert hwdocker.cdi_nvidia_specs([str(tmp_path), "/nonexistent"]) == (
        str(tmp_path / "nvidia.yaml"),
    )


def test_facts_from_info_payload() -> None:
    info = {
        "ServerVersion": "27.3.1",
        "Driver": "overlay2",
        "DockerRootDir": "/data/docker",
        "Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}},
        "DefaultRuntime": "runc",
        "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
    }
    out = hwdocker.facts_from_info(info, {"ApiVersion": "1.47"})
    assert out["runtimes"] == ("nvidia", "runc") and out["root_dir"] == "/data/docker"
    assert out["cdi_spec_dirs"] == ("/etc/cdi", "/var/run/cdi") and out["api_version"] == "1.47"


def test_mask_and_find_token(tmp_path: Path) -> None:
    secret = "hf_abcdefghijklmnopqrstuvwxyz1234"
    assert hf.mask_secret(secret) == "hf_…1234"
    assert "abcdef" not in hf.mask_secret(secret)
    assert hf.find_token({"HF_TOKEN": secret}) == (secret, "env:HF_TOKEN")
    (tmp_path / "token").write_text(secret + "\n")
    assert hf.find_token({"HF_HOME": str(tmp_path)}) == (secret, f"file:{tmp_path / 'token'}")
    assert hf.find_token({"HF_HOME": str(tmp_path / "none")}) == (None, None)


def test_cache_usage_counts_blobs(tmp_path: Path) -> None:
    blobs = tmp_path / "models--org--m" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "a").write_bytes(b"x" * (3 * 1024 * 1024))
    (tmp_path / "models--org--n" / "blobs").mkdir(parents=True)
    assert hf.cache_usage(str(tmp_path)) == (3, 2)
    assert hf.cache_usage(str(tmp_path / "missing")) == (None, None)


def test_hf_probe_offline_mode_skips_the_network(tmp_path: Path) -> None:
    env = {"HF_TOKEN": "hf_abcdefghijklmnop", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    h = hf.probe_hf(env=env)
    assert h.token_present and h.offline_mode and h.token_valid is None and h.online is None
    assert "abcdefghijkl" not in repr(h)


def test_tool_versions(tmp_path: Path) -> None:
    assert tools.parse_version("cloudflared version 2025.8.1 (built 2025-08-20)") == "2025.8.1"
    assert tools.parse_version("ngrok version 3.22.1") == "3.22.1"
    assert (
        tools.parse_version(
            "NVIDIA-SMI version  : 550.54.15\nNVML version : 550.54\n", "nvidia-smi"
        )
        == "550.54.15"
    )
    fake = tmp_path / "ngrok"
    fake.write_text("#!/bin/sh\necho 'ngrok version 3.9.0'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    t = tools.probe_tool("ngrok", ["ngrok", "version"], str(tmp_path))
    assert t.path == str(fake) and t.version == "3.9.0"
    assert tools.probe_tool("cloudflared", ["cloudflared", "--version"], str(tmp_path)).path is None
