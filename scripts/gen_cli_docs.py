"""Write the command reference, docs/cli.md, from every command's ``--help``.

``python scripts/gen_cli_docs.py`` rewrites the block between the ``cli-reference`` markers in
docs/cli.md; ``--check`` exits 1 when that page is stale (a test runs it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"


def _commands(group, path: list[str]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Every command path under a click group, depth first, in the order --help lists them."""
    import typer.main

    out: list[list[str]] = []
    cmd = group if path else typer.main.get_command(group)
    sub = getattr(cmd, "commands", None)
    if sub is None:
        return out
    for name in cmd.list_commands(None):  # type: ignore[arg-type]
        child = sub[name]
        if getattr(child, "hidden", False):
            continue
        out.append([*path, name])
        out.extend(_commands(child, [*path, name]))
    return out


def help_text(args: list[str]) -> str:
    from typer.testing import CliRunner

    from llmops.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise SystemExit(f"`llmops {' '.join(args)} --help` failed: {result.output}")
    return result.stdout.rstrip() + "\n"


def render() -> str:
    from llmops.cli import app

    os.environ["COLUMNS"] = "100"
    parts = [START, "", "Generated from `--help` by `make docs`; a test keeps it fresh.", ""]
    for args in [[], *_commands(app, [])]:
        title = " ".join(["llmops", *args])
        parts += [f"## `{title}`", "", "```text", help_text(args).rstrip(), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def updated_page(text: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{PAGE.name} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv: list[str]) -> int:
    text = PAGE.read_text()
    new = updated_page(text)
    if "--check" in argv:
        if new != text:
            print("docs/cli.md, the command reference, is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
