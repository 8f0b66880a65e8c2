"""The backend's slot KV cache against transformers' own cache, on real (tiny, random) models.

The models are real transformers models built from small configs (random weights, no download);
only the tokenizer is a stand-in (token ids as text), since the engine uses it just to turn ids
into text. Every comparison is between two real code paths: the slot cache, the padded
DynamicCache path and a plain forward pass without any cache.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llmops.backend.batches import slot_order  # noqa: E402
from llmops.backend.config import check_precision, cpu_has_fast_bf16  # noqa: E402
from llmops.backend.engine import (  # noqa: E402
    Engine,
    EngineSetupError,
    GenRequest,
    SamplingParams,
)
from llmops.backend.kvslots import SlotKV, self_check, supports_slots  # noqa: E402
from llmops.backend.loader import LoadedModel  # noqa: E402

LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "vocab_size": 120,
    "max_position_embeddings": 256,
}


def tiny(model_type: str = "llama", attn: str = "sdpa", **extra: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(model_type, **{**LLAMA, **extra})
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    return model.eval()


class IdsTokenizer:
    """Token ids as text ("12 7 33 "): enough for the engine's streaming and stop logic."""

    all_special_ids: list[int] = []

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f"{i} " for i in ids)


def loaded(model: Any) -> LoadedModel:
    return LoadedModel(
        model=model,
        tokenizer=IdsTokenizer(),
        served_name="tiny",
        device="cpu",
        dtype="fp32",
        context_length=256,
        eos_token_ids=frozenset(),
        source="config",
    )


def generate(engine: Engine, prompts: list[list[int]], max_tokens: list[int]) -> list[str]:
    """Submit every prompt at once (greedy) and collect each request's full text."""

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        reqs = [
            GenRequest(prompt_ids=p, params=SamplingParams(max_tokens=n, temperature=0), loop=loop)
            for p, n in zip(prompts, max_tokens, strict=True)
        ]
        for r in reqs:
            engine.submit(r)
        texts = []
        for r in reqs:
            while True:
                ev = await asyncio.wait_for(r.queue.get(), 60)
                assert ev.kind != "error", ev.text
                if ev.kind == "finish":
                    texts.append(ev.full_text)
                    break
        return texts

    engine.start()
    try:
        return asyncio.run(run())
    finally:
        engine.stop()


PROMPTS = [[5, 9, 17, 3, 44, 8, 2], [7, 7, 1], [90, 11, 23, 56, 4], [31]]
LENGTHS = [12, 3, 20, 7]  # rows finish at different steps, so the batch is compacted mid-run


def reference(model: Any, prompt: list[int], n: int) -> str:
    """Greedy continuation with a full forward pass per token (no cache at all)."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            ids.append(int(logits.argmax()))
    return "".join(f"{i} " for i in ids[len(prompt) :])


def test_slot_cache_batches_like_single_requests_without_a_cache() -> None:
    model = tiny()
    engine = Engine(loaded(model), max_batch_size=3)  # 4 requests: one waits for a free row
    assert engine.kv_kind == "slots", engine.kv_reason
    got = generate(engine, PROMPTS, LENGTHS)
    want = [reference(model, p, n) for p, n in zip(PROMPTS, LENGTHS, strict=True)]
    assert got == want


def test_padded_path_agrees_with_the_slot_path() -> None:
    model = tiny()
    slots = generate(Engine(loaded(model), max_batch_size=4), PROMPTS, LENGTHS)
    padded_engine = Engine(loaded(model), max_batch_size=4, kv="padded")
    assert padded_engine.kv_kind == "padded"
    assert generate(padded_engine, PROMPTS, LENGTHS) == slots


def test_models_the_slot_cache_does_not_cover_fall_back_to_transformers_cache() -> None:
    sliding = tiny("mistral", sliding_window=4)
    assert "sliding" in (supports_slots(sliding) or "")
    engine = Engine(loaded(sliding), max_batch_size=2)
    assert engine.kv_kind == "padded"
    assert "sliding" in engine.kv_reason
    # and the fallback still generates what a cache-less forward pass does
    assert generate(engine, PROMPTS[:2], [6, 6]) == [reference(sliding, p, 6) for p in PROMPTS[:2]]

    eager = tiny(attn="eager")
    assert "eager" in (supports_slots(eager) or "")
    with pytest.raises(EngineSetupError, match="--kv-cache slots does not work"):
        Engine(loaded(eager), kv="slots")


def test_self_check_catches_a_cache_that_writes_the_wrong_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny()
    assert self_check(model, torch, torch.device("cpu")) is None
    real = SlotKV.begin_decode

    def off_by_one(self: SlotKV) -> Any:
        pos, mask = real(self)
        self._index = self._index + 1  # every row writes one column to the right
        return pos, mask

    monkeypatch.setattr(SlotKV, "begin_decode", off_by_one)
    assert self_check(model, torch, torch.device("cpu")) == (
        "logits differ from a plain forward pass"
    )


def test_buffers_grow_by_doubling_up_to_the_limits() -> None:
    kv = SlotKV(torch, torch.device("cpu"), max_rows=5, max_len=100)
    kv.reserve(1, 10)
    assert (kv._rows_cap, kv._cols_cap) == (1, 64)
    kv.reserve(3, 70)
    assert (kv._rows_cap, kv._cols_cap) == (4, 100)  # 128 columns would pass --context-length
    kv.reserve(5, 100)
    assert (kv._rows_cap, kv._cols_cap) == (5, 100)


def test_memory_follows_what_runs() -> None:
    model = tiny()
    engine = Engine(loaded(model), max_batch_size=16)
    generate(engine, [[3, 4, 5]], [5])
    kv = engine._batch.kv  # type: ignore[union-attr]
    per_cell = 2 * LLAMA["num_hidden_layers"] * 2 * (LLAMA["hidden_size"] // 4) * 4
    # one request of 8 tokens: one row of 64 columns, not 16 rows of 256
    assert kv.nbytes() == 1 * 64 * per_cell


def test_slot_order_matches_removal_by_moving_the_last_row() -> None:
    assert slot_order(5, {1}) == [0, 4, 2, 3]
    assert slot_order(5, {4}) == [0, 1, 2, 3]
    assert slot_order(5, {0, 4}) == [3, 1, 2]
    assert slot_order(3, {0, 1, 2}) == []


def test_bf16_is_auto_only_on_cpus_with_hardware_bf16() -> None:
    genoa = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_fp16\n"
    skylake = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n"
    sapphire = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8\n"
    graviton3 = "Features\t: fp asimd sve bf16 i8mm\n"
    assert cpu_has_fast_bf16(genoa) and cpu_has_fast_bf16(sapphire)
    assert cpu_has_fast_bf16(graviton3)
    assert not cpu_has_fast_bf16(skylake)
    assert not cpu_has_fast_bf16("")
    assert check_precision("auto", "cpu", cuda_available=False, cpu_bf16=True) == ("bf16", "cpu")
    assert check_precision("auto", "cpu", cuda_available=False, cpu_bf16=False) == ("fp32", "cpu")
    assert check_precision("auto", "auto", cuda_available=True, cpu_bf16=False) == (
        "bf16",
        "cuda",
    )
    assert check_precision("fp32", "cpu", cuda_available=False, cpu_bf16=True) == ("fp32", "cpu")


def test_waiting_prompts_are_prefilled_together_in_one_pass() -> None:
    model = tiny()
    engine = Engine(loaded(model), max_batch_size=4)
    calls: list[tuple[int, ...]] = []
    forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    model.forward = counting
    prompts = PROMPTS[:3]
    got = generate(engine, prompts, [2, 2, 2])
    engine_calls = list(calls)
    assert got == [reference(model, p, 2) for p in prompts]
    # one packed prefill of all 3 prompts (7 + 3 + 5 tokens in one row), then one decode step
    assert engine_calls == [(1, 15), (3, 1)]
