"""The layers hold: every import in the source (module level and inside functions) is read.

- ``plan/`` is pure: no docker, paramiko, subprocess, socket, httpx, os, time, importlib, and
  nothing from ``llmops.run``, ``llmops.cli`` or ``llmops.catalog`` (the catalog builds on
  plan, not back);
- ``run/`` never imports ``llmops.cli`` (adapters are handed in by the CLI);
- ``catalog/`` and ``client/`` never import ``llmops.run``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmops

ROOT = Path(llmops.__file__).parent

RULES: dict[str, tuple[str, ...]] = {
    "plan": (
        "docker",
        "paramiko",
        "subprocess",
        "socket",
        "httpx",
        "pynvml",
        "psutil",
        "huggingface_hub",
        "os",  # no environment, files, clock or import-system probing in the planner
        "time",
        "datetime",
        "shutil",
        "importlib",
        "urllib.request",
        "llmops.run",
        "llmops.cli",
        "llmops.catalog",
    ),
    "run": ("llmops.cli",),
    "catalog": ("llmops.run", "llmops.cli"),
    "client": ("llmops.run", "llmops.cli"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, with the line: ``import a.b``, ``from a.b import c``
    (as ``a.b`` and ``a.b.c``), relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _hits(layer: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, mod in imports_of(path):
            for banned in RULES[layer]:
                if mod == banned or mod.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports(layer: str) -> None:
    assert _hits(layer) == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    f = ROOT / "plan" / "_layer_probe_tmp.py"
    f.write_text("def f():\n    from llmops.run import state\n    from ..cli import deps\n")
    try:
        hits = _hits("plan")
    finally:
        f.unlink()
    assert any("llmops.run" in h for h in hits) and any("llmops.cli" in h for h in hits)
