"""Known start-up failures of inference engines: log text in, diagnosis and fix out.

The table follows shared/reference/engines.md §4 (each row cites its source there). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    key: str
    title: str
    fix: str
    line: str  # the log line that matched


_RULES: tuple[tuple[str, str, str, str], ...] = (
    (
        "shm",
        r"Error while creating shared memory segment|posix_fallocate failed|ncclSystemError|"
        r"No space left on device.*shm|bus error",
        "NCCL/PyTorch ran out of shared memory (/dev/shm)",
        "containers get --shm-size/--ipc=host from llmops; for a native run enlarge /dev/shm "
        "(`sudo mount -o remount,size=16g /dev/shm`); last resort: NCCL_SHM_DISABLE=1",
    ),
    (
        "nccl_timeout",
        r"Watchdog caught collective operation timeout",
        "NCCL collective timed out between shards",
        "kill stale engine processes (`llmops kill --dry-run`), then retry; on PCIe-only consumer "
        "GPUs try NCCL_P2P_DISABLE=1",
    ),
    (
        "oom_prefill",
        r"Not enough memory to handle \d+ prefill tokens|Not enough memory to handle \d+ total tokens",
        "TGI ran out of GPU memory while warming up",
        "lower `--context`, use a smaller quant (`--quant 4bit`), or add GPUs",
    ),
    (
        "kv_too_small",
        r"larger than the available KV cache memory|larger than the maximum number of tokens that "
        r"can be stored in KV cache|No available memory for the cache blocks",
        "vLLM has no room for the KV cache at this context length",
        "lower `--context` (the log's 'estimated maximum model length' fits), quantize, or add GPUs",
    ),
    (
        # SGLang 0.5.23 srt/model_executor/pool_configurator.py l.96: "Not enough memory.
        # Please try to increase --mem-fraction-static." when weights leave no room for KV
        "sglang_kv",
        r"Not enough memory\. Please try to increase --mem-fraction-static",
        "SGLang has no room for the KV cache after loading the weights",
        "lower `--context`, use a smaller quant (`--quant awq`), or add GPUs; "
        "`-- --mem-fraction-static 0.9` gives the pool more of the card",
    ),
    (
        "gpu_busy",
        r"Free memory on device .* is less than desired GPU memory utilization",
        "another process already holds memory on the GPU",
        "free the GPU (`llmops ps`, `nvidia-smi`) or pick another with `--gpus`",
    ),
    (
        "oom",
        r"CUDA out of memory|OutOfMemoryError|torch\.OutOfMemoryError",
        "the GPU ran out of memory",
        "lower `--context`, use a smaller quant, or add GPUs (`llmops fit MODEL` shows the budget)",
    ),
    (
        "quant_unsupported",
        r"quantization method \w+ is not supported for the current GPU|"
        r"quantization is not supported for AutoModel|Sharding is currently not supported with",
        "this quantization is not supported on this GPU or model by the engine",
        "choose another `--quant` (llmops fit lists them) or another `--engine`",
    ),
    (
        "rope_arg",
        r"invalid value 'yarn' for '--rope-scaling|unrecognized arguments: --rope-scaling",
        "the engine rejected the rope-scaling flag",
        "upgrade llmops' image pin or lower `--context` to the trained length",
    ),
    (
        "gated",
        r"Cannot access gated repo|Access to model .* is restricted|401 Client Error|"
        r"403 Client Error",
        "the model is gated and the Hugging Face token is missing or lacks access",
        "accept the licence on the model's Hub page, then `export HF_TOKEN=...` and retry",
    ),
    (
        "no_gpu_runtime",
        r'could not select device driver ".*" with capabilities|failed to discover GPU vendor '
        r"from CDI|unresolvable CDI devices",
        "Docker cannot give the container GPUs (NVIDIA container toolkit missing)",
        "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure "
        "--runtime=docker && sudo systemctl restart docker`",
    ),
    (
        "cuda_driver",
        r"CUDA driver version is insufficient|no kernel image is available",
        "the image's CUDA is newer than the host driver supports",
        "upgrade the NVIDIA driver, or use a CUDA 12 image (`--image ...-cu129`)",
    ),
    (
        "port",
        r"Address already in use|address already in use",
        "the port is already in use",
        "choose another with `--port`, or stop what uses it",
    ),
)


def diagnose(log_text: str) -> Diagnosis | None:
    """The first known failure found in a log (searched from the end), or None."""
    lines = log_text.splitlines()
    for key, pattern, title, fix in _RULES:
        rx = re.compile(pattern)
        for line in reversed(lines):
            if rx.search(line):
                return Diagnosis(key=key, title=title, fix=fix, line=line.strip()[:300])
    return None
