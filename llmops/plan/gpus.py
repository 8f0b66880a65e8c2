"""The GPU-list flags: ``--gpus`` of ``up``/``render``/``fit`` and ``--gpu`` of ``power``/``ecc``.

One grammar (comma-separated NVML indices, as ``llmops doctor --check gpu`` lists them) and the
two meanings built on it. Pure: whether an index exists on the host is ``plan.deploy``'s
``check_gpus``, and NVML is asked by the commands themselves.
"""

from __future__ import annotations

from llmops.errors import UsageError


def gpu_indices(text: str, flag: str = "--gpus") -> tuple[int, ...]:
    """Decides the grammar of a GPU list: ``"0,1"`` → ``(0, 1)``.

    Indices are non-negative integers separated by commas, kept in the order given (repeats
    included: what a repeat means is the caller's decision); blanks around and between commas
    are skipped, so ``","`` is the empty list. Anything else (a word, a negative number) is a
    UsageError that names ``flag``.
    """
    try:
        out = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        out = None
    if out is None or any(i < 0 for i in out):
        raise UsageError(
            f"bad {flag} {text!r}: {flag} takes GPU indices like 0,1",
            f"give NVML indices as `llmops doctor --check gpu` lists them, e.g. `{flag} 0,1`",
        )
    return out


def launch_gpus(text: str | None) -> tuple[int, ...] | None:
    """Which GPUs a deployment may use (``--gpus``): None when not given (the planner chooses),
    ``()`` for ``none``, ``cpu`` or an empty value (no GPU), else the indices in order.

    An index listed twice is refused: an engine would count the same GPU twice.
    """
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return ()
    wanted = gpu_indices(text, "--gpus")
    if len(set(wanted)) != len(wanted):
        raise UsageError(f"--gpus lists a GPU index twice: {text}", "e.g. `--gpus 0,1`")
    return wanted


def admin_gpus(text: str | None) -> tuple[int, ...] | None:
    """Which GPUs ``power``/``ecc`` act on (``--gpu``): None (all GPUs) when not given or
    empty, else the indices in order with repeats dropped (acting twice on one GPU is acting
    once). A list with no index in it (``","``) is refused rather than read as "all"."""
    if not text:
        return None
    out = gpu_indices(text, "--gpu")
    if not out:
        raise UsageError(
            f"bad --gpu {text!r}: --gpu takes GPU indices like 0,1", "e.g. `--gpu 0,1`"
        )
    return tuple(dict.fromkeys(out))
