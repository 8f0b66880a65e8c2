"""Continuous batching: one scheduler thread steps every active sequence in a shared forward pass.

How it works:

- A request arrives as a :class:`GenRequest` and waits in a bounded queue (``submit`` raises
  :class:`QueueFull` beyond ``max_batch_size + max_queue``, which the server turns into 503).
- Between decode steps the scheduler admits waiting requests into free batch rows: their prompts
  are prefilled (together, up to ``PREFILL_TOKENS``), each first token sampled, and their KV
  joins the running batch's cache (``llmops.backend.batches``: a row per request in
  ``SlotKV``, or transformers' cache left-padded for the models the slots do not cover).
- A decode step feeds every row's last token at once, with explicit ``position_ids`` (so a
  row's positions do not depend on its neighbours) and a mask that hides what is not its own.
  Rows leave the batch as soon as they finish (EOS, stop string, max_tokens, context limit) or
  their client disconnects.
- Each request gets its own ``torch.Generator`` (seeded when ``seed`` is given), its own
  temperature/top_p and its own stop strings, and tokens go back to the request's asyncio queue
  through ``loop.call_soon_threadsafe``: no response ever carries another row's tokens.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmops.backend.batches import PaddedBatch, SlotBatch, slot_order
from llmops.backend.loader import LoadedModel
from llmops.backend.metrics import Metrics
from llmops.errors import LlmopsError

log = logging.getLogger("llmops.backend")

_ids = itertools.count(1)


#: Prompt tokens prefilled together in one packed forward pass (a longer prompt goes alone).
#: Bounds the packed attention mask and activations (1,024 tokens: a few tens of MB).
PREFILL_TOKENS = 1024


class EngineSetupError(LlmopsError):
    """The engine cannot run this model the way it was asked to."""


class QueueFull(Exception):
    """The batch and the waiting queue are both full."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings. ``temperature == 0`` means greedy."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Event:
    """What the scheduler sends back to a request's handler."""

    kind: str  # "token" | "finish" | "error"
    text: str = ""
    token_id: int | None = None
    logprob: float | None = None
    special: bool = False
    finish_reason: str | None = None  # "stop" | "length"
    stop_kind: str | None = None  # "eos_token" | "stop_sequence" | "length"
    full_text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class GenRequest:
    """One generation request travelling between an HTTP handler and the scheduler."""

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived_s: float = field(default_factory=time.monotonic)
    first_token_s: float | None = None
    # scheduler-side state
    generated: list[int] = field(default_factory=list)
    sent_chars: int = 0
    position: int = 0
    last_token: int = 0
    generator: Any = None
    done: bool = False

    def cancel(self) -> None:
        """Called by the handler when its client goes away; the slot is freed next step."""
        self.cancelled.set()

    def _post(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is closed (server shutting down)
            self.cancelled.set()


class Engine:
    """The scheduler thread and its batch state. Create it, ``start()`` it, ``submit()`` to it."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch_size: int = 16,
        max_queue: int = 64,
        metrics: Metrics | None = None,
        kv: str = "auto",
    ) -> None:
        import torch

        self.torch = torch
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = torch.device(loaded.device)
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max(0, max_queue)
        self.metrics = metrics or Metrics()
        self._waiting: collections.deque[GenRequest] = collections.deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._rows: list[GenRequest] = []
        self._thread: threading.Thread | None = None
        self.steps = 0
        self.error: BaseException | None = None
        self.kv_reason = ""
        self._batch = self._pick_batch(kv)
        self._special = frozenset(getattr(self.tokenizer, "all_special_ids", ()) or ())

    def _pick_batch(self, kv: str) -> PaddedBatch | SlotBatch:
        """The slot cache when the model passes its self-check, else transformers' cache."""
        from llmops.backend.kvslots import self_check, supports_slots

        torch = self.torch
        if kv == "padded":
            self.kv_reason = "asked for"
            return PaddedBatch(torch, self.model, self.device)
        why = supports_slots(self.model) or self_check(self.model, torch, self.device)
        if why is None:
            self.kv_reason = "passed its self-check against a plain forward pass"
            return SlotBatch(
                torch, self.model, self.device, self.max_batch_size, self.loaded.context_length
            )
        if kv == "slots":
            raise EngineSetupError(
                f"--kv-cache slots does not work with this model: {why}",
                "leave --kv-cache out (auto) to use transformers' own cache for it",
            )
        self.kv_reason = f"slot cache not used: {why}"
        return PaddedBatch(torch, self.model, self.device)

    @property
    def kv_kind(self) -> str:
        """``slots`` or ``padded``: which KV cache this engine runs on."""
        return self._batch.kind

    # ---- handler side -------------------------------------------------------------------
    def submit(self, req: GenRequest) -> None:
        """Queue a request. Raises QueueFull when batch and queue are full."""
        with self._lock:
            if len(self._waiting) + len(self._rows) >= self.max_batch_size + self.max_queue:
                self.metrics.count_rejected()
                raise QueueFull
            self._waiting.append(req)
            self.metrics.set_load(queue_depth=len(self._waiting), active=len(self._rows))
        self._wakeup.set()

    def load(self) -> tuple[int, int]:
        """(waiting, active) right now."""
        with self._lock:
            return len(self._waiting), len(self._rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llmops-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- scheduler thread ---------------------------------------------------------------
    def _run(self) -> None:
        torch = self.torch
        try:
            with torch.inference_mode():
                while not self._stop.is_set():
                    self._admit()
                    self._drop(lambda r: r.cancelled.is_set(), cancelled=True)
                    if not self._rows:
                        self._wakeup.wait(timeout=0.5)
                        self._wakeup.clear()
                        continue
                    self._decode_step()
        except BaseException as exc:  # surface to handlers instead of hanging them
            log.exception("scheduler failed")
            self.error = exc
            with self._lock:
                pending = list(self._waiting) + self._rows
                self._waiting.clear()
            for req in pending:
                req._post(Event("error", text=f"{type(exc).__name__}: {exc}"))

    def _admit(self) -> None:
        """Move waiting requests into free rows: prefill them (together where the KV cache
        allows: one packed forward pass of up to :data:`PREFILL_TOKENS` prompt tokens) and
        sample each one's first token."""
        torch = self.torch
        admitted = False
        while len(self._rows) < self.max_batch_size:
            group: list[GenRequest] = []
            budget = PREFILL_TOKENS
            while len(self._rows) + len(group) < self.max_batch_size:
                with self._lock:
                    if not self._waiting:
                        break
                    n = len(self._waiting[0].prompt_ids)
                    if group and n > budget:
                        break
                    req = self._waiting.popleft()
                if req.cancelled.is_set():
                    self.metrics.count_cancelled()
                    continue
                budget -= n
                group.append(req)
            if not group:
                break
            for req in group:
                gen = torch.Generator(device=self.device)
                if req.params.seed is not None:
                    gen.manual_seed(req.params.seed)
                else:
                    gen.seed()
                req.generator = gen
            self._rows.extend(group)  # first, so that a failing forward pass reaches them
            admitted = True
            logits = self._batch.prefill_many([r.prompt_ids for r in group])
            for req in group:
                req.position = len(req.prompt_ids)
                self.metrics.add_tokens(prompt=len(req.prompt_ids))
            for req, (token, logprob) in zip(group, self._sample(logits, group), strict=True):
                self._accept_token(req, token, logprob)
        if admitted:
            self._batch.commit()
            self._drop(lambda r: r.done)
        with self._lock:
            self.metrics.set_load(queue_depth=len(self._waiting), active=len(self._rows))

    def _drop(self, predicate: Any, *, cancelled: bool = False) -> None:
        """Remove rows matching ``predicate`` from the batch."""
        gone = {i for i, r in enumerate(self._rows) if predicate(r)}
        if not gone:
            return
        if cancelled:
            for _ in gone:
                self.metrics.count_cancelled()
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self._batch.keep(keep)
        order = keep if self._batch.kind == "padded" else slot_order(len(self._rows), gone)
        self._rows = [self._rows[i] for i in order]

    def _decode_step(self) -> None:
        rows = self._rows
        logits = self._batch.decode([r.last_token for r in rows], [r.position for r in rows])
        self.steps += 1
        self.metrics.observe_batch(len(rows))
        for r in rows:
            r.position += 1
        for r, (token, logprob) in zip(rows, self._sample(logits, rows), strict=True):
            self._accept_token(r, token, logprob)
        self._drop(lambda r: r.done)

    def _sample(self, logits: Any, rows: list[GenRequest]) -> list[tuple[int, float]]:
        """One token per row: greedy rows take the argmax, the others sample with their own
        temperature, top-p and generator. The whole batch is scaled, sorted and cut at once;
        only the draw itself is per row (each request has its own seeded generator)."""
        torch = self.torch
        logits = logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logits.argmax(dim=-1)
        hot = [i for i, r in enumerate(rows) if r.params.temperature > 0]
        if hot:
            index = torch.tensor(hot, device=logits.device)
            temps = torch.tensor(
                [rows[i].params.temperature for i in hot], device=logits.device
            ).unsqueeze(1)
            scaled = logits.index_select(0, index) / temps
            top_p = [rows[i].params.top_p for i in hot]
            if any(p < 1.0 for p in top_p):
                sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
                probs = torch.softmax(sorted_logits, dim=-1)
                # drop tokens once the mass before them already exceeds top_p (keep >= 1)
                limit = torch.tensor(top_p, device=logits.device).unsqueeze(1)
                cut = (probs.cumsum(dim=-1) - probs) > limit
                sorted_logits = sorted_logits.masked_fill(cut, float("-inf"))
                scaled = torch.full_like(scaled, float("-inf")).scatter(1, order, sorted_logits)
            probs = torch.softmax(scaled, dim=-1)
            for j, i in enumerate(hot):
                picked[i] = torch.multinomial(probs[j], 1, generator=rows[i].generator)[0]
        chosen = logprobs.gather(1, picked.unsqueeze(1)).squeeze(1)
        return list(zip(picked.tolist(), chosen.tolist(), strict=True))

    def _accept_token(self, req: GenRequest, token: int, logprob: float) -> None:
        """Record a sampled token, stream the text it completes, and decide whether to stop."""
        now = time.monotonic()
        if req.first_token_s is None:
            req.first_token_s = now
            self.metrics.observe_ttft(now - req.arrived_s)
        req.last_token = token
        self.metrics.add_tokens(generated=1)
        eos = token in self.loaded.eos_token_ids
        if not eos:
            req.generated.append(token)
        text = self.tokenizer.decode(req.generated, skip_special_tokens=True)
        stop_kind: str | None = "eos_token" if eos else None
        if stop_kind is None:
            for s in req.params.stop:
                idx = text.find(s, max(0, req.sent_chars - len(s)))
                if idx != -1:
                    text, stop_kind = text[:idx], "stop_sequence"
                    break
        n_out = len(req.generated) + (1 if eos else 0)
        if stop_kind is None and n_out >= req.params.max_tokens:
            stop_kind = "length"
        if stop_kind is None and req.position + 1 >= self.loaded.context_length:
            stop_kind = "length"
        if stop_kind is None:
            safe = len(text)
            if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
                safe = len(text.rstrip("\ufffd"))
            for s in req.params.stop:  # hold back a tail that may become a stop string
                for k in range(min(len(s) - 1, safe), 0, -1):
                    if text[:safe].endswith(s[:k]):
                        safe -= k
                        break
            delta = text[req.sent_chars : max(safe, req.sent_chars)]
        else:
            delta = text[req.sent_chars :]
        req.sent_chars += len(delta)
        special = eos or token in self._special
        req._post(Event("token", text=delta, token_id=token, logprob=logprob, special=special))
        if stop_kind is not None:
            req.done = True
            log.debug(
                "request %d: %d prompt + %d generated tokens, first token %.3fs, total %.3fs",
                req.id,
                len(req.prompt_ids),
                n_out,
                (req.first_token_s or now) - req.arrived_s,
                now - req.arrived_s,
            )
            req._post(
                Event(
                    "finish",
                    finish_reason="length" if stop_kind == "length" else "stop",
                    stop_kind=stop_kind,
                    full_text=text,
                    prompt_tokens=len(req.prompt_ids),
                    completion_tokens=n_out,
                )
            )
