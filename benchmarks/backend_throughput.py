"""Output tokens/s, latency and memory of the bundled backend vs ``transformers serve`` and llama.cpp.

Every server gets the same model (SmolLM2-135M-Instruct: the converted safetensors for the
backend and ``transformers serve``, the GGUF it came from for llama.cpp), the same streaming chat
requests (greedy, ``max_tokens`` each) at concurrency 1, 4 and 16, in the same run on the same
machine, one server at a time. Output tokens are counted by re-tokenizing each answer with the
model's tokenizer, so every server is counted alike. Per level it prints output tokens/s, the
time to first token, the inter-token latency (gaps between streamed chunks) and the server's
peak resident memory (its whole process tree, sampled every 0.2 s).

    python benchmarks/backend_throughput.py [--max-tokens 64] [--requests 16] [--json]

The backend and ``transformers serve --continuous-batching`` run at the same precision: the one
the backend picks by itself (``auto``: bf16 on a GPU or a CPU with AMX/AVX512-BF16, else fp32)
unless ``--precision`` says otherwise. llama.cpp's ``llama-server`` (``llmops engine install
llamacpp``) runs the Q4_1 GGUF with one thread per core and a slot per concurrent request; it is
left out when it is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "Write a long story about a dragon who learns to cook.",
    "Explain in detail how a steam engine works.",
    "Describe a walk through a busy market in Marrakesh.",
    "Write a letter to a friend about your summer holidays.",
    "Explain the rules of chess to a beginner.",
    "Describe the life cycle of a star.",
    "Write a poem about the autumn rain.",
    "Explain why the sky is blue, step by step.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict[str, Any]:
    import torch
    import transformers

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_avg_1m_at_start": load,
    }


class Server:
    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def _one(
    client: Any, model: str, prompt: str, max_tokens: int, gaps: list[float] | None = None
) -> tuple[float, str]:
    """One streaming chat request: (seconds to the first content chunk, full text).

    The gaps between consecutive content chunks go to ``gaps`` (inter-token latency). A
    keep-alive connection the server closed before answering (llama-server's HTTP library closes
    one after 5 requests) is retried once on a new connection: nothing was generated yet.
    """
    import httpx

    for attempt in (1, 2):
        try:
            return await _stream(client, model, prompt, max_tokens, gaps)
        except httpx.RemoteProtocolError as exc:
            if attempt == 2 or "without sending a response" not in str(exc):
                raise
    raise AssertionError("unreachable")


async def _stream(
    client: Any, model: str, prompt: str, max_tokens: int, gaps: list[float] | None
) -> tuple[float, str]:
    t0 = time.perf_counter()
    ttft: float | None = None
    last = t0
    parts: list[str] = []
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                    elif gaps is not None:
                        gaps.append(now - last)
                    last = now
                    parts.append(text)
    return (ttft if ttft is not None else time.perf_counter() - t0), "".join(parts)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (0 when it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], await asyncio.to_thread(tree_rss, pid))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def measure(
    url: str,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    tokenizer: Any,
    pid: int,
) -> dict[str, Any]:
    """``requests`` requests, ``concurrency`` at a time (a new one starts as one ends)."""
    import httpx

    ttfts: list[float] = []
    gaps: list[float] = []
    tokens = 0
    peak = [tree_rss(pid)]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, peak, stop))
    limits = httpx.Limits(max_connections=concurrency + 4)
    queue = list(range(requests))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            nonlocal tokens
            while queue:
                i = queue.pop(0)
                ttft, text = await _one(client, model, PROMPTS[i % len(PROMPTS)], max_tokens, gaps)
                ttfts.append(ttft)
                tokens += len(tokenizer.encode(text, add_special_tokens=False))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    stop.set()
    await sampler
    return {
        "concurrency": concurrency,
        "requests": len(ttfts),
        "output_tokens": tokens,
        "seconds": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_s": round(statistics.median(ttfts), 3),
        "itl_p50_ms": round(statistics.median(gaps) * 1000, 1) if gaps else None,
        "peak_rss_gb": round(peak[0] / 1e9, 2),
    }


def wait_ready(url: str, model: str, server: Server, timeout_s: float = 300) -> str | None:
    """Poll with a tiny chat request until it streams a token; None when ready, else why not."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return f"exited with {server.proc.returncode}"
        log = server.log.read_text(errors="replace")
        if "Error in generation loop" in log:  # transformers' CB thread died; it never answers
            return "generation loop failed"
        try:
            import httpx

            async def probe() -> tuple[float, str]:
                async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                    return await asyncio.wait_for(_one(c, model, "Hi", 2), timeout=30)

            _, text = asyncio.run(probe())
            if text:
                return None
            last = "streamed no tokens"
        except (OSError, RuntimeError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    return last


def _tf_model_dir(src: Path, workdir: Path) -> Path:
    """transformers serve needs the model as a directory; link the converted cache."""
    dst = workdir / "tf-model"
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name != "llmops-source.json":
            (dst / f.name).symlink_to(f)
    return dst


def run_engine(
    name: str, argv: list[str], port: int, model: str, args: argparse.Namespace, tok: Any
) -> dict[str, Any]:
    log = Path(tempfile.mkstemp(prefix=f"bench-{name.replace(' ', '_')}-", suffix=".log")[1])
    server = Server(name, argv, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        why = wait_ready(url, model, server)
        if why is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            return {"engine": name, "error": f"{why}; log: {' | '.join(tail)[-300:]}"}
        levels = []
        for c in args.concurrency:
            n = max(args.requests, 2 * c)
            res = measure(url, model, c, n, args.max_tokens, tok, server.proc.pid)
            levels.append(asyncio.run(res))
            print(f"  {name} c={c}: {levels[-1]}", file=sys.stderr)
        return {"engine": name, "levels": levels}
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument(
        "--requests", type=int, default=16, help="requests per level (at least 2x concurrency)"
    )
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16]
    )
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (both torch servers)")
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--skip-llamacpp", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from transformers import AutoTokenizer

    from llmops.backend.config import check_precision
    from llmops.backend.loader import ensure_gguf_converted, smollm2_gguf
    from llmops.hw.engines import find_program

    gguf = smollm2_gguf()
    cache = ensure_gguf_converted(gguf)
    tok = AutoTokenizer.from_pretrained(str(cache))
    info = machine()
    precision, device = check_precision(
        args.precision, "auto", cuda_available=torch.cuda.is_available()
    )
    info["precision"] = precision
    cores = os.cpu_count() or 1
    slots = max(args.concurrency)
    results = []
    print(f"measuring llmops backend ({precision}) ...", file=sys.stderr)
    port = _free_port()
    ours = [sys.executable, "-m", "llmops.backend", "smollm2", "--port", str(port)]
    ours += ["--max-batch-size", str(slots), "--precision", precision]
    results.append(run_engine("llmops backend", ours, port, "SmolLM2-135M-Instruct", args, tok))

    tf_cli = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    if not args.skip_transformers and Path(tf_cli).exists():
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = _tf_model_dir(cache, Path(tmp))
            name = "transformers serve --continuous-batching"
            print(f"measuring {name} ({precision}) ...", file=sys.stderr)
            port = _free_port()
            dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]
            argv = [tf_cli, "serve", str(model_dir), "--port", str(port), "--dtype", dtype]
            argv += ["--device", device, "--continuous-batching"]
            results.append(run_engine(name, argv, port, str(model_dir), args, tok))

    server_bin = None if args.skip_llamacpp else find_program("llama-server")
    if server_bin:
        name = f"llama.cpp llama-server ({gguf.stem.rsplit('-', 1)[-1]})"
        print(f"measuring {name} ...", file=sys.stderr)
        port = _free_port()
        argv = [server_bin, "-m", str(gguf), "--port", str(port), "-t", str(cores)]
        argv += ["-np", str(slots), "-c", str(slots * 1024), "--alias", "SmolLM2-135M-Instruct"]
        results.append(run_engine(name, argv, port, "SmolLM2-135M-Instruct", args, tok))

    report = {"schema": 2, "machine": info, "max_tokens": args.max_tokens, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; torch {m['torch']}, "
        f"transformers {m['transformers']}; 1-min load at start {m['load_avg_1m_at_start']:.2f}",
        f"Model: SmolLM2-135M-Instruct ({m.get('precision', 'fp32')} for the torch servers), "
        f"greedy, max_tokens={report['max_tokens']}, streaming chat requests",
        "",
        "| server | concurrency | output tok/s | TTFT p50 (s) | ITL p50 (ms) | peak RSS (GB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_engine: dict[str, dict[int, float]] = {}
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['engine']} | - | failed: {r['error'][:120]} | | | |")
            continue
        by_engine[r["engine"]] = {}
        for lv in r["levels"]:
            by_engine[r["engine"]][lv["concurrency"]] = lv["tokens_per_s"]
            lines.append(
                f"| {r['engine']} | {lv['concurrency']} | {lv['tokens_per_s']} | "
                f"{lv['ttft_p50_s']} | {lv['itl_p50_ms']} | {lv['peak_rss_gb']} |"
            )
    ours = by_engine.get("llmops backend", {})
    for name, levels in by_engine.items():
        if name == "llmops backend":
            continue
        ratios = ", ".join(
            f"c={c}: {ours[c] / levels[c]:.2f}x" for c in sorted(levels) if c in ours and levels[c]
        )
        lines.append("")
        lines.append(f"llmops backend / {name}: {ratios}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
