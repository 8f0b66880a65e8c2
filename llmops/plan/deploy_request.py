"""The request checked before anything is tried: options, GPU indices, runtime (docker or native).

Pure: the host is described by ``HostFacts``; nothing is probed here.
"""

from __future__ import annotations

from llmops.errors import UsageError
from llmops.hw.facts import HostFacts
from llmops.plan import artifacts
from llmops.plan.deploy_types import Request
from llmops.plan.engines import ENGINES
from llmops.plan.gpus import launch_gpus
from llmops.plan.names import check_name
from llmops.plan.quant import QUANT_SPECS

RUNTIMES = ("docker", "native")
ROPE_KINDS = ("linear", "dynamic", "yarn")


def parse_gpus(text: str | None, facts: HostFacts) -> tuple[int, ...] | None:
    """``--gpus 0,1`` → (0, 1): the flag read by ``plan.gpus.launch_gpus``, then each index
    checked against the host (it exists and is usable)."""
    wanted = launch_gpus(text)
    if wanted:
        check_gpus(wanted, facts)
    return wanted


def check_gpus(wanted: tuple[int, ...], facts: HostFacts) -> None:
    have = {g.index: g for g in (facts.nvidia.gpus if facts.nvidia else ())}
    for i in wanted:
        if i not in have:
            present = ", ".join(str(k) for k in sorted(have)) or "none"
            raise UsageError(
                f"GPU index {i} does not exist on this host (indices present: {present})",
                "`llmops doctor --check gpu` lists the indices",
            )
        if not have[i].ok:
            raise UsageError(
                f"GPU index {i} is not usable: {have[i].error}",
                "choose other indices with `--gpus`",
            )


def default_runtime(facts: HostFacts) -> str:
    d = facts.docker
    return "docker" if d is not None and d.reachable else "native"


def validate(req: Request) -> None:
    if req.name is not None:
        check_name(req.name)  # a Docker container name and a state directory (plan/names.py)
    if req.engine is not None and req.engine not in ENGINES:
        raise UsageError(f"unknown engine {req.engine!r}", "choose one of: " + ", ".join(ENGINES))
    if req.runtime is not None and req.runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {req.runtime!r}", "choose docker or native")
    if req.context is not None and req.context <= 0:
        raise UsageError(
            f"--context must be a positive number of tokens, got {req.context}",
            "e.g. `--context 8192`",
        )
    if req.concurrency < 1:
        raise UsageError(
            f"--concurrency must be at least 1, got {req.concurrency}", "e.g. `--concurrency 4`"
        )
    if not 0.05 <= req.gpu_memory_utilization <= 1.0:
        raise UsageError("--gpu-memory-utilization must be between 0.05 and 1.0", "e.g. 0.9")
    if req.rope_kind is not None and req.rope_kind not in ROPE_KINDS:
        raise UsageError(
            f"unknown rope scaling {req.rope_kind!r}", "choose linear, dynamic or yarn"
        )
    if req.rope_factor is not None and not 1.0 < req.rope_factor <= 16:
        raise UsageError(
            f"--rope-factor must be in (1, 16], got {req.rope_factor:g}", "e.g. `--rope-factor 2`"
        )
    if req.quant is not None and not (
        req.quant.lower() in QUANT_SPECS or req.quant.lower() in artifacts.WORDS
    ):
        raise UsageError(
            f"unknown quantization {req.quant!r}",
            "choose one of: 4bit, 8bit, fp16, bf16, fp32, awq, gptq, fp8, q4_k_m, q5_k_m, q8_0",
        )
