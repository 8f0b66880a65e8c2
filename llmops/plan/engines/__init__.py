"""The engine records: one module per engine, everything llmops knows about it in one place.

``ENGINES`` names them in llmops' order; ``record(name)`` returns one (a clear error for an
unknown name). Adding an engine is one module here plus catalog entries.
"""

from __future__ import annotations

from llmops.errors import UsageError
from llmops.plan.engines import llamacpp, sglang, tgi, torch, vllm
from llmops.plan.engines.base import EngineRecord

RECORDS: dict[str, EngineRecord] = {
    r.name: r for r in (tgi.RECORD, vllm.RECORD, llamacpp.RECORD, torch.RECORD, sglang.RECORD)
}
ENGINES: tuple[str, ...] = tuple(RECORDS)


def record(name: str) -> EngineRecord:
    """The record of engine ``name``.

    Raises:
        UsageError: for an engine llmops does not know, listing those it does.
    """
    r = RECORDS.get(name)
    if r is None:
        raise UsageError(f"unknown engine {name!r}", "choose one of: " + ", ".join(ENGINES))
    return r


__all__ = ["ENGINES", "RECORDS", "EngineRecord", "record"]
