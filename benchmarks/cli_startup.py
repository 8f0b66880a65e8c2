"""Start-up cost of the CLI: wall time of `llmops --help` beside `python -c "import typer"`.

Both are measured in the same run, interleaved, as fresh processes; the script prints the
median and best of N runs, their ratio, and the machine it ran on. It is not a test.

    python benchmarks/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import describe  # noqa: E402


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    cases = {
        "llmops --help": [py, "-m", "llmops", "--help"],
        'python -c "import typer"': [py, "-c", "import typer"],
    }
    for argv in cases.values():  # warm the page cache and bytecode
        _time(argv)
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            samples[name].append(_time(argv))
    print(f"machine: {describe()}")
    print(f"runs: {args.runs} each, interleaved")
    print(f"{'command':<28} {'median ms':>10} {'best ms':>10}")
    med = {}
    for name, xs in samples.items():
        med[name] = statistics.median(xs)
        print(f"{name:<28} {med[name] * 1000:>10.1f} {min(xs) * 1000:>10.1f}")
    ratio = med["llmops --help"] / med['python -c "import typer"']
    print(f"ratio (median llmops --help / median import typer): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
