"""What the estimator knows about a model: architecture numbers, formats, weight inventories.

Pure data. ``llmops.catalog`` fills these from recipes/*.yaml, from a Hugging Face config.json
or from a GGUF header; ``llmops.plan.memory`` computes with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RopeScaling:
    """Rope scaling as a model's config declares it (or as fit proposes it)."""

    kind: str  # linear | dynamic | yarn | llama3 | longrope | ...
    factor: float
    original_context: int | None = None


@dataclass(frozen=True)
class Mla:
    """DeepSeek's multi-head latent attention (config keys of the same names).

    The KV cache holds one latent of ``kv_lora_rank + qk_rope_head_dim`` per token per layer,
    shared by all heads (vLLM's MLA layout), instead of 2 x heads x head_dim.
    """

    q_lora_rank: int  # 0: q is projected directly
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @property
    def latent(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class Architecture:
    """A decoder-only transformer's shape, with the numbers of its config.json.

    ``mlp`` is ``gated`` (gate/up/down, SwiGLU/GeGLU) or ``plain`` (up/down, GELU).
    ``norm`` is ``rms`` (weight), ``layernorm`` (weight + bias) or ``layernorm_nobias``.
    ``fused_qkv_bias`` etc. only change parameter counts by a few thousand; they are here so
    counts match the checkpoints exactly.
    """

    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tied_embeddings: bool = False
    rope_theta: float | None = 10000.0
    rope_scaling: RopeScaling | None = None
    experts: int = 0  # 0 = dense
    experts_active: int = 0
    mlp: str = "gated"  # gated | plain
    norm: str = "rms"  # rms | layernorm | layernorm_nobias
    norms_per_layer: int = 2
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None
    sliding_window_layers: int = 0  # how many layers use the window (gemma2: every other)
    position: str = "rope"  # rope | alibi
    # -- 2025-26 architectures (all default to "absent") --
    # indices of the layers that attend locally (sliding window, or Llama 4's chunked
    # attention): from ``layer_types``/``sliding_window_pattern``; () = the gemma2 rule above
    local_layers: tuple[int, ...] = ()
    qk_norm: bool = False  # RMSNorm on q and k per head (Qwen3, Gemma 3): 2 x head_dim
    attention_sinks: bool = False  # one learned sink logit per head per layer (gpt-oss)
    router_bias: bool = False  # the MoE router has a bias (gpt-oss)
    # transformers 5 holds this router (weight and e_score_correction_bias) in float32 whatever
    # the model dtype: DeepSeek-V3's `_keep_in_fp32_modules_strict` (modeling_deepseek_v3.py
    # l.551 at 5.24); what the torch engine loads, not what the checkpoint stores
    router_fp32: bool = False
    mla: Mla | None = None  # DeepSeek multi-head latent attention
    shared_expert_intermediate: int = 0  # width of the always-on shared expert(s), 0 = none
    dense_layers: tuple[int, ...] = ()  # MoE models: layers with a dense MLP instead
    dense_intermediate_size: int = 0  # ... and its width
    checkpoint_quant: str | None = None  # the checkpoint's own weight format: mxfp4 | fp8
    extra_params: int = 0  # weights outside the decoder (a vision tower), 16-bit
    # the decoder's config model_type ("llama4_text" inside a llama4 checkpoint): engines key
    # some memory rules on the architecture (SGLang's hybrid sliding-window pool)
    model_type: str = ""
    # a vision-language checkpoint (gemma3, llama4, mistral3 wrappers), with its vision
    # tower's num_hidden_layers and hidden_size when the config gives them (0: not given)
    multimodal: bool = False
    vision_layers: int = 0
    vision_hidden: int = 0
    # how the local layers attend: "sliding" (the last ``sliding_window`` tokens) or "chunked"
    # (Llama 4's attention_chunk_size: tokens of the same aligned chunk)
    local_kind: str = "sliding"

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def q_dim(self) -> int:
        if self.mla is not None:
            return self.attention_heads * (self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim)
        return self.attention_heads * self.head_dim

    def is_moe_layer(self, i: int) -> bool:
        return self.is_moe and i not in self.dense_layers

    def is_local(self, i: int) -> bool:
        """Whether layer ``i`` attends to at most ``sliding_window`` past tokens."""
        if not self.sliding_window:
            return False
        if self.local_layers:
            return i in self.local_layers
        n = self.sliding_window_layers
        # gemma2-style alternation: even layers local, odd layers global
        return bool(n) and (n >= self.layers or i % 2 == 0)

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def trained_context(self) -> int:
        """The context the model was trained for (its max_position_embeddings)."""
        return self.max_position_embeddings


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by role. ``layer_*`` are per transformer block (all blocks are alike)."""

    embed: int
    lm_head: int  # 0 when tied to the embedding
    final_norm: int
    layer_attn_q: int
    layer_attn_k: int
    layer_attn_v: int
    layer_attn_o: int
    layer_ffn_gate: int  # per expert for MoE; 0 for plain MLPs
    layer_ffn_up: int
    layer_ffn_down: int
    layer_router: int
    layer_norms: int
    layer_biases: int
    experts: int  # multiplier for the ffn matrices (1 for dense)
    layers: int

    @property
    def layer_matrices(self) -> int:
        attn = self.layer_attn_q + self.layer_attn_k + self.layer_attn_v + self.layer_attn_o
        ffn = (self.layer_ffn_gate + self.layer_ffn_up + self.layer_ffn_down) * self.experts
        return attn + ffn

    @property
    def per_layer(self) -> int:
        return self.layer_matrices + self.layer_router + self.layer_norms + self.layer_biases

    @property
    def total(self) -> int:
        return self.embed + self.lm_head + self.final_norm + self.per_layer * self.layers


@dataclass(frozen=True)
class WeightInventory:
    """Bytes of weights by where they go: embedding, output head, each block, the rest.

    Computed from an architecture and a quantization (``llmops.plan.quant``), or read from
    real tensors (a GGUF header, safetensors metadata). ``tied`` means the output head shares
    the embedding (``lm_head_bytes`` is then 0; llama.cpp still puts a copy on the GPU).
    """

    embed_bytes: int
    lm_head_bytes: int
    layer_bytes: tuple[int, ...]
    other_bytes: int
    tied: bool
    source: str  # computed:QUANT | gguf:PATH | safetensors:REPO

    @property
    def total_bytes(self) -> int:
        return self.embed_bytes + self.lm_head_bytes + sum(self.layer_bytes) + self.other_bytes


@dataclass(frozen=True)
class GgufFile:
    """One GGUF file of a model in one quantization."""

    quant: str
    file: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class Formats:
    """Where each format of a model lives. ``None``: that format is not published."""

    safetensors: str | None = None  # the fp16/bf16 repo
    dtype: str = "bf16"  # the safetensors checkpoint dtype: bf16 | fp16 | fp32
    gptq: str | None = None
    gptq_group_size: int = 128
    awq: str | None = None
    awq_group_size: int = 128
    gguf: str | None = None  # repo holding the GGUF files
    gguf_files: tuple[GgufFile, ...] = ()
    fp8: str | None = None  # a pre-quantized FP8 repo (else vLLM/TGI quantize on the fly)

    def gguf_file(self, quant: str) -> GgufFile | None:
        return next((f for f in self.gguf_files if f.quant == quant), None)


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry (one recipe model), or a model described by a Hub config."""

    name: str
    arch: Architecture
    formats: Formats = field(default_factory=Formats)
    display_name: str = ""
    aliases: tuple[str, ...] = ()
    family: str = ""
    tasks: tuple[str, ...] = ("chat",)
    gated: bool = False
    params: int | None = None  # the published parameter count, checked against the arch
    mmlu: float | None = None  # rough quality figure, used only to rank in `recommend`
    released: str = ""  # YYYY-MM-DD the weights were published (recipes)
    tier: int | None = None  # quality tier 1..5 (5: frontier open weights); `recommend` ranks by it
    trust_remote_code: bool = False
    # the authors' recommended sampling ({"temperature": .., "top_p": ..}) for servers to use
    # as request defaults where the weights ship no generation_config with them
    sampling: tuple[tuple[str, float], ...] = ()
    notes: str = ""
    source: str = ""  # recipes/FILE.yaml | hub:REPO | gguf:PATH
    # (folder, file, bytes) of a GGUF file a Python package ships for this model (found by
    # the catalog when it resolves the model; llama.cpp serves it with `-m`)
    bundled_gguf: tuple[str, str, int] | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.name
