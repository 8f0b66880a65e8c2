"""`llmops.plan` (estimator, recommend, --hw parsing) is pure: importing it loads no SDK."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "docker",
    "paramiko",
    "huggingface_hub",
    "pynvml",
    "psutil",
    "torch",
    "transformers",
    "gguf",
)


def test_plan_imports_no_side_effect_modules() -> None:
    code = (
        "import sys, json\n"
        "import llmops.plan, llmops.plan.memory, llmops.plan.recommend, llmops.plan.hardware\n"
        "import llmops.plan.quant, llmops.plan.model, llmops.plan.kv, llmops.plan.memory_engines\n"
        "import llmops.plan.memory_place, llmops.plan.memory_types, llmops.plan.deploy\n"
        "import llmops.plan.deploy_types, llmops.plan.deploy_request, llmops.plan.deploy_candidates\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_estimator_modules_use_no_io() -> None:
    """No clock, environment, network or file access in the estimator's source."""
    import inspect

    import llmops.plan.deploy
    import llmops.plan.deploy_candidates
    import llmops.plan.deploy_request
    import llmops.plan.deploy_types
    import llmops.plan.hardware
    import llmops.plan.kv
    import llmops.plan.memory
    import llmops.plan.memory_engines
    import llmops.plan.memory_place
    import llmops.plan.memory_types
    import llmops.plan.quant
    import llmops.plan.recommend

    for mod in (
        llmops.plan.memory,
        llmops.plan.kv,
        llmops.plan.memory_engines,
        llmops.plan.memory_place,
        llmops.plan.memory_types,
        llmops.plan.deploy,
        llmops.plan.deploy_types,
        llmops.plan.deploy_request,
        llmops.plan.deploy_candidates,
        llmops.plan.recommend,
        llmops.plan.hardware,
        llmops.plan.quant,
    ):
        src = inspect.getsource(mod)
        for bad in (
            "import os",
            "open(",
            "time.",
            "datetime",
            "os.environ",
            "subprocess",
            "socket",
        ):
            assert bad not in src, f"{mod.__name__} uses {bad}"
