"""Write the catalog table (from recipes/*.yaml) into docs/planning.md between its markers.

    .venv/bin/python scripts/gen_catalog_table.py [--check]

One row per catalog model: family, release, tier, parameters (active for MoE), attention layout,
trained context, the formats published (and served) and gating. ``--check`` exits 1 when the
page's table is out of date (for CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "planning.md"
START, END = "<!-- catalog:start -->", "<!-- catalog:end -->"


def table() -> str:
    sys.path.insert(0, str(ROOT))
    from llmops.catalog.recipes import load_catalog
    from llmops.cli.models import _attention
    from llmops.plan.artifacts import formats
    from llmops.plan.quant import active_param_count, param_count
    from llmops.plan.recommend import tier_of

    rows = [
        "| model | family | released | tier | params (active) | attention | context | formats | gated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    models = sorted(load_catalog().models, key=lambda m: (m.family, m.released or "0", m.name))
    for m in models:
        a = m.arch
        p = f"{param_count(a) / 1e9:.1f}B"
        if a.is_moe:
            p += f" ({active_param_count(a) / 1e9:.1f}B)"
        fmts = ", ".join(sorted(formats(m)))
        if a.checkpoint_quant:
            fmts += f" ({a.checkpoint_quant.upper()} checkpoint)"
        rows.append(
            f"| `{m.name}` | {m.family} | {m.released[:7] or '-'} | {tier_of(m)} | {p} | "
            f"{_attention(m)} | {a.trained_context} | {fmts} | {'yes' if m.gated else ''} |"
        )
    return "\n".join(rows)


def main() -> int:
    text = PAGE.read_text()
    if START not in text or END not in text:
        print(f"{PAGE.name} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv:
        if new != text:
            print(f"{PAGE.name}'s catalog table is out of date: run scripts/gen_catalog_table.py")
            return 1
        return 0
    PAGE.write_text(new)
    print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
