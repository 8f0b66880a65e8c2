"""Pure parsers of nvidia-smi text and of the remote shell probe (no host touched)."""

from __future__ import annotations

import pytest

from llmops.hw import remote_probe as rp
from llmops.hw import smi
from llmops.hw.facts import GpuInfo

# nvidia-smi --query-gpu=<smi.QUERY_FIELDS> --format=csv,noheader,nounits on an 8xH100 box
# (two rows shown) and on a consumer card that lacks several fields.
H100_ROWS = (
    "0, NVIDIA H100 80GB HBM3, GPU-11111111-2222-3333-4444-555555555555, 00000000:18:00.0, "
    "81559, 74018, 6931, 9.0, 313.45, 700.00, 700.00, 200.00, 700.00, 44, 97, Enabled, "
    "Enabled, 5, 5, 16, 16, Disabled, Disabled, 550.54.15\n"
    "1, NVIDIA H100 80GB HBM3, GPU-66666666-2222-3333-4444-555555555555, 00000000:2A:00.0, "
    "81559, 4, 81003, 9.0, 71.02, 700.00, 700.00, 200.00, 700.00, 31, 0, Enabled, "
    "Enabled, 5, 5, 16, 16, Disabled, Disabled, 550.54.15\n"
)
RTX_ROW = (
    "0, NVIDIA GeForce RTX 3090, GPU-aaaaaaaa-2222-3333-4444-555555555555, 00000000:01:00.0, "
    "24576, 1024, 23552, 8.6, 30.12, 350.00, 350.00, 100.00, 400.00, 40, 3, [N/A], [N/A], "
    "1, 4, 16, 16, [N/A], [N/A], 535.183.01\n"
)
APPS = "GPU-11111111-2222-3333-4444-555555555555, 3170, 74000, /usr/bin/python3\n"


def test_h100_rows_become_gpuinfo_with_units_and_processes() -> None:
    nv = smi.parse_query_gpu(H100_ROWS, apps_text=APPS, cuda_text="    CUDA Version : 12.4")
    assert nv.driver_version == "550.54.15" and nv.cuda_driver_version == "12.4"
    g0, g1 = nv.gpus
    assert g0 == GpuInfo(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-11111111-2222-3333-4444-555555555555",
        pci_bus_id="00000000:18:00.0",
        memory_total_mib=81559,
        memory_used_mib=74018,
        memory_free_mib=6931,
        compute_capability="9.0",
        power_draw_w=313.45,
        power_limit_w=700.0,
        power_default_limit_w=700.0,
        power_min_limit_w=200.0,
        power_max_limit_w=700.0,
        temperature_c=44,
        utilization_gpu_pct=97,
        ecc_enabled=True,
        ecc_pending=True,
        pcie_gen_current=5,
        pcie_gen_max=5,
        pcie_width_current=16,
        pcie_width_max=16,
        mig_enabled=False,
        mig_pending=False,
        processes=(smi.GpuProcess(pid=3170, used_memory_mib=74000, name="/usr/bin/python3"),),
    )
    assert g1.processes == () and g1.memory_used_mib == 4


def test_not_supported_fields_are_none() -> None:
    (g,) = smi.parse_query_gpu(RTX_ROW).gpus
    assert g.ecc_enabled is None and g.mig_enabled is None and g.pcie_gen_current == 1
    assert g.power_max_limit_w == 400.0


def test_basic_field_list_for_old_drivers() -> None:
    row = "0, Tesla T4, GPU-x, 00000000:00:1E.0, 15360, 0, 15109, [N/A], 70.00, 29, 0, 470.82.01"
    (g,) = smi.parse_query_gpu(row, smi.BASIC_FIELDS).gpus
    assert (g.name, g.memory_total_mib, g.power_draw_w, g.power_limit_w) == (
        "Tesla T4",
        15360,
        None,
        70.0,
    )


def test_lost_gpu_line_is_an_error_row_and_the_others_report() -> None:
    text = "Unable to determine the device handle for GPU0000:41:00.0: Unknown Error\n" + RTX_ROW
    nv = smi.parse_query_gpu(text)
    assert [g.index for g in nv.gpus] == [0, 1]
    assert nv.gpus[0].ok and not nv.gpus[1].ok
    assert nv.gpus[1].pci_bus_id == "0000:41:00.0" and "Unknown Error" in (nv.gpus[1].error or "")


def test_gpu_requiring_reset_in_a_row() -> None:
    row = RTX_ROW.replace("24576", "[GPU requires reset]")
    (g,) = smi.parse_query_gpu(row).gpus
    assert g.error == "nvidia-smi reports GPU requires reset" and g.name is None


@pytest.mark.parametrize(
    ("text", "code", "kind"),
    [
        ("", 127, "no_driver"),
        ("sh: 1: nvidia-smi: not found", 127, "no_driver"),
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.",
            9,
            "driver_not_loaded",
        ),
        ("Failed to initialize NVML: Driver/library version mismatch", 18, "version_mismatch"),
        ("Failed to initialize NVML: Insufficient Permissions", 4, "no_permission"),
        ("something odd", 1, "unknown"),
    ],
)
def test_failures_map_to_the_nvml_probe_kinds(text: str, code: int, kind: str) -> None:
    nv = smi.parse_query_gpu(text, exit_code=code)
    assert nv.error_kind == kind and nv.gpus == () and nv.error


def test_no_devices() -> None:
    nv = smi.parse_query_gpu("No devices were found", exit_code=6)
    assert nv.gpus == () and nv.error_kind is None and "no GPUs" in (nv.error or "")


def test_parse_gpu_row_rejects_a_short_row() -> None:
    with pytest.raises(ValueError, match="expected 24 columns"):
        smi.parse_gpu_row(["0", "x"])


# --------------------------------------------------------------------------- remote probe


PROBE_OUTPUT = f"""
@@llmops:uname
gpu-box
6.5.0-35-generic
x86_64
@@llmops:id
0
@@llmops:os-release
PRETTY_NAME="Ubuntu 22.04.4 LTS"
@@llmops:container
dockerenv
container=
@@llmops:cgroup
0::/
@@llmops:cpuinfo
model name	: AMD EPYC 7763 64-Core Processor
threads=128
cores=64
@@llmops:meminfo
MemTotal:       1056768000 kB
MemAvailable:   1003520000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
@@llmops:python
3.10.12
@@llmops:df
disk shm /dev/shm
shm              33554432        0  33554432   0% /dev/shm
disk hf_cache /root/.cache/huggingface/hub
overlay         524288000 104857600 419430400  20% /
disk state /root/.local/state/llmops
df: /nope: No such file or directory
@@llmops:env
PATH
VAST_CONTAINERLABEL
CONTAINER_API_KEY
CONTAINER_ID=12345678
@@llmops:etc-environment
@@llmops:dmi
vendor=
product=
@@llmops:nvidia
fields={",".join(smi.QUERY_FIELDS)}
rc=0
@@llmops:nvidia-gpus
{H100_ROWS}
@@llmops:nvidia-apps
{APPS}
@@llmops:nvidia-q
CUDA Version                              : 12.4
@@llmops:docker
cli=no
socket=no
host=unix:///var/run/docker.sock
ctk=
@@llmops:docker-info

@@llmops:docker-version
@@llmops:cdi
@@llmops:hf
source=env:HF_TOKEN
len=37
first3=hf_
last4=wxyz
cache=/root/.cache/huggingface/hub
repos=2
size_mib=14500
@@llmops:tool:nvidia-smi
path=/usr/bin/nvidia-smi
NVIDIA-SMI version  : 550.54.15
@@llmops:tool:ngrok
path=
@@llmops:end
"""


def test_probe_output_becomes_hostfacts_of_a_vast_instance() -> None:
    f = rp.parse_probe_output(
        PROBE_OUTPUT, source="ssh:root@h:22", llmops_version="0.1.0", collected_at="t"
    )
    s = f.system
    assert s is not None and f.platform is not None and f.nvidia is not None
    assert (s.hostname, s.os_name, s.kernel, s.arch) == (
        "gpu-box",
        "Ubuntu 22.04.4 LTS",
        "6.5.0-35-generic",
        "x86_64",
    )
    assert s.cpu_model == "AMD EPYC 7763 64-Core Processor" and s.cpu_threads == 128
    assert (s.ram_total_mib, s.ram_available_mib, s.swap_total_mib) == (1032000, 980000, 0)
    assert (s.shm_total_mib, s.shm_free_mib) == (32768, 32768)
    assert s.in_container and s.is_root and s.python_version == "3.10.12"
    hf, state = s.disks
    assert (hf.purpose, hf.total_mib, hf.free_mib) == ("hf_cache", 512000, 409600)
    assert state.error == "df: /nope: No such file or directory"
    assert (f.platform.kind, f.platform.instance_id) == ("vast.ai", "12345678")
    assert len(f.nvidia.gpus) == 2 and f.nvidia.cuda_driver_version == "12.4"
    assert f.docker is not None and f.docker.error_kind == "not_installed"
    assert f.hf is not None and f.hf.token_masked == "hf_…wxyz" and f.hf.cache_size_mib == 14500
    assert f.hf.token_valid is None
    tools = {t.name: t for t in f.tools or ()}
    assert tools["nvidia-smi"].version == "550.54.15" and tools["ngrok"].path is None


def test_probe_sections_not_asked_for_stay_none() -> None:
    f = rp.parse_probe_output(
        PROBE_OUTPUT, sections=["nvidia"], source="s", llmops_version="0", collected_at="t"
    )
    assert f.nvidia is not None and f.system is None and f.docker is None


def test_cut_short_output_is_refused() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        rp.parse_probe_output(
            PROBE_OUTPUT.replace("@@llmops:end", ""),
            source="s",
            llmops_version="0",
            collected_at="t",
        )


def test_df_row_with_spaces_in_the_mount_point() -> None:
    assert rp.parse_df_row("/dev/sdb1 2097152 1048576 1048576 50% /mnt/my disk") == (2048, 1024)
    assert rp.parse_df_row("df: /x: No such file or directory") is None


def test_docker_daemon_down_and_permission_denied() -> None:
    base = PROBE_OUTPUT.replace("cli=no\nsocket=no", "cli=yes\nsocket=yes")
    down = base.replace(
        "@@llmops:docker-info\n",
        "@@llmops:docker-info\nCannot connect to the Docker daemon at unix:///var/run/docker.sock."
        " Is the docker daemon running?\n",
    )
    f = rp.parse_probe_output(down, source="s", llmops_version="0", collected_at="t")
    assert f.docker is not None and f.docker.error_kind == "daemon_down"
    denied = base.replace(
        "@@llmops:docker-info\n",
        "@@llmops:docker-info\npermission denied while trying to connect to the Docker daemon\n",
    )
    f = rp.parse_probe_output(denied, source="s", llmops_version="0", collected_at="t")
    assert f.docker is not None and f.docker.error_kind == "permission_denied"


def test_probe_argv_rejects_unknown_sections() -> None:
    with pytest.raises(ValueError, match="unknown fact sections"):
        rp.probe_argv(["gpu"])
    assert rp.probe_argv(["nvidia"])[:2] == ["sh", "-c"]
