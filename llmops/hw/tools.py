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


def probe_tools(*, env: Mapping[str, str] | None = None) -> tuple[ToolInfo, ...]:
    env = os.environ if env is None else env
    return tuple(probe_tool(n, argv, env.get("PATH")) for n, argv in TOOLS.items())
