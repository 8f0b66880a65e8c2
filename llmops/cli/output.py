"""Rendering: data on stdout, progress/warnings/errors on stderr; JSON from the dataclasses."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _width() -> int | None:
    cols = os.environ.get("COLUMNS")
    return int(cols) if cols and cols.isdigit() else None


def stdout() -> Console:
    """A console on the current sys.stdout (looked up at call time, so test runners can swap it)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=_width(), highlight=False, soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, width=_width(), highlight=False, soft_wrap=True)


def print_error(message: str, hint: str | None) -> None:
    err = stderr()
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if hint:
        err.print(f"[bold]hint:[/] {hint}", markup=True, highlight=False)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr().print(message, markup=False, highlight=False)


def emit_json(payload: dict[str, Any]) -> None:
    """Print one JSON document with ``"schema": 1`` first. Dataclasses become objects."""
    from llmops.hw.facts import SCHEMA_VERSION, to_jsonable

    doc = {"schema": SCHEMA_VERSION, **to_jsonable(payload)}
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
