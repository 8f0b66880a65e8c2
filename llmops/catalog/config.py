"""Hugging Face ``config.json`` -> ``Architecture``, for every family the catalog carries.

Recipes store the real config keys verbatim (``config:`` in recipes/*.yaml), and the Hub path
reads the repo's config.json: both go through :func:`architecture_from_config`, so a recipe is
checked by the same code that reads an arbitrary repo. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from llmops.plan.model import Architecture, Mla, RopeScaling


class ConfigFieldError(ValueError):
    """A config key is missing or has the wrong type. ``field`` names it."""

    def __init__(self, field: str, expected: str, got: Any = None) -> None:
        self.field = field
        self.expected = expected
        got_s = "missing" if got is None else f"got {got!r}"
        super().__init__(f"{field}: expected {expected}, {got_s}")


SUPPORTED = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "gemma",
    "gemma2",
    "phi3",
    "stablelm",
    "falcon",
    "mpt",
    "gpt_neox",
    "qwen3",
    "qwen3_moe",
    "gemma3",
    "gemma3_text",
    "gpt_oss",
    "deepseek_v3",
    "llama4",
    "llama4_text",
    "mistral3",
)
# multimodal wrappers: the decoder's numbers are under text_config
_WRAPPERS = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": "mistral"}


def _int(
    cfg: Mapping[str, Any], *keys: str, default: int | None = None, positive: bool = True
) -> int:
    for k in keys:
        if k in cfg and cfg[k] is not None:
            v = cfg[k]
            if isinstance(v, bool) or not isinstance(v, int) or (positive and v <= 0):
                raise ConfigFieldError(k, "a positive integer", v)
            return v
    if default is not None:
        return default
    raise ConfigFieldError(keys[0], "a positive integer")


def _float(cfg: Mapping[str, Any], key: str, default: float | None) -> float | None:
    v = cfg.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigFieldError(key, "a number", v)
    return float(v)


def _bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    v = cfg.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ConfigFieldError(key, "true or false", v)
    return v


def _rope_scaling(cfg: Mapping[str, Any]) -> RopeScaling | None:
    rs = cfg.get("rope_scaling")
    if rs is None:
        return None
    if not isinstance(rs, Mapping):
        raise ConfigFieldError("rope_scaling", "a mapping with rope_type/type and factor", rs)
    kind = rs.get("rope_type") or rs.get("type")
    factor = rs.get("factor")
    if not isinstance(kind, str) or not isinstance(factor, int | float) or isinstance(factor, bool):
        raise ConfigFieldError("rope_scaling", "a mapping with rope_type/type and factor", rs)
    orig = rs.get("original_max_position_embeddings")
    return RopeScaling(
        kind=kind, factor=float(factor), original_context=orig if isinstance(orig, int) else None
    )


def architecture_from_config(cfg: Mapping[str, Any]) -> Architecture:
    """Read a transformers config (as a dict) into an Architecture.

    The families share a core (``_core``); each then adds its own fields in the steps
    ``_FAMILY_STEPS`` names for it, in order (a later step may override an earlier one).

    Raises:
        ConfigFieldError: naming the key that is missing or malformed.
    """
    mt = cfg.get("model_type")
    if not isinstance(mt, str) or mt not in SUPPORTED:
        raise ConfigFieldError("model_type", f"one of {', '.join(SUPPORTED)}", mt)
    if mt in _WRAPPERS:
        return _wrapped(cfg, _WRAPPERS[mt])
    if mt == "mpt":
        return _mpt(cfg)
    if mt == "falcon":
        return _falcon(cfg)
    common = _core(cfg)
    if mt == "gpt_neox":
        return _gpt_neox(cfg, common)
    inter = _int(cfg, "intermediate_size")
    arch = dict(
        common,
        intermediate_size=inter,
        tied_embeddings=_bool(cfg, "tie_word_embeddings", mt in ("gemma", "gemma2")),
    )
    for step in _FAMILY_STEPS.get(mt, ()):
        step(cfg, arch, common["layers"], inter)
    arch["model_type"] = mt
    return Architecture(**arch)


def _wrapped(cfg: Mapping[str, Any], decoder_type: str) -> Architecture:
    """A multimodal wrapper: the decoder under ``text_config``, plus its vision tower."""
    text = cfg.get("text_config")
    if not isinstance(text, Mapping):
        raise ConfigFieldError("text_config", "a mapping of the decoder's config", text)
    inner = {"model_type": decoder_type, **text}
    inner["model_type"] = decoder_type
    if "torch_dtype" not in inner and "torch_dtype" in cfg:
        inner["torch_dtype"] = cfg["torch_dtype"]
    wrapped = architecture_from_config(inner)
    vision = _vision_params(cfg, wrapped.hidden_size)
    vc = cfg.get("vision_config")
    vc = vc if isinstance(vc, Mapping) else {}
    return replace(
        wrapped,
        extra_params=vision or wrapped.extra_params,
        multimodal=True,
        vision_layers=_int(vc, "num_hidden_layers", default=0, positive=False),
        vision_hidden=_int(vc, "hidden_size", default=0, positive=False),
    )


def _core(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every decoder-only family names the same way (sizes, heads, rope)."""
    hidden = _int(cfg, "hidden_size")
    heads = _int(cfg, "num_attention_heads")
    layers = _int(cfg, "num_hidden_layers")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    head_dim = _int(cfg, "head_dim", default=hidden // heads)
    vocab = _int(cfg, "vocab_size")
    max_pos = _int(cfg, "max_position_embeddings", default=2048)
    common: dict[str, Any] = dict(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        rope_theta=_float(cfg, "rope_theta", 10000.0),
        rope_scaling=_rope_scaling(cfg),
    )
    if heads % kv:
        raise ConfigFieldError(
            "num_key_value_heads", f"a divisor of num_attention_heads ({heads})", kv
        )
    return common


def _gpt_neox(cfg: Mapping[str, Any], common: dict[str, Any]) -> Architecture:
    return Architecture(
        **{**common, "rope_theta": _float(cfg, "rotary_emb_base", 10000.0)},
        intermediate_size=_int(cfg, "intermediate_size", default=4 * common["hidden_size"]),
        tied_embeddings=_bool(cfg, "tie_word_embeddings", False),
        mlp="plain",
        norm="layernorm",
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
    )


# Each step adds one family's fields to ``arch``: (cfg, arch, layers, intermediate_size).
_Step = Callable[[Mapping[str, Any], dict[str, Any], int, int], None]


def _qwen2_attention(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["qkv_bias"] = True
    if cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        arch["sliding_window"] = _int(cfg, "sliding_window")
        arch["sliding_window_layers"] = layers


def _mistral_window(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    if cfg.get("sliding_window"):
        arch["sliding_window"] = _int(cfg, "sliding_window")
        arch["sliding_window_layers"] = layers


def _mixtral_moe(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["experts"] = _int(cfg, "num_local_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok")


def _qwen2_moe(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["experts"] = _int(cfg, "num_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok")
    arch["intermediate_size"] = _int(cfg, "moe_intermediate_size")


def _gemma2(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["norms_per_layer"] = 4
    if cfg.get("sliding_window"):
        arch["sliding_window"] = _int(cfg, "sliding_window")
        arch["sliding_window_layers"] = (layers + 1) // 2  # even layers are local


def _phi3(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    if cfg.get("sliding_window"):
        # Phi-3's config names a window, but engines allocate the full cache: count it all.
        arch["sliding_window"] = None


def _qk_norm(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["qk_norm"] = True


def _qwen3_moe(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["experts"] = _int(cfg, "num_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok")
    arch["dense_intermediate_size"] = inter
    arch["intermediate_size"] = _int(cfg, "moe_intermediate_size")
    dense = cfg.get("mlp_only_layers") or []
    step = _int(cfg, "decoder_sparse_step", default=1)
    arch["dense_layers"] = tuple(i for i in range(layers) if i in dense or (i + 1) % step != 0)


def _qwen3_window(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    if cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        arch["sliding_window"] = _int(cfg, "sliding_window")
        arch["local_layers"] = tuple(range(_int(cfg, "max_window_layers", default=layers), layers))
        arch["sliding_window_layers"] = len(arch["local_layers"])


def _gemma3(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["norms_per_layer"] = 4
    arch["tied_embeddings"] = _bool(cfg, "tie_word_embeddings", True)
    _local_from_types(cfg, arch, layers, "sliding_window_pattern", global_last=True)


def _gpt_oss(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["experts"] = _int(cfg, "num_local_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok", "experts_per_token")
    arch["qkv_bias"] = arch["o_bias"] = _bool(cfg, "attention_bias", True)
    arch["mlp_bias"] = True  # expert gate_up/down biases (modeling_gpt_oss.py)
    arch["router_bias"] = True
    arch["attention_sinks"] = True
    _local_from_types(cfg, arch, layers, None, global_last=False)


def _llama4(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["experts"] = _int(cfg, "num_local_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok")
    arch["shared_expert_intermediate"] = inter  # one shared expert as wide as a routed one
    arch["dense_intermediate_size"] = _int(cfg, "intermediate_size_mlp", default=inter)
    step = _int(cfg, "interleave_moe_layer_step", default=1)
    moe = cfg.get("moe_layers") or list(range(step - 1, layers, step))
    arch["dense_layers"] = tuple(i for i in range(layers) if i not in moe)
    chunk = cfg.get("attention_chunk_size")
    if chunk:  # chunked local attention on the RoPE layers; every 4th (NoPE) is global
        nope = cfg.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
        arch["sliding_window"] = _int(cfg, "attention_chunk_size")
        arch["local_kind"] = "chunked"
        arch["local_layers"] = tuple(i for i in range(layers) if nope[i])
        arch["sliding_window_layers"] = len(arch["local_layers"])


def _deepseek_v3(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    q_lora = cfg.get("q_lora_rank") or 0
    arch["mla"] = Mla(
        q_lora_rank=int(q_lora),
        kv_lora_rank=_int(cfg, "kv_lora_rank"),
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
        v_head_dim=_int(cfg, "v_head_dim"),
    )
    arch["head_dim"] = arch["mla"].qk_nope_head_dim + arch["mla"].qk_rope_head_dim
    arch["experts"] = _int(cfg, "n_routed_experts", "num_routed_experts")
    arch["experts_active"] = _int(cfg, "num_experts_per_tok")
    moe_inter = _int(cfg, "moe_intermediate_size")
    shared = _int(cfg, "n_shared_experts", "num_shared_experts", default=1, positive=False)
    arch["shared_expert_intermediate"] = shared * moe_inter
    arch["dense_intermediate_size"] = inter
    arch["intermediate_size"] = moe_inter
    first_dense = _int(cfg, "first_k_dense_replace", default=0, positive=False)
    freq = _int(cfg, "moe_layer_freq", default=1)
    arch["dense_layers"] = tuple(
        i for i in range(layers) if i < first_dense or (i - first_dense) % freq != 0
    )
    arch["router_bias"] = cfg.get("topk_method") == "noaux_tc"  # e_score_correction_bias
    arch["router_fp32"] = True


def _checkpoint_quant(
    cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int
) -> None:
    qc = cfg.get("quantization_config")
    if isinstance(qc, Mapping) and qc.get("quant_method") in ("mxfp4", "fp8"):
        arch["checkpoint_quant"] = qc["quant_method"]


def _stablelm(cfg: Mapping[str, Any], arch: dict[str, Any], layers: int, inter: int) -> None:
    arch["norm"] = "layernorm"
    arch["qkv_bias"] = _bool(cfg, "use_qkv_bias", False)


# model_type -> its steps, in order; a family not named here (llama, gemma) is the core alone.
_FAMILY_STEPS: dict[str, tuple[_Step, ...]] = {
    "qwen2": (_qwen2_attention,),
    "qwen2_moe": (_qwen2_attention, _qwen2_moe),
    "mistral": (_mistral_window,),
    "mixtral": (_mistral_window, _mixtral_moe),
    "gemma2": (_gemma2,),
    "phi3": (_phi3,),
    "qwen3": (_qk_norm, _qwen3_window),
    "qwen3_moe": (_qk_norm, _qwen3_moe, _qwen3_window, _checkpoint_quant),
    "gemma3_text": (_qk_norm, _gemma3, _checkpoint_quant),
    "gpt_oss": (_gpt_oss, _checkpoint_quant),
    "llama4_text": (_llama4, _checkpoint_quant),
    "deepseek_v3": (_deepseek_v3, _checkpoint_quant),
    "stablelm": (_stablelm,),
}


def _local_from_types(
    cfg: Mapping[str, Any],
    arch: dict[str, Any],
    layers: int,
    pattern_key: str | None,
    global_last: bool,
) -> None:
    """Sliding-window layers from ``layer_types`` (transformers >= 4.53 configs), else from
    ``sliding_window_pattern`` N (Gemma 3: every Nth layer is global, the others local)."""
    window = cfg.get("sliding_window")
    if not window:
        return
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        local = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
    else:
        n = cfg.get(pattern_key or "", None) or cfg.get("_sliding_window_pattern")
        if isinstance(n, int) and n > 0:
            local = tuple(i for i in range(layers) if (i + 1) % n != 0)
        else:  # gpt-oss: even layers sliding, odd layers full
            local = tuple(i for i in range(layers) if i % 2 == 0)
    arch["sliding_window"] = _int(cfg, "sliding_window")
    arch["local_layers"] = local
    arch["sliding_window_layers"] = len(local)


def _vision_params(cfg: Mapping[str, Any], text_hidden: int) -> int:
    """Parameters of a SigLIP vision tower and its projector (Gemma 3), from vision_config:
    per layer q/k/v/o with biases, fc1/fc2 with biases, two LayerNorms; the patch embedding
    (conv with bias), the position embedding, the post LayerNorm; Gemma 3's projector
    (an RMSNorm and a vision -> text matrix). 0 when there is no SigLIP vision_config."""
    v = cfg.get("vision_config")
    if not isinstance(v, Mapping) or v.get("model_type") != "siglip_vision_model":
        return 0
    h = _int(v, "hidden_size")
    inter = _int(v, "intermediate_size")
    n = _int(v, "num_hidden_layers")
    patch = _int(v, "patch_size")
    image = _int(v, "image_size")
    ch = _int(v, "num_channels", default=3)
    per_layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 2 * 2 * h
    embed = ch * patch * patch * h + h + (image // patch) ** 2 * h
    projector = h + h * text_hidden
    return n * per_layer + embed + 2 * h + projector


def _falcon(cfg: Mapping[str, Any]) -> Architecture:
    hidden = _int(cfg, "hidden_size")
    heads = _int(cfg, "num_attention_heads", "n_head")
    layers = _int(cfg, "num_hidden_layers", "n_layer")
    new_arch = _bool(cfg, "new_decoder_architecture", False)
    if new_arch:
        kv = _int(cfg, "num_kv_heads", "n_head_kv")
    elif _bool(cfg, "multi_query", True):
        kv = 1
    else:
        kv = heads
    bias = _bool(cfg, "bias", False)
    return Architecture(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv,
        head_dim=hidden // heads,
        intermediate_size=_int(cfg, "ffn_hidden_size", default=4 * hidden),
        vocab_size=_int(cfg, "vocab_size"),
        max_position_embeddings=_int(cfg, "max_position_embeddings", default=2048),
        tied_embeddings=_bool(cfg, "tie_word_embeddings", True),
        rope_theta=_float(cfg, "rope_theta", 10000.0),
        rope_scaling=_rope_scaling(cfg),
        mlp="plain",
        norm="layernorm",
        norms_per_layer=2 if new_arch else (1 if _bool(cfg, "parallel_attn", True) else 2),
        qkv_bias=bias,
        o_bias=bias,
        mlp_bias=bias,
        position="alibi" if _bool(cfg, "alibi", False) else "rope",
    )


def _mpt(cfg: Mapping[str, Any]) -> Architecture:
    d = _int(cfg, "d_model")
    heads = _int(cfg, "n_heads")
    attn = cfg.get("attn_config") or {}
    if not isinstance(attn, Mapping):
        raise ConfigFieldError("attn_config", "a mapping", attn)
    kv = (
        attn.get("kv_n_heads", heads)
        if attn.get("attn_type", "multihead_attention") != "multihead_attention"
        else heads
    )
    no_bias = _bool(cfg, "no_bias", True)
    return Architecture(
        layers=_int(cfg, "n_layers"),
        hidden_size=d,
        attention_heads=heads,
        kv_heads=int(kv),
        head_dim=d // heads,
        intermediate_size=d * _int(cfg, "expansion_ratio", default=4),
        vocab_size=_int(cfg, "vocab_size"),
        max_position_embeddings=_int(cfg, "max_seq_len", default=2048),
        tied_embeddings=True,
        rope_theta=None,
        mlp="plain",
        norm="layernorm_nobias" if no_bias else "layernorm",
        qkv_bias=not no_bias,
        o_bias=not no_bias,
        mlp_bias=not no_bias,
        position="alibi" if attn.get("alibi", False) else "rope",
    )


def checkpoint_dtype(cfg: Mapping[str, Any]) -> str:
    """``torch_dtype`` (or ``dtype``) of a config as a quant name: bf16, fp16 or fp32."""
    v = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(str(v), "bf16")
