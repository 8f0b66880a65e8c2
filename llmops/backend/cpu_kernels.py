"""bf16 matmuls on the CPU with oneDNN weights packed once at load.

``torch.nn.Linear`` in bf16 on a CPU reorders its weight into oneDNN's blocked layout on every
call. Packing every weight once (what ``torch.compile``'s freezing pass does, without compiling)
and calling oneDNN's linear directly gives the same numbers, bit for bit, in less time: on a
2-core AMD EPYC (AVX512-BF16), 1.3-1.8x per matmul for SmolLM2's shapes at batch 1 and 16
(``python benchmarks/backend_throughput.py`` measures the whole server).

:func:`prepack_linears` swaps each bf16 ``Linear`` of a CPU model for a :class:`PackedLinear`,
then runs the model on a short random prompt before and after; if anything differs or fails it
puts the original modules back. Nothing here runs on a GPU or for fp32 weights.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("llmops.backend")


def _packed_linear_class(torch: Any) -> Any:
    class PackedLinear(torch.nn.Module):  # type: ignore[misc]
        """A ``Linear`` whose weight lives in oneDNN's packed layout (inference only)."""

        def __init__(self, linear: Any) -> None:
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)
            self.packed_bias = None if linear.bias is None else linear.bias.detach()

        def forward(self, x: Any) -> Any:
            return torch.ops.mkldnn._linear_pointwise(
                x, self.packed, self.packed_bias, "none", [], ""
            )

    return PackedLinear


def can_prepack(torch: Any) -> str | None:
    """None when this torch can pack bf16 weights for oneDNN here, else why not."""
    try:
        if not torch.backends.mkldnn.is_available():
            return "this torch has no oneDNN"
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "oneDNN has no bf16 kernels for this CPU"
    except (AttributeError, RuntimeError) as exc:
        return f"oneDNN cannot be queried: {exc}"
    return None


def prepack_linears(model: Any, torch: Any) -> tuple[int, str]:
    """Pack every bf16 ``Linear`` of a CPU model; returns (how many, why none when 0)."""
    why = can_prepack(torch)
    if why is not None:
        return 0, why
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
        and child.weight.dtype == torch.bfloat16
        and child.weight.device.type == "cpu"
    ]
    if not targets:
        return 0, "no bf16 Linear layers on the CPU"
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    if vocab < 8:
        return 0, "no vocab_size in the config"
    ids = torch.randint(3, vocab, (1, 6), generator=torch.Generator().manual_seed(0))
    packed_class = _packed_linear_class(torch)
    with torch.inference_mode():
        try:
            want = model(input_ids=ids, use_cache=False).logits.float()
            for parent, name, child in targets:
                setattr(parent, name, packed_class(child))
            got = model(input_ids=ids, use_cache=False).logits.float()
            scale = float(want.abs().max()) or 1.0
            if float((got - want).abs().max()) > 0.01 * scale:
                raise ValueError("packed weights change the logits")
        except Exception as exc:  # put the plain modules back: correctness first
            for parent, name, child in targets:
                setattr(parent, name, child)
            return 0, f"{type(exc).__name__}: {exc}"
    return len(targets), ""
