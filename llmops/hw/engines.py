"""Engines llmops installed itself (``llmops engine install``): where they are, which build.

Read-only: the install record ``ENGINES_DIR/<engine>/install.json`` that
``llmops.run.engine_install`` writes, and the program next to it. The native runtime, ``up``'s
host capabilities and ``doctor`` find an engine here first, then on PATH.

``ENGINES_DIR`` is ``$LLMOPS_ENGINES_DIR``, else ``$XDG_DATA_HOME/llmops/engines`` (default
``~/.local/share/llmops/engines``): not under ``$LLMOPS_HOME``, so every deployment state dir
(and every test's) shares one build.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INSTALL_RECORD = "install.json"

# program name (as plans write argv[0]) -> engine whose install provides it
PROGRAMS = {"llama-server": "llamacpp", "llama-fit-params": "llamacpp"}


def engines_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("LLMOPS_ENGINES_DIR"):
        return Path(env["LLMOPS_ENGINES_DIR"]).expanduser()
    data = env.get("XDG_DATA_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return Path(data) / "llmops" / "engines"


@dataclass(frozen=True)
class InstalledEngine:
    """One engine build llmops installed."""

    engine: str  # llamacpp
    version: str  # the pinned upstream build, b11434
    variant: str  # cpu | cuda
    program: str  # absolute path of the executable
    installed_at: str  # ISO-8601 UTC
    build_seconds: float | None = None
    size_bytes: int | None = None
    source: str = ""  # where the source came from (URL + sha256, or a local path)
    configure: tuple[str, ...] = field(default_factory=tuple)  # the cmake options used
    # the other programs of the same build, by name (llama-fit-params: what it will allocate)
    tools: dict[str, str] = field(default_factory=dict)
    https: bool | None = None  # built with TLS (the engine can fetch `-hf` models itself)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["configure"] = list(self.configure)
        d["tools"] = dict(self.tools)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InstalledEngine:
        return cls(
            engine=str(d["engine"]),
            version=str(d["version"]),
            variant=str(d.get("variant", "cpu")),
            program=str(d["program"]),
            installed_at=str(d.get("installed_at", "")),
            build_seconds=d.get("build_seconds"),
            size_bytes=d.get("size_bytes"),
            source=str(d.get("source", "")),
            configure=tuple(d.get("configure") or ()),
            tools={str(k): str(v) for k, v in (d.get("tools") or {}).items()},
            https=d.get("https"),
        )

    def program_for(self, name: str) -> str | None:
        """The executable ``name`` of this build (the server or one of its tools), if present."""
        path = self.program if Path(self.program).name == name else self.tools.get(name)
        return path if path and os.access(path, os.X_OK) else None


def installed(engine: str, env: Mapping[str, str] | None = None) -> InstalledEngine | None:
    """The install record of ``engine`` when its program is there and executable."""
    path = engines_dir(env) / engine / INSTALL_RECORD
    try:
        rec = InstalledEngine.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not os.access(rec.program, os.X_OK):
        return None
    return rec


def installed_all(env: Mapping[str, str] | None = None) -> list[InstalledEngine]:
    root = engines_dir(env)
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [r for r in (installed(n, env) for n in names) if r is not None]


def find_program(program: str, env: Mapping[str, str] | None = None) -> str | None:
    """``program`` as llmops installed it, else from PATH (None: neither)."""
    env = os.environ if env is None else env
    engine = PROGRAMS.get(program)
    if engine is not None:
        rec = installed(engine, env)
        found = rec.program_for(program) if rec is not None else None
        if found is not None:
            return found
    return shutil.which(program, path=env.get("PATH"))


__all__ = [
    "INSTALL_RECORD",
    "PROGRAMS",
    "InstalledEngine",
    "engines_dir",
    "find_program",
    "installed",
    "installed_all",
]
