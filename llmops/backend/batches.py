"""The running batch's KV cache behind one interface (``prefill_many``, ``commit``, ``decode``,
``keep``), in two kinds the engine chooses between at load:

- :class:`SlotBatch`, the fast path: :class:`~llmops.backend.kvslots.SlotKV`, a row per request,
  column = position, never re-padded; waiting prompts are prefilled together in one packed
  forward pass, and a row that leaves is replaced by the last one (``slot_order``).
- :class:`PaddedBatch`, for models the slots do not cover (sliding-window, hybrid or linear
  attention, non-SDPA attention): transformers' own cache, each prompt prefilled on its own and
  merged into the batch left-padded to a common length; leading padding columns are trimmed.
"""

from __future__ import annotations

from typing import Any


def _cache_kv(cache: Any) -> list[tuple[Any, Any]]:
    """(keys, values) per layer for transformers' DynamicCache, old and new layouts."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


_growing_layer: Any = None


def _growing_layer_class() -> Any:
    """A DynamicLayer that appends into preallocated room instead of ``torch.cat`` per token.

    transformers' DynamicLayer concatenates the whole cache on every decode step (a quarter of
    a batched CPU step in profiles); this layer doubles its buffer when full, so appends are
    amortised O(1). None when this transformers has no DynamicLayer (then DynamicCache is used).
    """
    global _growing_layer
    if _growing_layer is not None:
        return _growing_layer
    import importlib

    try:  # as an untyped module: transformers' own annotations vary between releases
        DynamicLayer: Any = importlib.import_module("transformers.cache_utils").DynamicLayer
    except (ImportError, AttributeError):
        return None
    import torch

    class GrowingLayer(DynamicLayer):  # type: ignore[misc]
        def update(self, key_states: Any, value_states: Any, *_: Any, **__: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._n = 0
                self._kbuf: Any = None
                self._vbuf: Any = None
            n, add = self._n, key_states.shape[-2]
            if self._kbuf is None or n + add > self._kbuf.shape[-2]:
                cap = max(2 * n, n + add + 32)
                shape = (*key_states.shape[:-2], cap, key_states.shape[-1])
                kbuf = key_states.new_empty(shape)
                vbuf = value_states.new_empty(shape[:-1] + (value_states.shape[-1],))
                if n:
                    kbuf[..., :n, :] = self._kbuf[..., :n, :]
                    vbuf[..., :n, :] = self._vbuf[..., :n, :]
                self._kbuf, self._vbuf = kbuf, vbuf
            self._kbuf[..., n : n + add, :] = key_states
            self._vbuf[..., n : n + add, :] = value_states
            self._n = n + add
            self.keys = self._kbuf[..., : self._n, :]
            self.values = self._vbuf[..., : self._n, :]
            return self.keys, self.values

    del torch
    _growing_layer = GrowingLayer
    return GrowingLayer


def _make_cache(kv: list[tuple[Any, Any]]) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    layer = _growing_layer_class()
    if layer is not None and hasattr(cache, "layer_class_to_replicate"):
        cache.layer_class_to_replicate = layer
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    return cache


class PaddedBatch:
    """The general path: transformers' own cache, rows left-padded to a common length.

    Used for models the slot cache does not cover (sliding-window, hybrid or linear-attention
    layers, non-SDPA attention). Joining or leaving re-pads every layer's cache.
    """

    kind = "padded"

    def __init__(self, torch: Any, model: Any, device: Any) -> None:
        import inspect

        self.torch, self.model, self.device = torch, model, device
        params = inspect.signature(model.forward).parameters
        self._kw = "cache" if "cache" in params else "past_key_values"
        self._cache: Any = None
        self._mask: Any = None
        self._pending: list[list[tuple[Any, Any]]] = []

    def prefill_many(self, prompts: list[list[int]]) -> Any:
        """Prefill each prompt on its own; returns each one's last logits, shape (k, vocab)."""
        torch = self.torch
        rows = []
        for ids in prompts:
            cache = _make_cache([])
            t = torch.tensor([ids], dtype=torch.long, device=self.device)
            out = self.model(input_ids=t, use_cache=True, logits_to_keep=1, **{self._kw: cache})
            self._pending.append(_cache_kv(cache))
            rows.append(out.logits[:, -1, :])
        return torch.cat(rows, dim=0)

    def commit(self) -> None:
        """Merge the rows prefilled since the last call into the running batch."""
        if self._pending:
            self._merge(self._pending)
            self._pending = []

    def _merge(self, kvs: list[list[tuple[Any, Any]]]) -> None:
        torch = self.torch
        parts: list[list[tuple[Any, Any]]] = []
        masks: list[Any] = []
        lengths: list[int] = []
        if self._mask is not None:
            parts.append(_cache_kv(self._cache))
            masks.append(self._mask)
            lengths.append(self._mask.shape[1])
        for kv in kvs:
            parts.append(kv)
            n = kv[0][0].shape[-2]
            masks.append(torch.ones((1, n), dtype=torch.long, device=self.device))
            lengths.append(n)
        total = max(lengths)

        def pad(t: Any, width: int) -> Any:
            if width == 0:
                return t
            shape = list(t.shape)
            shape[-2] = width
            return torch.cat([t.new_zeros(shape), t], dim=-2)

        layers = []
        for li in range(len(parts[0])):
            ks = [pad(p[li][0], total - n) for p, n in zip(parts, lengths, strict=True)]
            vs = [pad(p[li][1], total - n) for p, n in zip(parts, lengths, strict=True)]
            layers.append((torch.cat(ks, dim=0), torch.cat(vs, dim=0)))
        padded = [
            torch.cat([m.new_zeros((m.shape[0], total - n)), m], dim=1) if total > n else m
            for m, n in zip(masks, lengths, strict=True)
        ]
        self._cache = _make_cache(layers)
        self._mask = torch.cat(padded, dim=0)

    def decode(self, tokens: list[int], positions: list[int]) -> Any:
        torch = self.torch
        n = len(tokens)
        ids = torch.tensor([[t] for t in tokens], dtype=torch.long, device=self.device)
        pos = torch.tensor([[p] for p in positions], dtype=torch.long, device=self.device)
        self._mask = torch.cat(
            [self._mask, torch.ones((n, 1), dtype=torch.long, device=self.device)], dim=1
        )
        out = self.model(
            input_ids=ids,
            attention_mask=self._mask,
            position_ids=pos,
            use_cache=True,
            **{self._kw: self._cache},
        )
        return out.logits[:, -1, :]

    def keep(self, keep: list[int]) -> None:
        """Keep only these rows (in this order); trim columns that now hold only padding."""
        torch = self.torch
        if not keep:
            self._cache, self._mask = None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self._mask.index_select(0, index)
        start = int((mask.sum(dim=0) > 0).nonzero()[0].item())
        self._mask = mask[:, start:]
        self._cache = _make_cache(
            [
                (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
                for k, v in _cache_kv(self._cache)
            ]
        )


class SlotBatch:
    """The fast path: :class:`~llmops.backend.kvslots.SlotKV`, a row per request, no re-padding."""

    kind = "slots"

    def __init__(self, torch: Any, model: Any, device: Any, max_rows: int, max_len: int) -> None:
        from llmops.backend.kvslots import SlotKV

        self.torch, self.model, self.device = torch, model, device
        self.kv = SlotKV(torch, device, max_rows=max_rows, max_len=max_len)

    def prefill_many(self, prompts: list[list[int]]) -> Any:
        """All prompts in one forward pass, packed into one sequence (see ``SlotKV``); returns
        each one's last logits, shape (k, vocab)."""
        torch = self.torch
        sizes = [len(p) for p in prompts]
        _, pos, mask = self.kv.begin_packed_prefill(sizes)
        flat = torch.tensor([[t for p in prompts for t in p]], dtype=torch.long, device=self.device)
        last = torch.tensor(sizes, device=self.device).cumsum(0) - 1
        out = self.model(
            input_ids=flat,
            attention_mask=mask,
            position_ids=pos,
            cache=self.kv,
            logits_to_keep=last,
        )
        return out.logits[0]

    def commit(self) -> None:
        """Prefilled rows are already in place."""

    def decode(self, tokens: list[int], positions: list[int]) -> Any:
        torch = self.torch
        pos, mask = self.kv.begin_decode()
        ids = torch.tensor([[t] for t in tokens], dtype=torch.long, device=self.device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=self.kv)
        return out.logits[:, -1, :]

    def keep(self, keep: list[int]) -> None:
        """Keep rows ``keep`` (ascending); the rest are removed from the highest slot down.

        Removal moves the last row into the freed slot, so the surviving order is the one
        :func:`slot_order` computes for the same removals.
        """
        gone = sorted(set(range(self.kv.rows)) - set(keep), reverse=True)
        for slot in gone:
            self.kv.remove(slot)


def slot_order(n: int, gone: set[int]) -> list[int]:
    """The row order after removing ``gone`` from ``n`` rows the way :class:`SlotBatch` does."""
    order = list(range(n))
    for slot in sorted(gone, reverse=True):
        order[slot] = order[-1]
        order.pop()
    return order
