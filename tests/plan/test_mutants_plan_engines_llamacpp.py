"""plan/engines/llamacpp.py: a local GGUF file reaches the container where the argv names it,
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import posixpath

from llmops.plan.launch import LaunchOptions, ModelArtifact, plan_launch
from tests.support.launch_cases import GGUF

LOCAL = ModelArtifact(
    model="my-model",
    repo="/srv/models",
    quant="gguf",
    format="gguf",
    file="my-model-Q4_K_M.gguf",
    trained_context=4096,
)


def test_a_local_gguf_is_mounted_read_only_where_m_points() -> None:
    p = plan_launch(LOCAL, LaunchOptions(engine="llamacpp", context=4096), None)
    argv = list(p.argv)
    path = argv[argv.index("-m") + 1]
    assert posixpath.basename(path) == LOCAL.file
    mounts = {m.target: m for m in p.mounts}
    folder = posixpath.dirname(path)
    assert folder in mounts
    assert mounts[folder].source == LOCAL.repo and mounts[folder].read_only
    assert "-hf" not in argv  # nothing is downloaded


def test_a_local_gguf_runs_natively_from_its_own_path() -> None:
    p = plan_launch(LOCAL, LaunchOptions(engine="llamacpp", context=4096, runtime="native"), None)
    argv = list(p.argv)
    assert argv[argv.index("-m") + 1] == "/srv/models/my-model-Q4_K_M.gguf"


def test_a_hub_gguf_is_downloaded_by_llama_cpp() -> None:
    p = plan_launch(GGUF, LaunchOptions(engine="llamacpp", context=4096), None)
    argv = list(p.argv)
    # llama-server -hf REPO -hff FILE fetches the file into LLAMA_CACHE
    assert argv[argv.index("-hf") + 1] == GGUF.repo
    assert argv[argv.index("-hff") + 1] == GGUF.file
    assert "-m" not in argv
