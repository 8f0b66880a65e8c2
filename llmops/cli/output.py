"""Rendering: data on stdout, progress/warnings/errors on stderr; JSON from the dataclasses.

Outside text (labels, names and images read from Docker, hosts' facts, error messages that
quote a user's value) is printed literally: never parsed as rich markup (a label
``[link=http://evil]x[/link]`` prints as those characters) and with control characters
shown as escapes (``names.printable``). Use ``lit`` for a cell or a line, ``table`` for a
table whose string cells are literal, and ``esc`` inside a markup string of one's own.
"""

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


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


def plain(value: object, *, lines: bool = True) -> str:
    """``value`` as text with control characters escaped (newlines kept when ``lines``)."""
    from llmops.plan.names import printable

    return printable(value, lines=lines)


def esc(value: object) -> str:
    """``value`` for a markup string: markup escaped, control characters escaped."""
    from rich.markup import escape

    return escape(plain(value))


def lit(value: object, style: str = "") -> "Text":
    """``value`` as a rich ``Text``: never markup, one line (control characters escaped)."""
    from rich.text import Text

    return Text(plain(value, lines=False), style=style)


def table(*args: Any, **kwargs: Any) -> "Table":
    """A rich ``Table`` whose string cells (and str title) are literal text (see ``lit``)."""
    from rich.table import Table

    class _LiteralTable(Table):
        def add_row(self, *renderables: Any, **kw: Any) -> None:
            super().add_row(*(lit(r) if isinstance(r, str) else r for r in renderables), **kw)

    if isinstance(kwargs.get("title"), str):
        kwargs["title"] = lit(kwargs["title"])
    return _LiteralTable(*args, **kwargs)


def print_error(message: str, hint: str | None) -> None:
    err = stderr()
    err.print(f"[bold red]error:[/] {esc(message)}", markup=True, highlight=False)
    if hint:
        err.print(f"[bold]hint:[/] {esc(hint)}", markup=True, highlight=False)


def warn(message: str) -> None:
    stderr().print(f"[yellow]warning:[/] {esc(message)}", markup=True, highlight=False)


def info(message: str) -> None:
    stderr().print(plain(message), markup=False, highlight=False)


def emit_json(payload: dict[str, Any]) -> None:
    """Print one JSON document with ``"schema": 1`` first. Dataclasses become objects."""
    from llmops.hw.facts import SCHEMA_VERSION, to_jsonable

    doc = {"schema": SCHEMA_VERSION, **to_jsonable(payload)}
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
