"""plan/diagnose.py: a start-up log in, the known failure and its fix out (engines.md §4),
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import pytest

from llmops.plan.diagnose import diagnose

# one real-looking line per rule (the wording each engine prints, engines.md §4)
LINES = {
    "shm": "RuntimeError: NCCL error: ncclSystemError: System call (e.g. socket) failed",
    "nccl_timeout": "[Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1)",
    "oom_prefill": "Not enough memory to handle 4096 prefill tokens. You need to decrease ...",
    "kv_too_small": "ValueError: The model's max seq len (32768) is larger than the maximum "
    "number of tokens that can be stored in KV cache (20000).",
    "gpu_busy": "ValueError: Free memory on device (10.1/79.1 GiB) on startup is less than "
    "desired GPU memory utilization (0.9, 71.2 GiB).",
    "oom": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "quant_unsupported": "ValueError: quantization method fp8 is not supported for the current "
    "GPU. Minimum capability: 89",
    "rope_arg": "error: invalid value 'yarn' for '--rope-scaling <ROPE_SCALING>'",
    "gated": "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo",
    "no_gpu_runtime": 'docker: Error response from daemon: could not select device driver "" '
    "with capabilities: [[gpu]].",
    "cuda_driver": "RuntimeError: CUDA driver version is insufficient for CUDA runtime version",
    "port": "OSError: [Errno 98] Address already in use",
    # SGLang 0.5.23 srt/model_executor/pool_configurator.py l.96
    "sglang_kv": "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
}


@pytest.mark.parametrize("key", sorted(LINES))
def test_each_known_failure_is_named_with_its_fix(key: str) -> None:
    log = f"INFO starting\n  {LINES[key]}  \nINFO shutting down\n"
    d = diagnose(log)
    assert d is not None
    assert d.key == key
    assert d.line == LINES[key]  # the matching line, stripped
    assert d.title and d.fix


def test_nothing_known_is_none() -> None:
    assert diagnose("") is None
    assert diagnose("INFO loading\nINFO ready\nWARNING slow tokenizer\n") is None


def test_the_more_specific_rule_wins_over_a_later_generic_one() -> None:
    """vLLM prints "CUDA out of memory" after the specific KV-cache message; the table's order
    (specific first) decides, not the line order."""
    log = LINES["kv_too_small"] + "\n" + LINES["oom"] + "\n"
    d = diagnose(log)
    assert d is not None and d.key == "kv_too_small"


def test_the_last_matching_line_is_shown() -> None:
    log = "OSError: [Errno 98] Address already in use (first try)\nretrying\n" + LINES["port"]
    d = diagnose(log)
    assert d is not None and d.line == LINES["port"]


def test_a_long_line_is_cut_to_300_characters() -> None:
    line = "CUDA out of memory. " + "x" * 500
    d = diagnose(line)
    assert d is not None and d.key == "oom"
    assert d.line == line[:300] and len(d.line) == 300
