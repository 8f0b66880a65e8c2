"""The decision's types: the request (``Request``), the model as resolved (``ResolvedModel``),
what can run on the host (``HostCaps``) and the answer (``Decision``). ``llmops.plan.deploy``
exports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.plan.engines.base import LaunchPlan, ModelArtifact
from llmops.plan.hardware import GIB
from llmops.plan.memory import FitReport
from llmops.plan.model import ModelSpec, WeightInventory


@dataclass(frozen=True)
class Request:
    """What the user asked for (the options of `fit`, `render`, `up`), typed."""

    model: str
    engine: str | None = None
    quant: str | None = None
    context: int | None = None
    concurrency: int = 1
    kv_dtype: str = "auto"
    gpus: tuple[int, ...] | None = None  # GPU indices (--gpus); None: as many as the fit needs
    gpu_count: int | None = None  # use exactly this many GPUs (fit --gpus-count)
    gpu_memory_utilization: float = 0.90
    runtime: str | None = None
    name: str | None = None
    port: int | None = None
    image: str | None = None
    repo: str | None = None  # serve this repo with the model's architecture
    rope_factor: float | None = None
    rope_kind: str | None = None
    api_key: bool = True
    force: bool = False
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedModel:
    """A model as the catalog resolved it, with real weight bytes when they were read."""

    spec: ModelSpec
    native_quant: str | None = None  # the quant whose bytes ``inventory`` gives
    inventory: WeightInventory | None = None
    origin: str = "catalog"  # catalog | hub | hub-cache | gguf

    def inventory_for(self, quant: str) -> WeightInventory | None:
        """Real bytes when ``quant`` is the format they were read from, else None (computed)."""
        if self.inventory is not None and quant == self.native_quant:
            return self.inventory
        return None


@dataclass(frozen=True)
class HostCaps:
    """What can run where the plan will run. ``planning``: describing a host (render, fit,
    ``--hw``): engine images are assumed available and nothing local is checked."""

    planning: bool = True
    llama_server: bool = False  # `llama-server` on PATH (native llama.cpp)
    backend: bool = False  # torch + transformers importable (native torch backend)
    bitsandbytes: bool = False  # importable (native torch 4bit/8bit)
    hf_token: bool = False
    hf_cache_dir: str = "~/.cache/huggingface"
    data_dir: str = "~/.local/state/llmops"
    python: str = "python3"
    taken_ports: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decision:
    """The answer for one request: what to launch, and the fit behind it."""

    request: Request
    engine: str
    runtime: str
    artifact: ModelArtifact
    report: FitReport
    context: int
    gpus: tuple[int, ...]
    plan: LaunchPlan | None  # None when it does not fit (without --force)
    warnings: tuple[str, ...] = ()
    passed_over: tuple[str, ...] = ()  # better candidates not taken, with why

    @property
    def fits(self) -> bool:
        return self.report.fits

    @property
    def weights_bytes(self) -> int:
        return self.artifact.size_bytes or self.report.weights_total_bytes

    @property
    def line(self) -> str:
        r = self.report
        where = f"{r.gpus_used} GPU(s)" if r.gpus_used else "CPU/RAM"
        verdict = "fits" if r.fits else "does NOT fit"
        return (
            f"{r.model} {self.artifact.label} on {self.engine}, context {r.context} "
            f"x{r.concurrency}: {verdict} on {where} ({gib(r.total_bytes)} needed; "
            f"max context {r.max_context})"
        )

    @property
    def breakdown(self) -> str:
        r = self.report
        rows = [
            f"  {'device':<14}{'weights':>11}{'KV cache':>11}{'overhead':>11}{'total':>11}"
            f"{'usable':>11}"
        ]
        for d in r.per_gpu:
            label = f"{d.device} {d.index}" if d.index is not None else d.device
            over = d.activation_bytes + d.overhead_bytes
            rows.append(
                f"  {label:<14}{gib(d.weights_bytes):>11}{gib(d.kv_cache_bytes):>11}"
                f"{gib(over):>11}{gib(d.total_bytes):>11}{gib(d.usable_bytes):>11}"
            )
        rows += [f"  try: {s}" for s in r.suggestions[:3]]
        return "\n".join(rows)

    def summary(self) -> dict[str, Any]:
        """The JSON form every command shows for the choice and its fit."""
        r = self.report
        a = self.artifact
        return {
            "fits": r.fits,
            "engine": self.engine,
            "runtime": self.runtime,
            "quant": a.quant,
            "artifact": {
                "format": a.label,
                "repo": a.repo,
                "file": a.file,
                "gated": a.gated,
                "size_bytes": a.size_bytes,
            },
            "context": r.context,
            "max_context": r.max_context,
            "tensor_parallel": r.tensor_parallel,
            "gpus": list(self.gpus),
            "gpus_used": r.gpus_used,
            "weights_source": r.weights_source,
            "per_gpu": [
                {
                    "index": d.index,
                    "weights_bytes": d.weights_bytes,
                    "kv_cache_bytes": d.kv_cache_bytes,
                    "overhead_bytes": d.activation_bytes + d.overhead_bytes,
                    "total_bytes": d.total_bytes,
                    "capacity_bytes": d.capacity_bytes,
                }
                for d in r.per_gpu
            ],
            "passed_over": list(self.passed_over),
        }


def gib(b: int) -> str:
    return f"{b / GIB:.1f} GiB"
