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

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def q_dim(self) -> int:
        return self.attention_heads * self.head_dim

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
    trust_remote_code: bool = False
    notes: str = ""
    source: str = ""  # recipes/FILE.yaml | hub:REPO | gguf:PATH
    # (folder, file, bytes) of a GGUF file a Python package ships for this model (found by
    # the catalog when it resolves the model; llama.cpp serves it with `-m`)
    bundled_gguf: tuple[str, str, int] | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.name
