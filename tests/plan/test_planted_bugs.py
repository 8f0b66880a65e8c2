"""Pure tests that kill mutants which survived the suite (one behaviour per test).

Each test's docstring names the planted bug it kills. The ones that need real processes,
servers or sshd are in tests/run/test_planted_bugs_run.py and tests/cli/test_planted_bugs_cli.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.hw import remote_probe as rp
from llmops.hw.facts import HostFacts
from llmops.hw.hf import mask_secret
from llmops.plan.hardware import devices_from_facts, facts_from_hw, parse_hw
from llmops.plan.memory import FitOptions, estimate
from llmops.plan.tunnel import judge_exposure

CAT = load_catalog()
URL = "https://abc-def.trycloudflare.com"


# ------------------------------------------------------------------ 1. the exposure rule


@pytest.mark.parametrize("no_key_status", [200, 204, 301, 302, 400, 404, 405, 429, 500, 502, None])
def test_only_401_or_403_without_a_key_counts_as_protected(no_key_status: int | None) -> None:
    """Kills: "any no-key status other than 200 counts as protected" (plan/tunnel.py).

    With the key the endpoint answers 200 (reachable); without it, anything but 401/403 (a
    404 of a proxy, a 500, a redirect, no answer) is NOT protection: the verdict is unprotected.
    """
    c = judge_exposure(
        URL,
        with_key_status=200,
        without_key_status=no_key_status,
        had_key=True,
        allow_public_no_auth=False,
    )
    assert (c.reachable, c.protected, c.verdict) == (True, False, "unprotected")
    assert c.detail == (f"GET {URL}/v1/models without an API key answered {no_key_status}, not 401")
    allowed = judge_exposure(
        URL,
        with_key_status=200,
        without_key_status=no_key_status,
        had_key=True,
        allow_public_no_auth=True,
    )
    assert (allowed.protected, allowed.verdict) == (False, "unprotected-allowed")


@pytest.mark.parametrize("no_key_status", [302, 404, 418, 499])
def test_without_a_key_known_a_non_401_answer_is_unprotected(no_key_status: int) -> None:
    """Kills: "any no-key status other than 200 counts as protected" (no key known: the keyless
    answer below 500 makes it reachable, and it is still not a refusal)."""
    c = judge_exposure(
        URL,
        with_key_status=None,
        without_key_status=no_key_status,
        had_key=False,
        allow_public_no_auth=False,
    )
    assert (c.reachable, c.protected, c.verdict) == (True, False, "unprotected")


@pytest.mark.parametrize("no_key_status", [401, 403])
def test_401_and_403_without_the_key_are_protected(no_key_status: int) -> None:
    """The other side of the rule: exactly 401 and 403 count as protected."""
    c = judge_exposure(
        URL,
        with_key_status=200,
        without_key_status=no_key_status,
        had_key=True,
        allow_public_no_auth=False,
    )
    assert (c.reachable, c.protected, c.verdict) == (True, True, "ok")
    assert c.detail == f"/v1/models: 200 with the key, {no_key_status} without"


# ------------------------------------------------------------------ 7. the remote probe's token


def _probe_hf(shell: str, env: dict[str, str]) -> str:
    argv = rp.probe_argv(["hf"])
    assert argv[:2] == ["sh", "-c"]
    r = subprocess.run(
        [shell, *argv[1:]], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE")
    }
    env["HOME"] = str(tmp_path / "home")
    env["HF_HOME"] = str(tmp_path / "hf")
    return env


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize(
    "token", ["hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "abcdefghijklmnopqrstuvwxyz0123"]
)
def test_remote_probe_prints_only_the_masked_token_parts(
    shell: str, token: str, tmp_path: Path
) -> None:
    """Kills: "the remote probe prints the whole HF token" (hw/remote_probe.py PROBE_SCRIPT).

    The probe script run for real (as `sh -c SCRIPT` over SSH would) with HF_TOKEN set: the
    token never appears in its output, it prints exactly its length, first 3 and last 4
    characters, and the parsed mask equals the local mask (hw.hf.mask_secret)."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    env = {**_clean_env(tmp_path), "HF_TOKEN": token}
    out = _probe_hf(shell, env)
    assert token not in out
    assert token[3:-4] not in out  # not even the middle of it
    hf = rp.split_sections(out)["hf"].splitlines()
    assert hf[:4] == [
        "source=env:HF_TOKEN",
        f"len={len(token)}",
        f"first3={token[:3]}",
        f"last4={token[-4:]}",
    ]
    facts = rp.parse_probe_output(
        out, sections=["hf"], source="ssh:test", llmops_version="0", collected_at="t"
    )
    assert facts.hf is not None
    assert facts.hf.token_source == "env:HF_TOKEN" and facts.hf.token_present
    assert facts.hf.token_masked == mask_secret(token)


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_remote_probe_masks_a_token_read_from_the_token_file(shell: str, tmp_path: Path) -> None:
    """Kills: "the remote probe prints the whole HF token" (the token-file branch)."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    token = "hf_FileTokenSecretValue9876wxyz"
    env = _clean_env(tmp_path)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text(token + "\n")
    out = _probe_hf(shell, env)
    assert token not in out and token[3:-4] not in out
    facts = rp.parse_probe_output(
        out, sections=["hf"], source="ssh:test", llmops_version="0", collected_at="t"
    )
    assert facts.hf is not None
    assert facts.hf.token_source == f"file:{tmp_path / 'hf' / 'token'}"
    assert facts.hf.token_masked == mask_secret(token) == "hf_…wxyz"


# ------------------------------------------------------------------ 10. sliding-window KV


def _fit(spec_or_name: object, concurrency: int, context: int = 8192, engine: str = "vllm"):  # type: ignore[no-untyped-def]
    spec = CAT.get(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    facts = facts_from_hw(parse_hw("1xA100-80GB"), HostFacts(llmops_version="0", collected_at=""))
    gpus, host = devices_from_facts(facts)
    opts = FitOptions(quant="bf16", engine=engine, context=context, concurrency=concurrency)
    return estimate(spec, gpus, host, opts)  # type: ignore[arg-type]


def test_sliding_window_kv_grows_with_concurrency_gemma2() -> None:
    """Kills: "sliding-window KV ignores concurrency" (plan/memory.py _kv_layer_bytes).

    KV = 2 x kv_heads x head_dim x bytes per layer and token (memory.py docstring,
    peers-and-estimation.md B.2), tokens = context x sequences; a sliding-window layer holds
    min(context, window) tokens PER SEQUENCE. Gemma 2 9B: 42 layers (21 local, window 4096,
    21 global), 8 KV heads x 256, bf16 -> 8192 bytes per layer and token.
    """
    a = CAT.get("gemma2-9b").arch
    assert (a.layers, a.kv_heads, a.head_dim, a.sliding_window) == (42, 8, 256, 4096)
    per_tok_layer = 2 * 8 * 256 * 2  # 8192
    # vLLM v0.33.0 keeps a local layer's window plus the tokens in flight (two batches of
    # max_num_batched_tokens under async scheduling), in 16-token blocks, plus a block, even
    # when max_model_len caps it (vllm/v1/kv_cache_interface.py
    # SlidingWindowSpec.max_admission_blocks_per_request): cdiv(min(4096 - 1 + 2 x 2048,
    # 8192), 16) + 1 = 513 blocks = 8208 tokens per sequence (max_num_batched_tokens 2048 on an
    # A100, see vllm_batch_defaults)
    local = (-(-min(4096 - 1 + 2 * 2048, 8192) // 16) + 1) * 16
    assert local == 8208
    one = _fit("gemma2-9b", concurrency=1)
    four = _fit("gemma2-9b", concurrency=4)
    assert one.per_gpu[0].kv_cache_bytes == per_tok_layer * (21 * 8192 + 21 * local)
    assert one.per_gpu[0].kv_cache_bytes == 2_821_324_800
    # 4 sequences: global layers 4 x 8192 tokens, local layers 4 x 8208 (not 8208 in all)
    assert four.per_gpu[0].kv_cache_bytes == per_tok_layer * (21 * 4 * 8192 + 21 * 4 * local)
    assert four.per_gpu[0].kv_cache_bytes == 4 * one.per_gpu[0].kv_cache_bytes
    # the torch backend (transformers' sliding cache) keeps exactly the window
    t1, t4 = _fit("gemma2-9b", 1, engine="torch"), _fit("gemma2-9b", 4, engine="torch")
    assert t1.per_gpu[0].kv_cache_bytes == per_tok_layer * (21 * 8192 + 21 * 4096)
    assert t4.per_gpu[0].kv_cache_bytes == 4 * t1.per_gpu[0].kv_cache_bytes


def test_all_layer_sliding_window_kv_is_window_times_sequences() -> None:
    """Kills: "sliding-window KV ignores concurrency" (every layer windowed, Mistral-7B v0.1
    style: 32 layers, 8 KV heads x 128, window 4096) on vLLM and on the llama.cpp layer split."""
    base = CAT.get("mistral7b")
    arch = dataclasses.replace(base.arch, sliding_window=4096, sliding_window_layers=32)
    spec = dataclasses.replace(base, arch=arch)
    per_tok_layer = 2 * 8 * 128 * 2  # 4096 bytes
    local = (-(-min(4096 - 1 + 2 * 2048, 16384) // 16) + 1) * 16  # vLLM: 8208, as above
    for seqs in (1, 3):
        r = _fit(spec, concurrency=seqs, context=16384)
        assert r.per_gpu[0].kv_cache_bytes == 32 * per_tok_layer * local * seqs
    # the same rule on the torch layer split (per-layer KV summed on one device)
    t1 = _fit(spec, concurrency=1, context=16384, engine="torch")
    t3 = _fit(spec, concurrency=3, context=16384, engine="torch")
    assert t1.per_gpu[0].kv_cache_bytes == 32 * per_tok_layer * 4096
    assert t3.per_gpu[0].kv_cache_bytes == 32 * per_tok_layer * 4096 * 3
