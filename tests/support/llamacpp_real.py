"""The real llama.cpp ``llama-server`` for the tests: found where ``llmops engine install`` put
it (``$LLMOPS_ENGINES_DIR``), else on PATH, and only at the pinned build.

Without it the real-engine tests skip with ``MISSING``; with ``LLMOPS_REQUIRE_LLAMA_SERVER=1``
(``.ci/run`` sets it after building or reusing the cached build) they FAIL instead.
"""

from __future__ import annotations

from llmops.hw.engines import find_program
from llmops.plan.engines.llamacpp import VERSION

MISSING = (
    f"llama-server {VERSION} is not installed (`llmops engine install llamacpp`, "
    "or LLMOPS_ENGINES_DIR)"
)


def llama_server_or_skip() -> str:
    """The path of the pinned llama-server, or skip/fail (LLMOPS_REQUIRE_LLAMA_SERVER)."""
    from llmops.run.engine_install import BUILD_NUMBER, binary_build_number
    from tests.conftest import require_or_skip

    path = find_program("llama-server")
    if path is None:
        require_or_skip("LLMOPS_REQUIRE_LLAMA_SERVER", MISSING)
        raise AssertionError("unreachable")
    got = binary_build_number(path)
    if got != BUILD_NUMBER:
        require_or_skip(
            "LLMOPS_REQUIRE_LLAMA_SERVER",
            f"{path} is llama.cpp build {got}, not the pinned {VERSION}",
        )
    return path
