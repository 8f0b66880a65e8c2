"""Where the data that ships with llmops lives: templates/ and recipes/.

In a wheel they are inside the package (``llmops/_data/...``, see pyproject's force-include);
in a source checkout or an editable install they are the repository's top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory holding shipped data ``name`` (``templates`` or ``recipes``).

    Raises:
        FileNotFoundError: when neither the packaged nor the source location exists.
    """
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"llmops data directory {name!r} not found (broken install?)")


def templates_dir() -> Path:
    return data_dir("templates")


def recipes_dir() -> Path:
    return data_dir("recipes")
