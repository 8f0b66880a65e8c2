"""The fast KV cache: one growing buffer per layer, a row per running request, column = position.

transformers' ``DynamicCache`` appends the same number of columns to every row, so a batch of
requests at different lengths has to be left-padded and re-padded whenever one joins or leaves
(copying every layer's whole cache each time). Here every row keeps its own length instead:

- row ``i``'s token at position ``p`` lives in column ``p`` of every layer's buffer, so a prompt
  is written once at columns ``[0, n)`` and each decoded token at its own row's next column;
- the attention mask is built from the per-row lengths in one comparison (no mask machinery of
  transformers runs: a 4-D mask is passed through as-is);
- a finished row is replaced by the last row (one row copied per layer), so the batch stays
  dense and nothing else moves;
- buffers grow by doubling in both the row and the column dimension, so memory follows what is
  running (bounded by ``--max-batch-size`` rows of ``--context-length`` columns), never a fixed
  preallocation.

The model sees this object as its ``cache``: attention layers call ``update(k, v, layer_idx)``.
Only models whose every layer is plain full attention with SDPA use it; the engine checks each
model against a full forward pass at load time (:func:`self_check`) and falls back to
transformers' own cache otherwise.
"""

from __future__ import annotations

from typing import Any


class SlotKV:
    """Per-layer K/V buffers of shape ``(rows, kv_heads, columns, head_dim)`` plus row lengths."""

    def __init__(self, torch: Any, device: Any, max_rows: int, max_len: int) -> None:
        self.torch = torch
        self.device = device
        self.max_rows = max_rows
        self.max_len = max_len
        self.k: list[Any] = []
        self.v: list[Any] = []
        self.lengths: list[int] = []  # tokens stored per row
        self._rows_cap = 0
        self._cols_cap = 0
        self._mode = "decode"
        self._segments: list[tuple[int, int, int]] = []
        self._index: Any = None  # decode: the column each row writes, shape (rows,)
        self._arange: Any = None
        self._cols = 0

    # ---- what the engine calls ----------------------------------------------------------
    @property
    def rows(self) -> int:
        return len(self.lengths)

    def reserve(self, rows: int, cols: int) -> None:
        """Make room for ``rows`` rows of ``cols`` columns (doubling, capped at the limits)."""
        want_r = self._rows_cap
        while want_r < rows:
            want_r = min(self.max_rows, max(1, want_r * 2))
            if want_r >= self.max_rows:
                want_r = max(want_r, rows)
                break
        want_c = self._cols_cap
        while want_c < cols:
            want_c = min(self.max_len, max(64, want_c * 2))
            if want_c >= self.max_len:
                want_c = max(want_c, cols)
                break
        if want_r == self._rows_cap and want_c == self._cols_cap:
            return
        torch = self.torch
        for i, (k, v) in enumerate(zip(self.k, self.v, strict=True)):
            nk = k.new_zeros((want_r, k.shape[1], want_c, k.shape[3]))
            nv = v.new_zeros((want_r, v.shape[1], want_c, v.shape[3]))
            r, c = self._rows_cap, self._cols_cap
            nk[:r, :, :c] = k
            nv[:r, :, :c] = v
            self.k[i], self.v[i] = nk, nv
        self._rows_cap, self._cols_cap = want_r, want_c
        self._arange = torch.arange(want_r, device=self.device)

    def begin_packed_prefill(self, sizes: list[int]) -> tuple[list[int], Any, Any]:
        """Open a row per prompt for one forward pass over all of them, packed in one sequence.

        The prompts are concatenated into a single row of ``sum(sizes)`` tokens; each attends
        only to itself (a block-diagonal causal mask) and counts its positions from 0, and each
        segment's keys and values land in its own row at columns ``[0, n)``. Returns the new
        slots, the packed ``position_ids`` and the 4-D mask; the logits to keep are each
        segment's last index (``offsets``).
        """
        torch = self.torch
        first = self.rows
        total = sum(sizes)
        self.reserve(first + len(sizes), max(sizes) + 1)
        self._mode = "prefill"
        self._segments = []
        pos_parts, offset = [], 0
        seg = torch.empty(total, dtype=torch.long, device=self.device)
        for i, n in enumerate(sizes):
            self._segments.append((first + i, offset, n))
            self.lengths.append(n)
            pos_parts.append(torch.arange(n, device=self.device))
            seg[offset : offset + n] = i
            offset += n
        positions = torch.cat(pos_parts)
        causal = torch.ones((total, total), dtype=torch.bool, device=self.device).tril()
        mask = causal & (seg[:, None] == seg[None, :])
        return list(range(first, first + len(sizes))), positions[None], mask[None, None]

    def begin_decode(self) -> tuple[Any, Any]:
        """Set up one decode step for every row: returns ``(position_ids, attention_mask)``."""
        torch = self.torch
        cols = max(self.lengths) + 1
        self.reserve(self.rows, cols)
        self._mode = "decode"
        pos = torch.tensor(self.lengths, dtype=torch.long, device=self.device)
        self._index = pos
        colids = self._arange_cols(cols)
        mask = colids[None, :] <= pos[:, None]
        for i in range(self.rows):
            self.lengths[i] += 1
        self._cols = cols
        return pos[:, None], mask[:, None, None, :]

    def remove(self, slot: int) -> None:
        """Drop a row, moving the last row into its place (the caller reorders its rows alike)."""
        last = self.rows - 1
        if slot != last:
            n = self.lengths[last]
            for k, v in zip(self.k, self.v, strict=True):
                k[slot, :, :n] = k[last, :, :n]
                v[slot, :, :n] = v[last, :, :n]
            self.lengths[slot] = n
        self.lengths.pop()

    def _arange_cols(self, cols: int) -> Any:
        return self.torch.arange(cols, device=self.device)

    # ---- what the model calls -----------------------------------------------------------
    def update(self, key_states: Any, value_states: Any, layer_idx: int, *_: Any, **__: Any) -> Any:
        if layer_idx == len(self.k):  # first use of this layer: take shape and dtype from it
            shape = (self._rows_cap, key_states.shape[1], self._cols_cap, key_states.shape[3])
            vshape = (self._rows_cap, value_states.shape[1], self._cols_cap, value_states.shape[3])
            self.k.append(key_states.new_zeros(shape))
            self.v.append(value_states.new_zeros(vshape))
        k, v = self.k[layer_idx], self.v[layer_idx]
        if self._mode == "prefill":  # one packed row: scatter each prompt into its own row
            for slot, offset, n in self._segments:
                k[slot, :, :n] = key_states[0, :, offset : offset + n]
                v[slot, :, :n] = value_states[0, :, offset : offset + n]
            return key_states, value_states
        rows = key_states.shape[0]
        ar = self._arange[:rows]
        k[ar, :, self._index] = key_states[:, :, 0]
        v[ar, :, self._index] = value_states[:, :, 0]
        return k[:rows, :, : self._cols], v[:rows, :, : self._cols]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return max(self.lengths, default=0)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))


def supports_slots(model: Any) -> str | None:
    """None when ``model`` can run on :class:`SlotKV`, else why not (logged by the engine)."""
    import inspect

    config = getattr(model, "config", None)
    if config is None:
        return "the model has no config"
    impl = getattr(config, "_attn_implementation", None)
    if impl != "sdpa":
        return f"attention implementation {impl!r} (the slot cache passes an SDPA boolean mask)"
    layer_types = set(getattr(config, "layer_types", None) or ())
    if layer_types - {"full_attention"}:
        return f"layer types {sorted(layer_types)} (only full attention)"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "the model's forward cannot be inspected"
    if "cache" not in params:
        return "the model's forward takes no `cache` argument (transformers < 5)"
    return None


def self_check(model: Any, torch: Any, device: Any) -> str | None:
    """Run a short prompt through :class:`SlotKV` and through a plain forward; compare logits.

    Two rows at different lengths, prefilled together in one packed pass, then two decode
    steps, so that per-row columns, masks and positions are all exercised. None when they agree, else what differed.
    """
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    if vocab < 8:
        return "no vocab_size in the config"
    gen = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(3, vocab, (7,), generator=gen).tolist(),
        torch.randint(3, vocab, (4,), generator=gen).tolist(),
    ]
    nxt = [torch.randint(3, vocab, (2,), generator=gen).tolist() for _ in prompts]
    kv = SlotKV(torch, device, max_rows=2, max_len=64)
    got: list[list[Any]] = [[], []]
    try:
        with torch.inference_mode():
            # both prompts in one packed prefill, as the engine admits them
            _, pos, mask = kv.begin_packed_prefill([len(p) for p in prompts])
            ids = torch.tensor([prompts[0] + prompts[1]], device=device)
            last = torch.tensor([len(prompts[0]) - 1, len(prompts[0]) + len(prompts[1]) - 1])
            out = model(
                input_ids=ids, attention_mask=mask, position_ids=pos, cache=kv, logits_to_keep=last
            )
            for i in range(2):
                got[i].append(out.logits[0, i].float())
            for step in range(2):
                pos, mask = kv.begin_decode()
                ids = torch.tensor([[n[step]] for n in nxt], device=device)
                out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=kv)
                for i in range(2):
                    got[i].append(out.logits[i, -1].float())
            for i, p in enumerate(prompts):
                full = torch.tensor([p + nxt[i]], device=device)
                ref = model(input_ids=full, use_cache=False).logits[0].float()
                want = [ref[len(p) - 1], ref[len(p)], ref[len(p) + 1]]
                for a, b in zip(got[i], want, strict=True):
                    scale = float(b.abs().max()) or 1.0
                    if float((a - b).abs().max()) > 0.05 * scale:
                        return "logits differ from a plain forward pass"
    except Exception as exc:  # any incompatibility means: use transformers' cache
        return f"{type(exc).__name__}: {exc}"
    return None
