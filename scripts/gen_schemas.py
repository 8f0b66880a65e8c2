"""Regenerate llmops/schemas/*.schema.json from the dataclasses (``--check``: fail if stale)."""

from __future__ import annotations

import sys

from llmops.schemas import SCHEMA_DIR, doctor_schema, render

GENERATORS = {"doctor": doctor_schema}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, gen in GENERATORS.items():
        path = SCHEMA_DIR / f"{name}.schema.json"
        text = render(gen())
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale schema(s): " + ", ".join(stale) + "; run `python scripts/gen_schemas.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
