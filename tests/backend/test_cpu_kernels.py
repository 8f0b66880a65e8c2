"""oneDNN weight packing for bf16 on the CPU: same logits, fewer reorders, and a safe way back."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llmops.backend.cpu_kernels import can_prepack, prepack_linears  # noqa: E402

CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 120,
}


def tiny_bf16() -> Any:
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model("llama", **CONFIG)
    return transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16).eval()


def linears(model: Any) -> int:
    return sum(type(m) is torch.nn.Linear for m in model.modules())


def test_packed_model_gives_the_same_logits() -> None:
    model = tiny_bf16()
    ids = torch.tensor([[5, 17, 99, 3, 64]])
    with torch.inference_mode():
        want = model(input_ids=ids).logits
    n_linear = linears(model)
    assert n_linear == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the lm_head
    packed, why = prepack_linears(model, torch)
    reason = can_prepack(torch)
    if reason is not None:  # this CPU/torch has no oneDNN bf16: nothing may change
        assert (packed, why) == (0, reason)
        assert linears(model) == n_linear
        return
    assert (packed, why) == (n_linear, "")
    assert linears(model) == 0
    with torch.inference_mode():
        got = model(input_ids=ids).logits
    assert torch.equal(got, want)


def test_a_failing_packed_forward_puts_the_plain_layers_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_bf16()
    n_linear = linears(model)
    reason = can_prepack(torch)
    if reason is not None:  # no oneDNN bf16 here: refused before any module is touched
        assert prepack_linears(model, torch) == (0, reason)
        assert linears(model) == n_linear
        return

    def broken(*args: Any) -> Any:
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)
    packed, why = prepack_linears(model, torch)
    assert packed == 0
    assert why == "RuntimeError: no kernel for this shape"
    assert linears(model) == n_linear  # every original module is back


def test_fp32_models_are_left_alone() -> None:
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model("llama", **CONFIG)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    assert prepack_linears(model, torch) == (0, "no bf16 Linear layers on the CPU") or (
        can_prepack(torch) is not None
    )
    assert linears(model) == 2 * 7 + 1
