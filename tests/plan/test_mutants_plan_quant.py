"""plan/quant.py: ggml's block sizes, llama.cpp's per-tensor type rules and the bytes of each
safetensors format, each worked out by hand from the formats' definitions, pinned where the
mutation benchmark found gaps (benchmarks/MUTATION.md). test_estimator*.py check whole models
against real files; these check the rules one at a time."""

from __future__ import annotations

import pytest

from llmops.errors import UsageError
from llmops.plan import quant as q

# ggml's block structs (ggml-common.h): bytes of one block and the weights it holds
BLOCKS = {
    "q4_0": (32, 2 + 16),  # fp16 d + 32 nibbles
    "q4_1": (32, 2 + 2 + 16),  # d, m + nibbles
    "q5_0": (32, 2 + 4 + 16),  # d + 32 high bits + nibbles
    "q5_1": (32, 2 + 2 + 4 + 16),
    "q8_0": (32, 2 + 32),  # d + 32 int8
    "q2_k": (256, 16 + 64 + 2 + 2),  # scales, 2-bit qs, d, dmin
    "q3_k": (256, 32 + 64 + 12 + 2),  # hmask, qs, scales, d
    "q4_k": (256, 2 + 2 + 12 + 128),  # d, dmin, scales, qs
    "q5_k": (256, 2 + 2 + 12 + 32 + 128),  # + qh
    "q6_k": (256, 128 + 64 + 16 + 2),  # ql, qh, scales, d
    "f16": (1, 2),
    "bf16": (1, 2),
    "f32": (1, 4),
}


@pytest.mark.parametrize("t", sorted(BLOCKS))
def test_ggml_bytes_are_whole_blocks(t: str) -> None:
    per, size = BLOCKS[t]
    assert q.ggml_bytes(t, per) == size
    assert q.ggml_bytes(t, 10 * per) == 10 * size
    if per > 1:
        assert q.ggml_bytes(t, per + 1) == 2 * size  # a partial block is a whole one


def test_rows_not_a_multiple_of_256_fall_back_like_llama_cpp() -> None:
    # llama_tensor_get_type: k-quants need rows of 256; else the nearest 32-block type
    assert q._row_type("q4_k", 4096) == "q4_k"
    assert q._row_type("q4_k", 4096 + 32) == "q5_0"
    assert q._row_type("q5_k", 4096 + 32) == "q5_1"
    assert q._row_type("q6_k", 4096 + 32) == "q8_0"
    assert q._row_type("q2_k", 4096 + 32) == "q4_0"
    assert q._row_type("q3_k", 4096 + 32) == "q4_0"
    # and a row that is not even a multiple of 32 stays f16
    assert q._row_type("q4_k", 4096 + 16) == "f16"
    assert q._row_type("q8_0", 4096 + 16) == "f16"
    assert q._row_type("q8_0", 4096 + 32) == "q8_0"
    assert q._row_type("f32", 7) == "f32"


def test_use_more_bits_layers_of_a_32_layer_model() -> None:
    # the first and last eighth, and every third layer in between from n/8 + 2
    more = [i for i in range(32) if q.use_more_bits(i, 32)]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def test_quant_names_are_case_insensitive_and_unknown_ones_listed() -> None:
    assert q.quant_spec("Q4_K_M").name == "q4_k_m"
    with pytest.raises(UsageError) as e:
        q.quant_spec("int3")
    assert "q4_k_m" in (e.value.hint or "") and "fp16" in (e.value.hint or "")


def test_kv_dtype_bytes() -> None:
    assert q.kv_dtype_bytes("FP8") == 1.0
    assert q.kv_dtype_bytes("fp16") == 2.0 and q.kv_dtype_bytes("fp32") == 4.0
    assert q.kv_dtype_bytes("q8_0") == 34 / 32 and q.kv_dtype_bytes("q4_0") == 18 / 32
    with pytest.raises(UsageError):
        q.kv_dtype_bytes("int2")
    assert q.compute_dtype_bytes("fp32") == 4 and q.compute_dtype_bytes("q4_k_m") == 2


def test_linear_bytes_of_each_safetensors_format() -> None:
    m = q._Matrix("q", 4096, 1024)
    n = 4096 * 1024
    assert q._linear_bytes("fp32", m, 128) == 4 * n
    assert q._linear_bytes("bf16", m, 128) == 2 * n
    # LLM.int8: one int8 per weight + one fp32 scale per output row
    assert q._linear_bytes("8bit", m, 128) == n + 4 * 1024
    # NF4: half a byte per weight + one fp32 absmax per 64 weights
    assert q._linear_bytes("4bit", m, 128) == n // 2 + (n // 64) * 4
    # GPTQ/AWQ g128: int4 weights, int4 zeros and fp16 scales per group of 128 inputs
    groups = (4096 // 128) * 1024
    awq = n // 2 + groups // 2 + groups * 2
    assert q._linear_bytes("awq", m, 128) == awq
    assert q._linear_bytes("gptq", m, 128) == awq + 4 * 4096  # + int32 g_idx per input
    # per-channel (group -1): one group per input row
    assert q._linear_bytes("awq", m, -1) == n // 2 + 1024 // 2 + 1024 * 2
    # FP8: one byte per weight + one fp32 per-tensor scale
    assert q._linear_bytes("fp8", m, 128) == n + 4
    experts = q._Matrix("up", 4096, 1024, 8)
    assert q._linear_bytes("fp8", experts, 128) == 8 * n + 4 * 8
    assert q._linear_bytes("8bit", experts, 128) == 8 * n + 4 * 1024 * 8
    with pytest.raises(UsageError):
        q._linear_bytes("q4_k_m", m, 128)


def test_a_local_gguf_has_no_computed_inventory() -> None:
    from llmops.catalog.recipes import load_catalog

    with pytest.raises(UsageError) as e:
        q.weight_inventory(load_catalog().get("smollm2-135m").arch, "gguf")
    assert "header" in e.value.message


def _arch(name: str):  # type: ignore[no-untyped-def]
    from llmops.catalog.recipes import load_catalog

    return load_catalog().get(name).arch


def test_small_params_of_a_qwen3_block() -> None:
    # Qwen3-8B (config.json): hidden 4096, head_dim 128; input_layernorm and
    # post_attention_layernorm (RMSNorm: one weight each) + q_norm and k_norm over head_dim;
    # no biases
    assert q.layer_small_params(_arch("qwen3-8b")) == 2 * 4096 + 2 * 128


def test_non_layer_bytes_are_the_final_norm_and_extra_params() -> None:
    import dataclasses

    arch = _arch("smollm2-135m")  # hidden 576, RMSNorm
    # GGUF keeps output_norm in f32
    assert q.weight_inventory(arch, "q8_0").other_bytes == 4 * 576
    # safetensors: the final norm at the checkpoint's 16 bits, extra tensors at 16 bits too
    assert q.weight_inventory(arch, "bf16").other_bytes == 2 * 576
    more = dataclasses.replace(arch, extra_params=1000)
    assert q.weight_inventory(more, "bf16").other_bytes == 2 * 576 + 2 * 1000
    assert q.weight_inventory(more, "fp32").other_bytes == 4 * 576 + 2 * 1000


def test_an_awq_request_of_an_fp8_checkpoint_is_awq_bytes() -> None:
    # DeepSeek-V3 ships block-FP8; its bf16/fp16 request is served as stored, but an AWQ
    # request comes from the AWQ repo
    arch = _arch("deepseek-v3")
    m = q._Matrix("q", 7168, 1536)
    assert q._checkpoint_linear(arch, "awq", m, 128) == q._linear_bytes("awq", m, 128)
    assert q._checkpoint_linear(arch, "bf16", m, 128) == q._linear_bytes("fp8-block", m, 128)
