"""Quantizations: real bytes per weight, per tensor, per format (peers-and-estimation.md B.1).

Every quant name llmops accepts is here, with the engines that serve it, the format it needs
and the rule that turns a tensor of ``n`` parameters into bytes:

- ``fp32``/``fp16``/``bf16``: 4/2/2 bytes per parameter, everything.
- ``8bit`` (bitsandbytes LLM.int8, TGI eetq): int8 linear weights + one fp32 scale per output
  row; embeddings, norms and lm_head stay fp16.
- ``4bit`` (bitsandbytes NF4): 4 bits + one fp32 absmax per 64 weights (4.5 bpw) on linear
  weights; embeddings, norms and lm_head fp16.
- ``gptq``/``awq`` (4-bit, group 128): packed int4 + int4 zeros + fp16 scales per group
  (4 + 20/128 = 4.156 bpw) + GPTQ's int32 ``g_idx`` per input row; embeddings/lm_head fp16.
- ``fp8``: 1 byte per linear weight (+ a per-tensor scale); embeddings/lm_head 16-bit.
- ``q4_k_m``/``q5_k_m``/``q8_0``: llama.cpp's mixes, tensor by tensor, with ggml's block sizes
  (Q4_K 144 B/256, Q5_K 176 B/256, Q6_K 210 B/256, Q8_0 34 B/32) and llama.cpp's
  ``llama_tensor_get_type`` rules (``use_more_bits`` layers get Q6_K attn_v/ffn_down, the output
  head gets Q6_K, rows not divisible by 256 fall back to Q5_0/Q5_1/Q8_0).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops.errors import UsageError
from llmops.plan.model import Architecture, WeightInventory

ENGINES = ("vllm", "tgi", "llamacpp", "torch")
GGUF_QUANTS = ("q4_k_m", "q5_k_m", "q8_0")
QUANTS = ("fp32", "fp16", "bf16", "8bit", "4bit", "gptq", "awq", "fp8", *GGUF_QUANTS)

# ggml block types: (weights per block, bytes per block)  (gguf-parser-go ggml.go)
GGML_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "q8_0": (32, 34),
    "q2_k": (256, 84),
    "q3_k": (256, 110),
    "q4_k": (256, 144),
    "q5_k": (256, 176),
    "q6_k": (256, 210),
}
# llama.cpp's fallback when a row is not a multiple of 256 (llama_tensor_get_type)
_K_FALLBACK = {"q2_k": "q4_0", "q3_k": "q4_0", "q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}

KV_DTYPES: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}


@dataclass(frozen=True)
class QuantSpec:
    name: str
    format: str  # safetensors | gptq | awq | gguf
    engines: tuple[str, ...]
    bits: float  # nominal, for display
    quality: float  # relative quality vs 16-bit (ranking only)
    description: str
    cpu: bool = False  # can run without a GPU


QUANT_SPECS: dict[str, QuantSpec] = {
    q.name: q
    for q in (
        QuantSpec("fp32", "safetensors", ("torch",), 32, 1.0, "fp32 (CPU torch)", cpu=True),
        QuantSpec("fp16", "safetensors", ENGINES[:2] + ("torch",), 16, 1.0, "fp16", cpu=False),
        QuantSpec(
            "bf16", "safetensors", ENGINES[:2] + ("torch",), 16, 1.0, "bf16", cpu=True
        ),  # torch runs bf16 on CPU
        QuantSpec("8bit", "safetensors", ("tgi", "torch"), 8, 0.99, "int8 (bitsandbytes/eetq)"),
        QuantSpec("4bit", "safetensors", ("vllm", "tgi", "torch"), 4, 0.94, "NF4 (bitsandbytes)"),
        QuantSpec("gptq", "gptq", ("vllm", "tgi", "torch"), 4, 0.95, "GPTQ 4-bit g128"),
        QuantSpec("awq", "awq", ("vllm", "tgi", "torch"), 4, 0.95, "AWQ 4-bit g128"),
        QuantSpec("fp8", "safetensors", ("vllm", "tgi"), 8, 0.99, "FP8 weights (H100/L4/4090+)"),
        QuantSpec("q8_0", "gguf", ("llamacpp",), 8.5, 0.99, "GGUF Q8_0", cpu=True),
        QuantSpec("q5_k_m", "gguf", ("llamacpp",), 5.7, 0.97, "GGUF Q5_K_M", cpu=True),
        QuantSpec("q4_k_m", "gguf", ("llamacpp",), 4.85, 0.95, "GGUF Q4_K_M", cpu=True),
        # a local GGUF file of any type: bytes come from its header, never computed
        QuantSpec("gguf", "gguf", ("llamacpp",), 0, 0.95, "a local GGUF file", cpu=True),
    )
}


def quant_spec(name: str) -> QuantSpec:
    """The spec of a quant name (case-insensitive).

    Raises:
        UsageError: for a name llmops does not know, listing those it does.
    """
    spec = QUANT_SPECS.get(name.lower())
    if spec is None:
        raise UsageError(
            f"unknown quantization {name!r}",
            f"choose one of: {', '.join(QUANTS)}",
        )
    return spec


def ggml_bytes(ggml_type: str, n: int) -> int:
    """Bytes of ``n`` weights stored as ``ggml_type`` (rounded up to whole blocks)."""
    per_block, size = GGML_TYPES[ggml_type]
    return -(-n // per_block) * size


def _row_type(ggml_type: str, row: int) -> str:
    if ggml_type in _K_FALLBACK and row % 256 != 0:
        ggml_type = _K_FALLBACK[ggml_type]
    if ggml_type in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0") and row % 32 != 0:
        return "f16"
    return ggml_type


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of layers that get more bits in the _M mixes."""
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


@dataclass(frozen=True)
class _Matrix:
    role: str  # q k v o gate up down
    n_in: int
    n_out: int
    count: int = 1  # experts

    @property
    def n(self) -> int:
        return self.n_in * self.n_out * self.count


def layer_matrices(arch: Architecture, i: int = 0) -> tuple[_Matrix, ...]:
    """The weight matrices of block ``i`` (blocks differ only in MoE models with dense layers)."""
    h = arch.hidden_size
    mla = arch.mla
    if mla is not None:
        # DeepSeek MLA (modeling_deepseek.py): q_a/q_b (or q), kv_a_proj_with_mqa, kv_b, o
        qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        heads = arch.attention_heads
        if mla.q_lora_rank:
            mats = [_Matrix("q_a", h, mla.q_lora_rank), _Matrix("q", mla.q_lora_rank, heads * qk)]
        else:
            mats = [_Matrix("q", h, heads * qk)]
        mats += [
            _Matrix("kv_a", h, mla.latent),
            _Matrix("kv_b", mla.kv_lora_rank, heads * (mla.qk_nope_head_dim + mla.v_head_dim)),
            _Matrix("o", heads * mla.v_head_dim, h),
        ]
    else:
        mats = [
            _Matrix("q", h, arch.q_dim),
            _Matrix("k", h, arch.kv_dim),
            _Matrix("v", h, arch.kv_dim),
            _Matrix("o", arch.q_dim, h),
        ]
    if arch.is_moe_layer(i):
        e, inter = arch.experts, arch.intermediate_size
    else:
        e, inter = 1, (arch.dense_intermediate_size if arch.is_moe else 0) or arch.intermediate_size
    if arch.mlp == "gated":
        mats.append(_Matrix("gate", h, inter, e))
    mats.append(_Matrix("up", h, inter, e))
    mats.append(_Matrix("down", inter, h, e))
    sh = arch.shared_expert_intermediate
    if sh and arch.is_moe_layer(i):
        mats += [
            _Matrix("shexp_gate", h, sh),
            _Matrix("shexp_up", h, sh),
            _Matrix("shexp_down", sh, h),
        ]
    return tuple(mats)


def expert_matrix(m: _Matrix) -> bool:
    """A routed expert's matrix (what MoE reads only k of, and MXFP4 checkpoints pack)."""
    return m.count > 1 and m.role in ("gate", "up", "down")


def layer_small_params(arch: Architecture, i: int = 0) -> int:
    """Norms, biases, router and sinks of block ``i`` (kept at 16/32 bits by every format)."""
    norm = arch.hidden_size * (2 if arch.norm == "layernorm" else 1)
    n = norm * arch.norms_per_layer
    if arch.qk_norm:
        n += 2 * arch.head_dim
    if arch.mla is not None:  # q_a_layernorm, kv_a_layernorm
        n += (arch.mla.q_lora_rank or 0) + arch.mla.kv_lora_rank
    if arch.qkv_bias:
        n += arch.q_dim + 2 * arch.kv_dim
    if arch.o_bias:
        n += arch.hidden_size
    moe = arch.is_moe_layer(i)
    if arch.mlp_bias:
        inter = arch.intermediate_size
        n += (inter * (2 if arch.mlp == "gated" else 1) + arch.hidden_size) * (
            arch.experts if moe else 1
        )
    if moe:
        n += arch.hidden_size * arch.experts
        if arch.router_bias:
            n += arch.experts
    if arch.attention_sinks:
        n += arch.attention_heads
    return n


def final_norm_params(arch: Architecture) -> int:
    return arch.hidden_size * (2 if arch.norm == "layernorm" else 1)


def layer_params(arch: Architecture, i: int) -> int:
    return sum(m.n for m in layer_matrices(arch, i)) + layer_small_params(arch, i)


def param_count(arch: Architecture) -> int:
    """Total parameters, counting a tied embedding once (as checkpoints store it)."""
    embed = arch.vocab_size * arch.hidden_size
    head = 0 if arch.tied_embeddings else embed
    layers = sum(layer_params(arch, i) for i in range(arch.layers))
    return embed + head + final_norm_params(arch) + layers + arch.extra_params


def active_param_count(arch: Architecture, *, embedding: bool = True) -> int:
    """Parameters read per token: MoE reads only its active routed experts (B.4).

    ``embedding=False`` leaves out the input embedding table (a token reads one row of it),
    as OpenAI counts gpt-oss's active parameters; Qwen and Meta count it.
    """
    total = param_count(arch) - arch.extra_params
    if arch.is_moe:
        for i in range(arch.layers):
            if not arch.is_moe_layer(i):
                continue
            routed = sum(m.n for m in layer_matrices(arch, i) if expert_matrix(m))
            total -= routed * (arch.experts - arch.experts_active) // arch.experts
    if not embedding:
        total -= arch.vocab_size * arch.hidden_size
    return total


# ------------------------------------------------------------------------ safetensors formats


def _dense_bytes(quant: str) -> int:
    return {"fp32": 4, "fp16": 2, "bf16": 2}.get(quant, 2)


def _linear_bytes(quant: str, m: _Matrix, group: int) -> int:
    n = m.n
    if group <= 0:  # -1: one group per input row (per-channel)
        group = m.n_in
    if quant in ("fp32", "fp16", "bf16"):
        return n * _dense_bytes(quant)
    if quant == "8bit":  # int8 + fp32 SCB per output row
        return n + 4 * m.n_out * m.count
    if quant == "4bit":  # NF4 packed + fp32 absmax per 64
        return n // 2 + -(-n // 64) * 4
    if quant in ("gptq", "awq"):
        groups = -(-m.n_in // group) * m.n_out * m.count
        packed = n // 2 + groups // 2 + groups * 2  # qweight + qzeros (int4) + fp16 scales
        if quant == "gptq":
            packed += 4 * m.n_in * m.count  # g_idx
        return packed
    if quant == "fp8":
        return n + 4 * m.count
    if quant == "fp8-block":  # DeepSeek's checkpoint: e4m3 + one fp32 scale per 128x128 block
        return n + 4 * -(-m.n_in // 128) * -(-m.n_out // 128) * m.count
    if quant == "mxfp4":  # OCP MX: 32 e2m1 values (16 B) + one e8m0 scale (1 B) = 4.25 bpw
        return -(-m.n_in // 32) * m.n_out * m.count * 17
    raise UsageError(f"{quant} is not a safetensors quantization")


def _checkpoint_linear(arch: Architecture, quant: str, m: _Matrix, group: int) -> int:
    """A 16-bit request of a checkpoint stored quantized is served as stored (vLLM, SGLang,
    TGI load gpt-oss's MXFP4 experts and DeepSeek's block FP8 as they are)."""
    ck = arch.checkpoint_quant
    if quant in ("bf16", "fp16") and ck == "mxfp4" and expert_matrix(m):
        return _linear_bytes("mxfp4", m, group)
    if quant in ("bf16", "fp16") and ck == "fp8":
        return _linear_bytes("fp8-block", m, group)
    return _linear_bytes(quant, m, group)


def _gguf_base(quant: str) -> str:
    return {"q4_k_m": "q4_k", "q5_k_m": "q5_k", "q8_0": "q8_0"}[quant]


def _gguf_matrix_type(quant: str, arch: Architecture, role: str, i_layer: int) -> str:
    base = _gguf_base(quant)
    if quant == "q8_0":
        return base
    more = use_more_bits(i_layer, arch.layers)
    eight_experts = arch.experts == 8
    if role == "v":
        t = "q6_k" if more else base
        if arch.layers == 80 and arch.kv_heads * 8 <= arch.attention_heads and t == "q4_k":
            t = "q5_k"  # llama.cpp's 70B rule: attn_v is 8x smaller, give it more bits
        if eight_experts:
            t = "q8_0"
        return t
    if role == "k" and eight_experts:
        return "q8_0"
    if role == "o" and eight_experts and quant == "q4_k_m":
        return "q5_k"
    if role == "down" and more and not arch.is_moe:
        return "q6_k"
    return base


def _gguf_layer_bytes(quant: str, arch: Architecture, i_layer: int) -> int:
    total = 0
    for m in layer_matrices(arch, i_layer):
        t = _row_type(_gguf_matrix_type(quant, arch, m.role, i_layer), m.n_in)
        total += ggml_bytes(t, m.n_in * m.n_out) * m.count
    # norms, biases and router stay f32 in GGUF files
    return total + 4 * layer_small_params(arch, i_layer)


def weight_inventory(arch: Architecture, quant: str, group_size: int = 128) -> WeightInventory:
    """Bytes of every weight of ``arch`` stored as ``quant`` (embedding/head at their own type).

    Raises:
        UsageError: for an unknown quant name.
    """
    spec = quant_spec(quant)
    if quant == "gguf":
        raise UsageError(
            "a local GGUF file's sizes come from its header, not from a computation",
            "pass the file's path as the model",
        )
    h, v = arch.hidden_size, arch.vocab_size
    embed_n = v * h
    if spec.format == "gguf":
        base = _gguf_base(quant)
        head_type = "q8_0" if quant == "q8_0" else "q6_k"
        if arch.tied_embeddings:  # token_embd doubles as the output: quantized like the output
            embed = ggml_bytes(_row_type(head_type, h), embed_n)
            head = 0
        else:
            embed = ggml_bytes(_row_type(base, h), embed_n)
            head = ggml_bytes(_row_type(head_type, h), embed_n)
        layers = tuple(_gguf_layer_bytes(quant, arch, i) for i in range(arch.layers))
        other = 4 * final_norm_params(arch)
    else:
        small = 4 if quant == "fp32" else 2
        embed = embed_n * small
        head = 0 if arch.tied_embeddings else embed_n * small
        group = group_size
        cache: dict[tuple[bool, ...], int] = {}
        out = []
        for i in range(arch.layers):
            key = (arch.is_moe_layer(i),)
            if key not in cache:
                b = sum(_checkpoint_linear(arch, quant, m, group) for m in layer_matrices(arch, i))
                cache[key] = b + layer_small_params(arch, i) * small
            out.append(cache[key])
        layers = tuple(out)
        other = final_norm_params(arch) * small + arch.extra_params * 2
    return WeightInventory(
        embed_bytes=embed,
        lm_head_bytes=head,
        layer_bytes=layers,
        other_bytes=other,
        tied=arch.tied_embeddings,
        source=f"computed:{quant}",
    )


def compute_dtype_bytes(quant: str) -> int:
    """Bytes of activations/KV elements for the default ('auto') KV dtype of a quant."""
    return 4 if quant == "fp32" else 2


def kv_dtype_bytes(kv_dtype: str) -> float:
    """Bytes per KV element for a cache dtype name.

    Raises:
        UsageError: for an unknown cache dtype.
    """
    try:
        return KV_DTYPES[kv_dtype.lower()]
    except KeyError:
        raise UsageError(
            f"unknown KV cache dtype {kv_dtype!r}",
            f"choose one of: auto, {', '.join(KV_DTYPES)}",
        ) from None
