"""Tools on PATH that llmops drives: nvidia-smi, nvidia-ctk, docker, cloudflared, ngrok."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

from llmops.hw.facts import ToolInfo

# name -> argv that prints its version
TOOLS: dict[str, list[str]] = {
    "nvidia-smi": ["nvidia-smi", "--version"],
    "nvidia-ctk": ["nvidia-ctk", "--version"],
    "docker": ["docker", "--version"],
    "cloudflared": ["cloudflared", "--version"],
    "ngrok": ["ngrok", "version"],
}

_VERSION = re.compile(r"(?<![\w.])v?(\d+\.\d+(?:\.\d+)*(?:[-+][\w.]+)?)")


def parse_version(output: str, name: str = "") -> str | None:
    """The first dotted version number in a tool's ``--version`` output.

    For ``nvidia-smi --version`` prefer the ``NVIDIA-SMI version`` line over the driver's.
    """
    if name == "nvidia-smi":
        m = re.search(r"NVIDIA-SMI version\s*:\s*(\S+)", output)
        if m:
            return m.group(1)
    m = _VERSION.search(output)
    return m.group(1) if m else None


def probe_tool(name: str, argv: list[str], path_env: str | None) -> ToolInfo:
    path = shutil.which(argv[0], path=path_env)
    if path is None:
        return ToolInfo(name=name)
    try:
        proc = subprocess.run(
            [path, *argv[1:]], capture_output=True, text=True, timeout=10, check=False
        )
        version = parse_version(proc.stdout + "\n" + proc.stderr, name)
    except (OSError, subprocess.TimeoutExpired):
        version = None
    return ToolInfo(name=name, path=path, version=version)


def probe_engine_programs(env: Mapping[str, str]) -> tuple[ToolInfo, ...]:
    """Engines for the native runtime: as `llmops engine install` recorded them, else on PATH
    (llama-server prints ``version: 0.6.0-dev (build 11434, commit …)``: reported as ``b11434``)."""
    from llmops.hw.engines import installed

    rec = installed("llamacpp", env)
    if rec is not None:
        v = f"{rec.version} ({rec.variant} build, installed by llmops)"
        return (ToolInfo(name="llama-server", path=rec.program, version=v),)
    t = probe_tool("llama-server", ["llama-server", "--version"], env.get("PATH"))
    if t.path:
        try:
            out = subprocess.run(
                [t.path, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
            m = re.search(r"\(build (\d+),", out.stdout + out.stderr)
        except (OSError, subprocess.TimeoutExpired):
            m = None
        t = ToolInfo(name=t.name, path=t.path, version=f"b{m.group(1)}" if m else t.version)
    return (t,)


def probe_tools(*, env: Mapping[str, str] | None = None) -> tuple[ToolInfo, ...]:
    env = os.environ if env is None else env
    found = tuple(probe_tool(n, argv, env.get("PATH")) for n, argv in TOOLS.items())
    return found + probe_engine_programs(env)
