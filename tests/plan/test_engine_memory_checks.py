"""`fit --verify` (the estimate beside llama.cpp's own report), llama.cpp's `-t` from the host's
usable CPUs, and the memory `ps --json` measures: the pure parts, against the formats the
engine and Docker really print (sources next to each case)."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.errors import LlmopsError, UsageError
from llmops.hw.facts import GpuInfo, GpuProcess, HostFacts, SystemFacts
from llmops.hw.system import usable_cpus
from llmops.plan.engines.llamacpp import cpu_threads
from llmops.plan.hardware import MIB
from llmops.plan.memory import DeviceUsage, FitReport
from llmops.plan.verify import (
    EngineMemory,
    compare,
    fit_tool_argv,
    overhead_bytes,
    parse_fit_print,
)
from llmops.run.deployments import measured_memory
from llmops.run.docker import container_memory, top_pids

# What `llama-fit-params --fit-print on -m SmolLM2-135M-Instruct.Q4_1.gguf -c 8192 -np 4 -ngl 0`
# printed here (b11434, CPU build): the log goes to stderr, the table to stdout.
CPU_OUT = "Host 92 180 104 \n"
# common_fit_print @ b11434 prints each device as `name model context compute`, then Host.
GPU_OUT = "CUDA0 3800 512 300 \nCUDA1 3700 512 290 \nHost 410 0 12 \n"


def _usage(device: str, index: int | None, w: int, kv: int, act: int, ovh: int) -> DeviceUsage:
    total = w + kv + act + ovh
    return DeviceUsage(device, index, device, 10, w, kv, act, ovh, 0, 0, total, 1 << 40, 1 << 40)


def _report(per: tuple[DeviceUsage, ...], host: int = 0) -> FitReport:
    return FitReport(
        model="m", quant="q4_k_m", engine="llamacpp", context=2048, concurrency=1,
        kv_dtype="fp16", kv_bytes_per_token=1, parallelism="cpu", tensor_parallel=1,
        gpus_used=sum(1 for u in per if u.device == "gpu"), per_gpu=per, host_bytes=host,
        host_capacity_bytes=None, fits=True, max_context=2048, trained_context=2048, rope=None,
        weights_total_bytes=0, weights_source="test", params=0,
    )  # fmt: skip


def test_parse_fit_print_reads_mib_rows_host_last() -> None:
    assert parse_fit_print(CPU_OUT) == (EngineMemory("Host", 92 * MIB, 180 * MIB, 104 * MIB),)
    rows = parse_fit_print("noise line\n" + GPU_OUT)
    assert [r.device for r in rows] == ["CUDA0", "CUDA1", "Host"]
    assert rows[1].total_bytes == (3700 + 512 + 290) * MIB


@pytest.mark.parametrize("text", ["", "error: invalid argument: --metrics\n", "CUDA0 1 2 3\n"])
def test_parse_fit_print_without_a_host_row_is_an_error(text: str) -> None:
    with pytest.raises(LlmopsError, match="no memory breakdown"):
        parse_fit_print(text)


def test_fit_tool_argv_keeps_memory_flags_and_drops_serving_ones() -> None:
    server = [
        "llama-server", "-hf", "org/repo", "-hff", "m.gguf", "-c", "8192", "-np", "4",
        "-ngl", "999", "-a", "qwen", "--metrics", "-sm", "layer", "-ctk", "q8_0", "-ctv",
        "q8_0", "-fa", "on", "-t", "8", "--host", "0.0.0.0", "--port", "8081",
    ]  # fmt: skip
    got = fit_tool_argv(server, "/cache/m.gguf", "/opt/llama-fit-params")
    assert got == [
        "/opt/llama-fit-params", "--fit-print", "on", "-m", "/cache/m.gguf", "-c", "8192",
        "-np", "4", "-ngl", "999", "-sm", "layer", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on",
        "-t", "8",
    ]  # fmt: skip
    local = fit_tool_argv(["llama-server", "-m", "/a/b.gguf", "-c", "512"], "/a/b.gguf", "t")
    assert local == ["t", "--fit-print", "on", "-m", "/a/b.gguf", "-c", "512"]


def test_compare_cpu_plan_pairs_the_whole_plan_with_host() -> None:
    r = _report((_usage("cpu", None, 94 * MIB, 180 * MIB, 120 * MIB, 64 * MIB),))
    rows = {x.part: x for x in compare(r, parse_fit_print(CPU_OUT))}
    assert rows["kv_cache"].diff_pct == 0.0
    assert rows["weights"].diff_pct == pytest.approx(100 * 2 / 92)
    assert rows["total"].estimate_bytes == (94 + 180 + 120) * MIB  # overhead is shown apart
    assert rows["total"].engine_bytes == (92 + 180 + 104) * MIB
    assert {x.device for x in rows.values()} == {"cpu"}
    assert overhead_bytes(r) == 64 * MIB


def test_compare_gpu_plan_pairs_devices_in_order_and_host_with_token_embd() -> None:
    r = _report(
        (
            _usage("gpu", 2, 3900 * MIB, 512 * MIB, 300 * MIB, 512 * MIB),
            _usage("gpu", 5, 3600 * MIB, 512 * MIB, 290 * MIB, 512 * MIB),
        ),
        host=400 * MIB,
    )
    rows = compare(r, parse_fit_print(GPU_OUT))
    by = {(x.device, x.part): x for x in rows}
    assert by[("gpu2", "weights")].engine_device == "CUDA0"
    assert by[("gpu5", "weights")].engine_bytes == 3700 * MIB
    assert by[("host", "weights")].estimate_bytes == 400 * MIB
    assert by[("host", "activation")].diff_pct == pytest.approx(-100.0)
    assert by[("host", "kv_cache")].diff_pct is None  # the engine reports 0


def test_compare_refuses_a_device_count_mismatch() -> None:
    r = _report((_usage("gpu", 0, 1, 1, 1, 1),))
    with pytest.raises(UsageError, match="sees 0 GPU"):
        compare(r, parse_fit_print(CPU_OUT))


# ----------------------------------------------------------------------------- -t threads


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "want"),
    [
        (16, "max 100000", 16),  # cgroup v2 without a quota
        (16, "800000 100000", 8),  # `docker run --cpus 8`
        (16, "250000 100000", 3),  # --cpus 2.5: rounded up
        (4, "800000 100000", 4),  # affinity (taskset/cpuset) is smaller
        (16, None, 16),  # cgroup v1 or no file
        (None, "200000 100000", 2),
        (None, None, None),
        (16, "garbage", 16),
    ],
)
def test_usable_cpus(affinity: int | None, cpu_max: str | None, want: int | None) -> None:
    assert usable_cpus(affinity, cpu_max) == want


def _facts(cores: int | None, threads: int | None, usable: int | None) -> HostFacts:
    return HostFacts(
        llmops_version="test",
        collected_at="2026-12-01T00:00:00Z",
        system=SystemFacts(
            cpu_cores=cores,
            cpu_threads=threads,
            cpu_usable=usable,
            ram_total_mib=64 * 1024,
            ram_available_mib=60 * 1024,
        ),
    )


@pytest.mark.parametrize(
    ("cores", "threads", "usable", "want"),
    [
        (8, 16, 16, 8),  # llama.cpp's own default: physical cores
        (64, 128, 8, 8),  # a rented 8-CPU slice of a big host: never 64 threads on 8 CPUs
        (None, 4, None, 4),  # physical count unknown
        (None, None, 8, None),
    ],
)
def test_llamacpp_threads(cores: int | None, threads: int | None, usable: int | None, want: int | None) -> None:  # fmt: skip
    assert cpu_threads(_facts(cores, threads, usable)) == want
    assert cpu_threads(None) is None


def test_render_passes_threads_on_cpu_and_not_on_gpus() -> None:
    from llmops.catalog.resolve import resolve
    from llmops.plan.deploy import HostCaps, Request, decide
    from llmops.plan.hardware import facts_from_hw, parse_hw

    res = resolve("smollm2")
    cpu = decide(Request("smollm2", engine="llamacpp"), res, _facts(64, 128, 8), HostCaps())
    assert cpu.plan is not None
    argv = list(cpu.plan.argv)
    assert argv[argv.index("-t") + 1] == "8"
    gpu_facts = facts_from_hw(parse_hw("1x24GB"), _facts(64, 128, 8))
    gpu = decide(Request("smollm2", engine="llamacpp"), res, gpu_facts, HostCaps())
    assert gpu.plan is not None and "-t" not in gpu.plan.argv


# ----------------------------------------------------------------------------- ps --json


def test_container_memory_is_what_docker_stats_shows() -> None:
    # cgroup v2 (cli/command/container/stats_helpers.go: usage - inactive_file)
    v2: dict[str, Any] = {
        "memory_stats": {"usage": 500 * MIB, "stats": {"inactive_file": 80 * MIB}}
    }
    assert container_memory(v2) == 420 * MIB
    v1: dict[str, Any] = {"memory_stats": {"usage": 300, "stats": {"total_inactive_file": 100}}}
    assert container_memory(v1) == 200
    assert container_memory({"memory_stats": {"usage": 300, "stats": {}}}) == 300
    assert container_memory({"memory_stats": {}}) is None  # a stopped container


def test_top_pids_reads_the_pid_column() -> None:
    top = {
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": [
            ["root", "4242", "4200", "0", "10:00", "?", "00:00:01", "llama-server -m x"],
            ["root", "4250", "4242", "0", "10:00", "?", "00:00:00", "sh"],
        ],
    }
    assert top_pids(top) == frozenset({4242, 4250})
    assert top_pids({"Titles": ["CMD"], "Processes": [["x"]]}) == frozenset()


def test_measured_memory_counts_only_the_deployments_gpu_processes() -> None:
    gpus = (
        GpuInfo(index=0, processes=(GpuProcess(10, 7000), GpuProcess(99, 500))),
        GpuInfo(index=1, processes=(GpuProcess(11, 6000),)),
        GpuInfo(index=2, processes=()),
    )
    m = measured_memory("process tree RSS", 900 * MIB, frozenset({10, 11}), gpus)
    assert m["per_gpu"] == [{"index": 0, "bytes": 7000 * MIB}, {"index": 1, "bytes": 6000 * MIB}]
    assert m["gpu_bytes"] == 13000 * MIB and m["host_bytes"] == 900 * MIB
    assert measured_memory("x", 1, frozenset({1}), None)["gpu_bytes"] is None  # no NVML
    assert measured_memory("x", 1, frozenset({1}), gpus)["gpu_bytes"] == 0
