"""Rendering: data on stdout, progress/warnings/errors on stderr; JSON from the dataclasses."""

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _width(stream: object = None) -> int | None:
    """COLUMNS when set; the terminal's width on a TTY; else wide, so pipes get whole lines."""
    cols = os.environ.get("COLUMNS")
    if cols and cols.isdigit():
        return int(cols)
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and not isatty():
        return 200
    return None


def stdout(soft_wrap: bool = False) -> "Console":
    """A console on the current sys.stdout (looked up at call time, so test runners can swap it)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=_width(sys.stdout), highlight=False, soft_wrap=soft_wrap)


def stderr() -> "Console":
    from rich.console import Console

    return Console(file=sys.stderr, width=_width(sys.stderr), highlight=False, soft_wrap=True)


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
