"""``fit --verify``: the estimate beside what the engine itself says it will allocate.

Pure. llama.cpp can answer before loading anything: ``llama-fit-params --fit-print on`` with the
server's model and memory flags prints, per device and then for the host, the MiB it will put
there as ``NAME model context compute`` (tools/fit-params/fit-params.cpp and
``common_fit_print`` in common/fit.cpp @ b11434; values are whole MiB, rounded down). vLLM,
TGI and SGLang only know after they have loaded the weights and profiled a forward pass, so
``--verify`` is for llama.cpp plans.

Rows compared: weights <-> ``model``, KV cache <-> ``context``, activation <-> ``compute``, and
their sums. llmops' fixed overhead (the runtime, CUDA context) is not in the engine's figure and
is shown apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops.errors import LlmopsError, UsageError
from llmops.plan.hardware import MIB
from llmops.plan.memory import FitReport

TOOL = "llama-fit-params"
# Server flags the fit tool does not take (its parser rejects them: "invalid argument"), with
# whether each takes a value. Checked against the b11434 build: -a, --host, --port, --api-key
# and --metrics are LLAMA_EXAMPLE_SERVER only in common/arg.cpp.
SERVER_ONLY = {
    "-a": True,
    "--alias": True,
    "--host": True,
    "--port": True,
    "--api-key": True,
    "--api-key-file": True,
    "--metrics": False,
    "-hf": True,
    "-hff": True,
}


@dataclass(frozen=True)
class EngineMemory:
    """One line of ``--fit-print``: what the engine will allocate on one device (bytes)."""

    device: str  # CUDA0, Vulkan0, ... or Host
    model_bytes: int
    context_bytes: int
    compute_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.context_bytes + self.compute_bytes


@dataclass(frozen=True)
class VerifyRow:
    device: str  # llmops' name: gpu0, cpu, host
    engine_device: str  # the engine's: CUDA0, Host
    part: str  # weights | kv_cache | activation | total
    estimate_bytes: int
    engine_bytes: int

    @property
    def diff_pct(self) -> float | None:
        """(estimate - engine) / engine in %; None when the engine reports 0."""
        if self.engine_bytes == 0:
            return None
        return 100.0 * (self.estimate_bytes - self.engine_bytes) / self.engine_bytes


def parse_fit_print(text: str) -> tuple[EngineMemory, ...]:
    """The device lines of ``llama-fit-params --fit-print on`` stdout, host last.

    Raises:
        LlmopsError: no ``Host`` line (the tool failed or printed something else).
    """
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
            continue
        model, context, compute = (int(p) * MIB for p in parts[1:])
        rows.append(EngineMemory(parts[0], model, context, compute))
    if not rows or rows[-1].device != "Host":
        raise LlmopsError(
            f"{TOOL} printed no memory breakdown",
            "run it by hand with the same flags and `--fit-print on` to see why",
        )
    return tuple(rows)


def fit_tool_argv(server_argv: list[str], model_path: str, program: str) -> list[str]:
    """The fit tool's argv from the server's as ``render`` prints it: the same memory flags
    (context, slots, offload, split, KV types, flash attention, rope, threads), the model as a
    local file, without the serving flags the tool rejects."""
    out = [program, "--fit-print", "on", "-m", model_path]
    args = server_argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m":
            i += 2
            continue
        takes = SERVER_ONLY.get(a)
        if takes is not None:
            i += 2 if takes else 1
            continue
        out.append(a)
        i += 1
    return out


def compare(report: FitReport, engine: tuple[EngineMemory, ...]) -> tuple[VerifyRow, ...]:
    """Pair the estimate's devices with the engine's, in order: GPUs with its devices, the host
    (CPU-only plans: the whole plan; GPU plans: what llama.cpp keeps in RAM) with ``Host``.

    Raises:
        UsageError: the engine saw a different number of devices than the plan uses.
    """
    devices = [d for d in engine if d.device != "Host"]
    host = engine[-1]
    gpus = [u for u in report.per_gpu if u.device == "gpu"]
    if len(devices) != len(gpus):
        raise UsageError(
            f"{TOOL} sees {len(devices)} GPU(s) ({', '.join(d.device for d in devices) or 'none'})"
            f" but the plan uses {len(gpus)}",
            "run `--verify` on the host that will serve it (or with the same CUDA_VISIBLE_DEVICES)",
        )
    rows: list[VerifyRow] = []

    def add(name: str, eng: EngineMemory, w: int, kv: int, act: int) -> None:
        for part, est, got in (
            ("weights", w, eng.model_bytes),
            ("kv_cache", kv, eng.context_bytes),
            ("activation", act, eng.compute_bytes),
            ("total", w + kv + act, eng.total_bytes),
        ):
            rows.append(VerifyRow(name, eng.device, part, est, got))

    for u, d in zip(gpus, devices, strict=True):
        add(f"gpu{u.index}", d, u.weights_bytes, u.kv_cache_bytes, u.activation_bytes)
    cpu = [u for u in report.per_gpu if u.device != "gpu"]
    if cpu:
        u = cpu[0]
        add("cpu", host, u.weights_bytes, u.kv_cache_bytes, u.activation_bytes)
    else:
        add("host", host, report.host_bytes, 0, 0)
    return tuple(rows)


def overhead_bytes(report: FitReport) -> int:
    """llmops' fixed per-device overhead (runtime, CUDA context, graphs): not in the engine's
    figure."""
    return sum(u.overhead_bytes for u in report.per_gpu)


__all__ = [
    "SERVER_ONLY",
    "TOOL",
    "EngineMemory",
    "VerifyRow",
    "compare",
    "fit_tool_argv",
    "overhead_bytes",
    "parse_fit_print",
]
