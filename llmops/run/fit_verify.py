"""``llmops fit --verify``: ask llama.cpp what it will allocate for the plan ``fit`` made.

Runs the installed (or PATH) ``llama-fit-params`` of the pinned build with the server's own
memory flags and the model file, and returns the engine's breakdown (``llmops.plan.verify``
pairs it with the estimate). It reads the GGUF's header and tensor list only; nothing is
loaded or served.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from llmops.errors import LlmopsError, UsageError
from llmops.hw.engines import find_program
from llmops.hw.system import hf_cache_dir
from llmops.plan.deploy import Decision
from llmops.plan.verify import TOOL, EngineMemory, fit_tool_argv, parse_fit_print

TIMEOUT_S = 300


def local_gguf(d: Decision, env: Mapping[str, str]) -> str:
    """The plan's GGUF as a local file: a path or bundled file, else the copy in llama.cpp's
    cache (``LLAMA_CACHE``, hub layout) or the Hugging Face cache that ``llmops pull`` fills.

    Raises:
        LlmopsError: a Hub file not downloaded yet.
    """
    a = d.artifact
    if not a.file:
        raise UsageError(f"{a.model} at {a.label} is not a GGUF file", "use `--engine llamacpp`")
    if a.quant == "gguf":  # a local path, or a bundled model's own file
        return str(Path(a.repo) / a.file)
    caches = []
    plan_env = dict(d.plan.env) if d.plan is not None else {}
    if plan_env.get("LLAMA_CACHE"):
        caches.append(plan_env["LLAMA_CACHE"])
    caches.append(hf_cache_dir(env))
    from huggingface_hub import try_to_load_from_cache

    for cache in caches:
        got = try_to_load_from_cache(a.repo, a.file, cache_dir=cache)
        if isinstance(got, str) and os.path.isfile(got):
            return got
    raise LlmopsError(
        f"--verify reads the model file, and {a.repo}/{a.file} is not downloaded",
        f"download it first: `llmops pull {a.model} --engine llamacpp --quant {a.quant}`",
    )


def run_fit_tool(d: Decision, env: Mapping[str, str] | None = None) -> tuple[
    list[str], tuple[EngineMemory, ...]
]:  # fmt: skip
    """(the tool's argv, what it printed per device).

    Raises:
        UsageError: not a llama.cpp plan, or one that does not fit.
        LlmopsError: the tool or the model file is missing, or the tool fails.
    """
    env = dict(os.environ if env is None else env)
    if d.engine != "llamacpp":
        raise UsageError(
            f"--verify asks the engine what it will allocate, and only llama.cpp can say before "
            f"loading the model ({d.engine} measures by loading it)",
            f"`llmops fit {d.request.model} --engine llamacpp --verify`, or start it and read "
            "`llmops ps --json` (measured memory)",
        )
    if d.plan is None:
        raise LlmopsError(
            "--verify checks a plan that fits; this one does not",
            "lower --context/--concurrency or pick a smaller quant first",
        )
    program = find_program(TOOL, env)
    if program is None:
        raise LlmopsError(
            f"{TOOL} (llama.cpp's memory report) is not installed",
            "`llmops engine install llamacpp` builds it with the pinned llama-server",
        )
    model = local_gguf(d, env)
    argv = fit_tool_argv(list(d.plan.argv), model, program)
    run_env = {**env, **dict(d.plan.env)}
    try:
        p = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=run_env, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise LlmopsError(f"{TOOL} did not answer within {TIMEOUT_S} s", "run it by hand") from e
    except OSError as e:
        raise LlmopsError(f"cannot run {program}: {e}", "reinstall it") from e
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LlmopsError(
            f"{TOOL} failed (exit {p.returncode}): {last}",
            "run it by hand: " + " ".join(argv),
        )
    return argv, parse_fit_print(p.stdout)


__all__ = ["TIMEOUT_S", "local_gguf", "run_fit_tool"]
