"""The estimator's types: what was asked (``FitOptions``), each device's share
(``DeviceUsage``) and the verdict (``FitReport``). ``llmops.plan.memory`` exports them."""

from __future__ import annotations

from dataclasses import dataclass

from llmops.plan.model import RopeScaling


@dataclass(frozen=True)
class FitOptions:
    """What the user asked for. ``gpus=None``: use as few of the devices as fit."""

    quant: str
    engine: str
    context: int
    concurrency: int = 1
    kv_dtype: str = "auto"
    gpus: int | None = None
    gpu_memory_utilization: float = 0.90
    rope_kind: str = "dynamic"
    enforce_eager: bool = False
    prefill_tokens: int | None = None  # override the engine's prefill chunk


@dataclass(frozen=True)
class DeviceUsage:
    """One device's share: the ``per_gpu`` rows of ``fit --json``."""

    device: str  # gpu | cpu
    index: int | None
    name: str
    layers: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    reserve_bytes: int
    in_use_bytes: int
    total_bytes: int  # weights + kv + activation + overhead
    capacity_bytes: int
    usable_bytes: int  # capacity - reserve - in use

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.usable_bytes

    @property
    def free_after_bytes(self) -> int:
        return self.usable_bytes - self.total_bytes


@dataclass(frozen=True)
class FitReport:
    model: str
    quant: str
    engine: str
    context: int
    concurrency: int
    kv_dtype: str
    kv_bytes_per_token: int  # whole model, all layers, one token of one sequence
    parallelism: str  # single | tensor | layers | cpu
    tensor_parallel: int
    gpus_used: int
    per_gpu: tuple[DeviceUsage, ...]
    host_bytes: int  # host RAM needed besides the devices (llama.cpp token_embd)
    host_capacity_bytes: int | None
    fits: bool
    max_context: int
    trained_context: int
    rope: RopeScaling | None
    weights_total_bytes: int
    weights_source: str
    params: int
    warnings: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.per_gpu) + self.host_bytes
