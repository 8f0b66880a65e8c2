"""What machine a benchmark ran on: every script in benchmarks/ prints this line."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    return (
        f"{platform.node()} · {cpu_model()} · {os.cpu_count()} logical CPUs · "
        f"{platform.system()} {platform.release()} · Python {platform.python_version()}"
    )
