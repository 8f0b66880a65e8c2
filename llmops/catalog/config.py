"""Hugging Face ``config.json`` -> ``Architecture``, for every family the catalog carries.

Recipes store the real config keys verbatim (``config:`` in recipes/*.yaml), and the Hub path
reads the repo's config.json: both go through :func:`architecture_from_config`, so a recipe is
checked by the same code that reads an arbitrary repo. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.plan.model import Architecture, RopeScaling


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
)


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

    Raises:
        ConfigFieldError: naming the key that is missing or malformed.
    """
    mt = cfg.get("model_type")
    if not isinstance(mt, str):
        raise ConfigFieldError("model_type", f"one of {', '.join(SUPPORTED)}", mt)
    if mt not in SUPPORTED:
        raise ConfigFieldError("model_type", f"one of {', '.join(SUPPORTED)}", mt)
    if mt == "mpt":
        return _mpt(cfg)
    if mt == "falcon":
        return _falcon(cfg)

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

    if mt == "gpt_neox":
        return Architecture(
            **{**common, "rope_theta": _float(cfg, "rotary_emb_base", 10000.0)},
            intermediate_size=_int(cfg, "intermediate_size", default=4 * hidden),
            tied_embeddings=_bool(cfg, "tie_word_embeddings", False),
            mlp="plain",
            norm="layernorm",
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
        )
    inter = _int(cfg, "intermediate_size")
    tied_default = mt in ("gemma", "gemma2")
    arch = dict(
        common,
        intermediate_size=inter,
        tied_embeddings=_bool(cfg, "tie_word_embeddings", tied_default),
    )
    if mt in ("qwen2", "qwen2_moe"):
        arch["qkv_bias"] = True
        if cfg.get("use_sliding_window") and cfg.get("sliding_window"):
            arch["sliding_window"] = _int(cfg, "sliding_window")
            arch["sliding_window_layers"] = layers
    if mt in ("mistral", "mixtral") and cfg.get("sliding_window"):
        arch["sliding_window"] = _int(cfg, "sliding_window")
        arch["sliding_window_layers"] = layers
    if mt == "mixtral":
        arch["experts"] = _int(cfg, "num_local_experts")
        arch["experts_active"] = _int(cfg, "num_experts_per_tok")
    if mt == "qwen2_moe":
        arch["experts"] = _int(cfg, "num_experts")
        arch["experts_active"] = _int(cfg, "num_experts_per_tok")
        arch["intermediate_size"] = _int(cfg, "moe_intermediate_size")
    if mt == "gemma2":
        arch["norms_per_layer"] = 4
        if cfg.get("sliding_window"):
            arch["sliding_window"] = _int(cfg, "sliding_window")
            arch["sliding_window_layers"] = (layers + 1) // 2  # even layers are local
    if mt == "phi3" and cfg.get("sliding_window"):
        # Phi-3's config names a window, but engines allocate the full cache: count it all.
        arch["sliding_window"] = None
    if mt == "stablelm":
        arch["norm"] = "layernorm"
        arch["qkv_bias"] = _bool(cfg, "use_qkv_bias", False)
    return Architecture(**arch)


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
