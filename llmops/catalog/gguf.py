"""Local GGUF files: architecture and real tensor bytes from the header (the ``gguf`` package).

Nothing is dequantized or loaded: ``gguf.GGUFReader`` memory-maps the file and we read the
metadata key/values and each tensor's type and byte size. The weight inventory is then exact
(the best practice of gguf-parser/Ollama: sum real tensor sizes, peers-and-estimation.md B.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError, UsageError
from llmops.plan.model import Architecture, Formats, GgufFile, ModelSpec, WeightInventory

# llama.cpp's LLAMA_FTYPE values (general.file_type)
FILE_TYPES = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    3: "q4_1",
    7: "q8_0",
    8: "q5_0",
    9: "q5_1",
    10: "q2_k",
    11: "q3_k_s",
    12: "q3_k_m",
    13: "q3_k_l",
    14: "q4_k_s",
    15: "q4_k_m",
    16: "q5_k_s",
    17: "q5_k_m",
    18: "q6_k",
    32: "bf16",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.")


class GgufError(LlmopsError):
    """A GGUF file cannot be read."""


@dataclass(frozen=True)
class GgufHeader:
    path: str
    arch_name: str
    metadata: dict[str, Any]
    tensors: tuple[tuple[str, str, int, int], ...]  # name, ggml type, elements, bytes
    file_type: str | None

    @property
    def tensor_bytes(self) -> int:
        return sum(t[3] for t in self.tensors)


def read_header(path: Path) -> GgufHeader:
    """Read a GGUF file's metadata and tensor table.

    Raises:
        UsageError: the file does not exist. GgufError: it is not a readable GGUF file.
    """
    if not path.is_file():
        raise UsageError(f"GGUF file {path} does not exist", "give the path of a .gguf file")
    try:
        from gguf import GGUFReader
    except ImportError as e:
        raise GgufError(
            f"reading {path.name} needs the `gguf` package",
            "pip install 'llmops[backend]' (or just `pip install gguf`)",
        ) from e
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError, KeyError) as e:
        raise GgufError(
            f"{path.name} is not a readable GGUF file: {e}",
            "check the file (an interrupted download?) or download it again with `llmops pull`",
        ) from e
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.model":
            if key == "tokenizer.ggml.tokens":
                meta["tokenizer.ggml.tokens.count"] = len(field.data)
            continue
        try:
            meta[key] = field.contents()
        except Exception:  # an exotic value type: not needed for sizes
            continue
    tensors = tuple(
        (t.name, t.tensor_type.name.lower(), int(t.n_elements), int(t.n_bytes))
        for t in reader.tensors
    )
    ft = meta.get("general.file_type")
    return GgufHeader(
        path=str(path),
        arch_name=str(meta.get("general.architecture", "")),
        metadata=meta,
        tensors=tensors,
        file_type=FILE_TYPES.get(ft) if isinstance(ft, int) else None,
    )


def inventory_from_header(h: GgufHeader) -> WeightInventory:
    """Bytes by place: ``token_embd``, ``output``, each ``blk.N``, the rest (norms)."""
    embed = head = other = 0
    layers: dict[int, int] = {}
    for name, _t, _n, nbytes in h.tensors:
        m = _BLOCK.match(name)
        if m:
            i = int(m.group(1))
            layers[i] = layers.get(i, 0) + nbytes
        elif name == "token_embd.weight":
            embed += nbytes
        elif name == "output.weight":
            head += nbytes
        else:
            other += nbytes
    n = max(layers) + 1 if layers else 0
    return WeightInventory(
        embed_bytes=embed,
        lm_head_bytes=head,
        layer_bytes=tuple(layers.get(i, 0) for i in range(n)),
        other_bytes=other,
        tied=head == 0,
        source=f"gguf:{h.path}",
    )


def architecture_from_header(h: GgufHeader) -> Architecture:
    """The Architecture a GGUF header describes (llama.cpp key names).

    Raises:
        GgufError: a key the estimator needs is missing.
    """
    a = h.arch_name
    md = h.metadata

    def get(key: str, default: Any = None) -> Any:
        v = md.get(f"{a}.{key}", default)
        if v is None:
            raise GgufError(
                f"{Path(h.path).name}: header lacks {a}.{key}",
                "this GGUF architecture is not supported; use a catalog model",
            )
        return v

    hidden = int(get("embedding_length"))
    heads = int(get("attention.head_count"))
    kv = md.get(f"{a}.attention.head_count_kv", heads)
    names = {t[0] for t in h.tensors}
    vocab = md.get(f"{a}.vocab_size") or md.get("tokenizer.ggml.tokens.count")
    if vocab is None:
        embd = next((t for t in h.tensors if t[0] == "token_embd.weight"), None)
        vocab = embd[2] // hidden if embd else 0
    experts = int(md.get(f"{a}.expert_count", 0) or 0)
    window = md.get(f"{a}.attention.sliding_window")
    layers = int(get("block_count"))
    return Architecture(
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=int(kv),
        head_dim=int(md.get(f"{a}.attention.key_length", hidden // heads)),
        intermediate_size=int(get("feed_forward_length")),
        vocab_size=int(vocab),
        max_position_embeddings=int(get("context_length")),
        tied_embeddings="output.weight" not in names,
        rope_theta=float(md.get(f"{a}.rope.freq_base", 10000.0)),
        experts=experts,
        experts_active=int(md.get(f"{a}.expert_used_count", 0) or 0),
        mlp="gated" if "blk.0.ffn_gate.weight" in names or experts else "plain",
        norm="layernorm" if "blk.0.attn_norm.bias" in names else "rms",
        sliding_window=int(window) if window else None,
        sliding_window_layers=(layers + 1) // 2
        if window and a == "gemma2"
        else (layers if window else 0),
        position="alibi" if a in ("mpt", "bloom") else "rope",
    )


def spec_from_gguf(path: Path) -> ModelSpec:
    """A ModelSpec for a local GGUF file; ``formats`` names the file as quant ``gguf``."""
    h = read_header(path)
    arch = architecture_from_header(h)
    name = str(h.metadata.get("general.name") or path.stem)
    return ModelSpec(
        name=path.stem,
        arch=arch,
        formats=Formats(
            gguf=str(path.parent), gguf_files=(GgufFile("gguf", path.name, path.stat().st_size),)
        ),
        display_name=f"{name} ({h.file_type or 'gguf'}, local file)",
        tasks=("chat",),
        source=f"gguf:{path}",
        notes=f"file type {h.file_type}; sizes from the header",
    )
