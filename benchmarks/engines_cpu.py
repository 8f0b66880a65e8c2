"""Engines on the CPU, in one run: llama.cpp launched by ``llmops up`` vs the same
``llama-server`` started by hand with the same model and flags, and the bundled torch backend.

For each: output tokens/s at concurrency 1, 4 and 16 (``llmops bench``, streamed chat
requests, ``--max-tokens 64``), and for ``llmops up --engine llamacpp`` the time from starting
``up`` to the first answer, split into the engine's own start (its ``/health`` first answering
200, polled every 20 ms from outside) and what llmops adds after it (``up`` returning).

All three servers run at once and are measured interleaved: each round benches every level on
each server in turn (the order rotating per round), and a figure is the median over rounds, so
a load that comes and goes on the machine falls on all of them alike; the ratio is taken per
round and its median printed.

    python benchmarks/engines_cpu.py [--rounds 3] [--requests 16] [--max-tokens 64] [--json]

Needs the pinned llama-server (``llmops engine install llamacpp``) and ``llmops[backend]``.
The llama.cpp deployments get ``--concurrency 16 --context 2048`` (16 slots, so the engine can
batch every request of the highest level); the hand-started server gets the argv ``render``
prints for that, so the two differ only in who started them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402

LEVELS = "1,4,16"
LLMOPS = [sys.executable, "-m", "llmops"]


def llmops(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*LLMOPS, *args], env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"llmops {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench(
    target: str, env: dict[str, str], level: int, requests: int, max_tokens: int, key: str | None
) -> float:
    args = ["bench", target, "-c", str(level), "-n", str(requests), "--max-tokens"]
    args += [str(max_tokens), "--json", "--warmup", "2"]
    if key:  # through the environment: never on a command line
        env = {**env, "LLMOPS_API_KEY": key}
    doc = json.loads(llmops(*args, env=env).stdout)
    (ep,) = doc["endpoints"]
    (lv,) = ep["levels"]
    return float(lv["output_throughput_tok_s"])


def poll_health(port: int, stop: threading.Event, seen: dict[str, float]) -> None:
    while not stop.is_set():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                seen["engine_ready"] = time.monotonic()
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)


def up_llamacpp(env: dict[str, str], name: str, port: int) -> dict[str, Any]:
    """`llmops up` timed against the engine's own readiness; then the first answer."""
    seen: dict[str, float] = {}
    stop = threading.Event()
    poller = threading.Thread(target=poll_health, args=(port, stop, seen), daemon=True)
    t0 = time.monotonic()
    poller.start()
    p = llmops(
        "up", "smollm2", "--engine", "llamacpp", "--runtime", "native", "--name", name,
        "--port", str(port), "--concurrency", "16", "--context", "2048", env=env,
    )  # fmt: skip
    t_up = time.monotonic()
    stop.set()
    poller.join()
    key = next(ln.split()[2] for ln in p.stdout.splitlines() if ln.startswith("api key:"))
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is the capital of France?"}],
              "max_tokens": 12, "temperature": 0},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )  # fmt: skip
    r.raise_for_status()
    t_answer = time.monotonic()
    ready = seen.get("engine_ready", t_up)
    return {
        "key": key,
        "up_s": t_up - t0,
        "engine_ready_s": ready - t0,
        "llmops_after_ready_s": t_up - ready,
        "first_answer_s": t_answer - t0,
        "answer": r.json()["choices"][0]["message"]["content"],
    }


def show(quiet: bool, what: str, data: dict[Any, Any]) -> None:
    """Each figure as soon as it is measured (on stderr), so a cut-short run keeps them."""
    if not quiet:
        print(f"# {what}: {json.dumps(data)}", file=sys.stderr, flush=True)


def start_by_hand(env: dict[str, str], program: str, key: str, home: str) -> tuple[Any, str, Any]:
    """llama-server with exactly the argv `render` prints for the same deployment."""
    hport = free_port()
    plan = json.loads(
        llmops(
            "render", "smollm2", "--engine", "llamacpp", "--runtime", "native", "--format",
            "json", "--port", str(hport), "--concurrency", "16", "--context", "2048", env=env,
        ).stdout
    )["plan"]  # fmt: skip
    argv = [program, *plan["argv"][1:]]
    log = open(Path(home) / "hand.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        argv, env={**env, **dict(plan["env"]), "LLAMA_API_KEY": key}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{hport}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return proc, url + "/v1", (log, argv)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    ap.add_argument("--requests", type=int, default=16, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--torch-requests", type=int, default=8, help="requests per level for the torch backend"
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from llmops.hw.engines import find_program

    program = find_program("llama-server")
    if program is None:
        raise SystemExit("llama-server is not installed: `llmops engine install llamacpp`")
    home = tempfile.mkdtemp(prefix="llmops-engines-bench-")
    env = {**os.environ, "LLMOPS_HOME": home, "COLUMNS": "200"}
    out: dict[str, Any] = {"machine": describe(), "llama_server": program}
    levels = [int(x) for x in LEVELS.split(",")]

    # llmops up --engine llamacpp (native), timed to the first answer
    port = free_port()
    out["up"] = up_llamacpp(env, "bench-llamacpp", port)
    key = out["up"].pop("key")
    show(a.json, "up", out["up"])
    hand = None
    try:
        hand, hand_url, (log, argv) = start_by_hand(env, program, key, home)
        out["hand_argv"] = argv
        tport = free_port()
        t0 = time.monotonic()
        llmops("up", "smollm2", "--engine", "torch", "--runtime", "native", "--name",
               "bench-torch", "--port", str(tport), "--timeout", "600", env=env)  # fmt: skip
        out["torch_up_s"] = time.monotonic() - t0
        targets = {
            "llmops_llamacpp": ("bench-llamacpp", None, a.requests),
            "hand_llamacpp": (hand_url, key, a.requests),
            "torch": ("bench-torch", None, a.torch_requests),
        }
        runs: dict[str, dict[int, list[float]]] = {t: {c: [] for c in levels} for t in targets}
        order = list(targets)
        for rnd in range(a.rounds):
            for c in levels:
                for t in order[rnd % 3 :] + order[: rnd % 3]:
                    target, k, n = targets[t]
                    runs[t][c].append(bench(target, env, c, n, a.max_tokens, k))
            show(
                a.json,
                f"round {rnd + 1}",
                {t: {c: v[-1] for c, v in r.items()} for t, r in runs.items()},
            )
        out["rounds"] = runs
        for t in targets:
            out[t] = {c: median(runs[t][c]) for c in levels}
        out["ratio_llmops_vs_hand"] = {
            c: median(
                [
                    x / y
                    for x, y in zip(
                        runs["llmops_llamacpp"][c], runs["hand_llamacpp"][c], strict=True
                    )
                ]
            )
            for c in levels
        }
    finally:
        llmops("down", "bench-llamacpp", env=env, check=False)
        llmops("down", "bench-torch", env=env, check=False)
        if hand is not None:
            hand.terminate()
            hand.wait(timeout=30)
            log.close()

    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(out["machine"])
    print(f"llama-server: {program}")
    u = out["up"]
    print(
        f"llmops up --engine llamacpp: first answer {u['first_answer_s']:.2f} s after starting up "
        f"(engine serving at {u['engine_ready_s']:.2f} s, up returned {u['llmops_after_ready_s']:+.2f} s "
        f"after that); answer: {u['answer']!r}"
    )
    print(
        f"\noutput tokens/s (median of {a.rounds} interleaved rounds), max_tokens {a.max_tokens}, "
        f"{a.requests} requests per level ({a.torch_requests} for torch)"
    )
    print(f"{'concurrency':>12} {'llmops up':>10} {'by hand':>10} {'ratio':>6} {'torch':>8}")
    for c in levels:
        lu, hd, tb = out["llmops_llamacpp"][c], out["hand_llamacpp"][c], out["torch"][c]
        r = out["ratio_llmops_vs_hand"][c]
        print(f"{c:>12} {lu:>10.1f} {hd:>10.1f} {r:>6.2f} {tb:>8.1f}")


if __name__ == "__main__":
    main()
