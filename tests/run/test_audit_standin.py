"""`llmops audit` against the stand-in engine images on the real Docker engine.

The stand-ins (tests/support/engine_standin.py) run llmops' own plan and answer with the pinned engine's
key rule from tests/fixtures/engines/*.json (its source): SGLang 0.5.23 needs the key on every
path but /health*, /ready*, /metrics*; vLLM 0.33.0 only under /v1, /v2, /inference, /cohere.
The audit's tables (llmops/plan/audit_routes.py) must read them the same way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.hw.facts import GpuInfo, HostFacts, NvidiaFacts
from llmops.plan import audit as pa
from llmops.plan.launch import LaunchOptions, plan_launch
from llmops.run.docker import DockerRuntime
from llmops.run.state import DeploymentStore
from llmops.run.up import pick_port, up
from tests.support.launch_cases import AWQ as MISTRAL_AWQ
from tests.support.sentinels import unique

pytestmark = pytest.mark.docker

KEY = "sk-audit-standin-KEY0123"


def _facts(cuda: str) -> HostFacts:
    return HostFacts(
        llmops_version="t",
        collected_at="t",
        nvidia=NvidiaFacts(
            driver_version="580.65.06",
            cuda_driver_version=cuda,
            gpus=(GpuInfo(0, compute_capability="8.6"),),
        ),
    )


@pytest.fixture
def runtime(docker_client) -> Iterator[DockerRuntime]:  # type: ignore[no-untyped-def]
    rt = DockerRuntime(docker_client)  # this test's install (its own LLMOPS_HOME)
    yield rt
    for st in rt.list():
        rt.stop(st.name, 1)


def _serve(
    engine: str, engine_images: Any, runtime: DockerRuntime, tmp_path: Path, keyed: bool
) -> int:
    """Start ``engine``'s stand-in from llmops' own plan (with or without a key): its port."""
    port = pick_port(18400 if engine == "sglang" else 18500, set())
    opts = LaunchOptions(
        engine=engine,
        name=unique(f"t-audit-{engine}"),
        context=8192,
        gpus=(0,),
        host_port=port,
        hf_cache_dir=str(tmp_path / "hf"),
        api_key=keyed,
    )
    plan = plan_launch(MISTRAL_AWQ, opts, _facts("13.0" if engine == "sglang" else "12.9"))
    # no GPU here: drop the device request, keep the command
    plan = dataclasses.replace(plan, image=engine_images(engine, "serve"), gpus=())
    env = {"SGLANG_API_KEY": KEY, "VLLM_API_KEY": KEY} if keyed else {}
    store = DeploymentStore(tmp_path / "home")
    res = up(plan, runtime, store, env, api_key=KEY if keyed else None, timeout_s=60, poll_s=0.3)
    assert res.ready
    return port


def _audit(port: int, engine: str) -> tuple[int, dict[str, Any]]:
    r = CliRunner().invoke(app, ["audit", str(port), "--engine", engine, "--json"])
    return r.exit_code, json.loads(r.output)


def test_llmops_audit_passes_a_keyed_sglang_and_shows_the_key_in_argv_caveat(
    docker_client: Any, engine_images: Any, runtime: DockerRuntime, tmp_path: Path
) -> None:
    port = _serve("sglang", engine_images, runtime, tmp_path, keyed=True)
    code, doc = _audit(port, "sglang")
    a = doc["audit"]
    assert code == 0 and a["verdict"] == "protected", a["detail"]
    assert a["caveats"] == [pa.SGLANG_KEY_IN_ARGV]
    probes = {p["path"]: p for p in a["probes"]}
    assert set(probes) == {r.path for r in pa.SGLANG}
    for r in pa.SGLANG:  # the stand-in refuses exactly what the table says needs the key
        want = pa.ABSENT if r.path.startswith(pa.SGLANG_OPEN_PREFIXES) else pa.PROTECTED
        assert probes[r.path]["answer"] == want, (r.path, probes[r.path]["status"])
    assert probes["/flush_cache"]["probed_with"] == "PUT"


def test_llmops_audit_finds_a_keyless_sglang_exposed(
    docker_client: Any, engine_images: Any, runtime: DockerRuntime, tmp_path: Path
) -> None:
    port = _serve("sglang", engine_images, runtime, tmp_path, keyed=False)
    code, doc = _audit(port, "sglang")
    a = doc["audit"]
    assert code == 1 and a["verdict"] == "exposed"
    assert a["open_routes"] == ["POST /v1/chat/completions (200)"]  # the stand-in serves it


def test_the_vllm_standin_guards_exactly_the_prefixes_of_the_table(
    docker_client: Any, engine_images: Any, runtime: DockerRuntime, tmp_path: Path
) -> None:
    port = _serve("vllm", engine_images, runtime, tmp_path, keyed=True)
    code, doc = _audit(port, "vllm")
    a = doc["audit"]
    assert a["caveats"] == [pa.VLLM_UNGUARDED_ROUTES]
    probes = {p["path"]: p for p in a["probes"]}
    for r in pa.VLLM:  # the stand-in serves no route outside /v1: those answer 404
        want = pa.PROTECTED if r.path.startswith(pa.VLLM_GUARDED_PREFIXES) else pa.ABSENT
        assert probes[r.path]["answer"] == want, (r.path, probes[r.path]["status"])
    # the stand-in mounts no /invocations, so nothing is open: the real engine's is
    assert code == 0 and a["verdict"] == "protected"
