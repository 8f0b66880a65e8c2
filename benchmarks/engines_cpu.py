"""Engines on the CPU, in one run: llama.cpp launched by ``llmops up`` vs the same
``llama-server`` started by hand with the same model and flags, and the bundled torch backend.

For each: output tokens/s at concurrency 1, 4 and 16 (``llmops bench``, streamed chat
requests, ``--max-tokens 64``), and for ``llmops up --engine llamacpp`` the time from starting
``up`` to the first answer, split into the engine's own start (its ``/health`` first answering
200, polled every 20 ms from outside) and what llmops adds after it (``up`` returning).

    python benchmarks/engines_cpu.py [--requests 16] [--max-tokens 64] [--json]

Needs the pinned llama-server (``llmops engine install llamacpp``) and ``llmops[backend]``.
The llama.cpp deployments get ``--concurrency 16 --context 2048`` (16 slots, so the engine can
batch every request of the highest level); the hand-started server gets the argv ``render``
prints for that, so the two differ only in who started them.
"""

from __future__ import annotations

import argparse
import json
import os
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


def bench(target: str, env: dict[str, str], requests: int, max_tokens: int, key: str | None):
    args = ["bench", target, "-c", LEVELS, "-n", str(requests), "--max-tokens", str(max_tokens)]
    args += ["--json", "--warmup", "2"]
    if key:  # through the environment: never on a command line
        env = {**env, "LLMOPS_API_KEY": key}
    doc = json.loads(llmops(*args, env=env).stdout)
    (ep,) = doc["endpoints"]
    return {lv["concurrency"]: lv["output_throughput_tok_s"] for lv in ep["levels"]}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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

    # 1. llmops up --engine llamacpp (native), timed to the first answer, then benched.
    port = free_port()
    out["up"] = up_llamacpp(env, "bench-llamacpp", port)
    key = out["up"].pop("key")
    show(a.json, "up", out["up"])
    try:
        out["llmops_llamacpp"] = bench("bench-llamacpp", env, a.requests, a.max_tokens, None)
        show(a.json, "llmops up --engine llamacpp, output tok/s", out["llmops_llamacpp"])
    finally:
        llmops("down", "bench-llamacpp", env=env, check=False)

    # 2. the same llama-server by hand: exactly the argv render prints for that deployment.
    hport = free_port()
    plan = json.loads(
        llmops(
            "render",
            "smollm2",
            "--engine",
            "llamacpp",
            "--runtime",
            "native",
            "--format",
            "json",
            "--port",
            str(hport),
            "--concurrency",
            "16",
            "--context",
            "2048",
            env=env,
        ).stdout  # fmt: skip
    )["plan"]
    argv = [program, *plan["argv"][1:]]
    out["hand_argv"] = argv
    log = open(Path(home) / "hand.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        argv, env={**env, **dict(plan["env"]), "LLAMA_API_KEY": key}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{hport}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        out["hand_llamacpp"] = bench(url + "/v1", env, a.requests, a.max_tokens, key)
        show(a.json, "llama-server by hand, output tok/s", out["hand_llamacpp"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    # 3. the bundled torch backend through llmops up.
    tport = free_port()
    t0 = time.monotonic()
    llmops("up", "smollm2", "--engine", "torch", "--runtime", "native", "--name", "bench-torch",
           "--port", str(tport), "--timeout", "600", env=env)  # fmt: skip
    out["torch_up_s"] = time.monotonic() - t0
    try:
        out["torch"] = bench("bench-torch", env, a.torch_requests, a.max_tokens, None)
        show(a.json, "torch backend, output tok/s", out["torch"])
    finally:
        llmops("down", "bench-torch", env=env, check=False)

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
        f"\noutput tokens/s, max_tokens {a.max_tokens}, {a.requests} requests per level "
        f"({a.torch_requests} for torch)"
    )
    print(f"{'concurrency':>12} {'llmops up':>10} {'by hand':>10} {'ratio':>6} {'torch':>8}")
    for c in (1, 4, 16):
        lu, hd, tb = out["llmops_llamacpp"][c], out["hand_llamacpp"][c], out["torch"][c]
        print(f"{c:>12} {lu:>10.1f} {hd:>10.1f} {lu / hd:>6.2f} {tb:>8.1f}")


if __name__ == "__main__":
    main()
