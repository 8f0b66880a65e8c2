"""How fast `llmops bench`'s client machinery is: the request rate it can drive, and the latency
it adds, against a minimal local server that answers at once (so the server is not the limit).

    .venv/bin/python benchmarks/bench_overhead.py [--requests 20000] [--concurrency 32]

The server runs in a separate process: a raw asyncio protocol that answers every POST with a
fixed OpenAI-style SSE stream (4 content chunks, a usage chunk, [DONE]) in one write. The client
side is exactly what `llmops bench` runs per request (`timed_request`: transport, SSE decoding,
JSON chunks, per-token timestamps). "Added latency" is the p50 of that at concurrency 1 minus the
p50 of a bare blocking-socket round trip to the same server. Target on a 2-core machine:
>= 2,000 requests/s and < 1 ms added at p50 (the closed-loop ceiling measured 14k requests/s).

Open-loop accuracy (``--rates``, default 500 and 2000 requests/s): the same server, requests
sent on a constant schedule by ``run_open_loop`` for ``--seconds`` each; the schedule lag is
actual minus intended send time per request (target: p99 < 1 ms at 2,000/s). The machine's load
average is printed with the figures, since on a shared machine both vary with it.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNKS: list[dict[str, Any]] = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
]
CHUNKS += [{"choices": [{"index": 0, "delta": {"content": f" tok{i}"}}]} for i in range(4)]
CHUNKS += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}]
CHUNKS += [{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}}]
BODY = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS) + b"data: [DONE]\n\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(BODY)
    + BODY
)


# ------------------------------------------------------------------------------ server
class _Server(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            length = 0
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]
        self.buf = buf


def serve() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Server, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------------------ client
def baseline_rtt(port: int, n: int) -> list[float]:
    """Bare blocking-socket round trips: the floor that kernel + server cost."""
    body = b'{"x":1}'
    req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    want = len(RESPONSE)
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(req)
        got = 0
        while got < want:
            got += len(s.recv(65536))
        out.append(time.perf_counter() - t)
    s.close()
    return out


def client_run(
    port: int, transport_name: str, concurrency: int, n: int
) -> tuple[float, list[float], int]:
    from llmops.client.prompts import request_bodies
    from llmops.client.protocol import OPENAI, Endpoint
    from llmops.client.records import run_level
    from llmops.client.transport import HttpxTransport, RawTransport

    url = f"http://127.0.0.1:{port}"
    endpoint = Endpoint(url, OPENAI, "m", "sk-bench")
    bodies = request_bodies(endpoint, [[{"role": "user", "content": "hi"}]], 16, include_usage=True)

    async def go() -> tuple[float, list[float], int]:
        transport: RawTransport | HttpxTransport
        if transport_name == "raw":
            transport = RawTransport(url, endpoint.api_key)
        else:
            transport = HttpxTransport(url, endpoint.api_key, max_connections=concurrency)
        try:
            await run_level(transport, endpoint, bodies, concurrency=concurrency, requests=200)
            records, wall = await run_level(
                transport, endpoint, bodies, concurrency=concurrency, requests=n
            )
        finally:
            await transport.aclose()
        bad = sum(1 for r in records if not r.ok)
        return len(records) / wall, [r.end_s - r.start_s for r in records], bad

    return asyncio.run(go())


def open_loop_run(port: int, rate: float, seconds: float) -> dict[str, float]:
    from llmops.client.load import arrival_offsets, run_open_loop
    from llmops.client.prompts import request_bodies
    from llmops.client.protocol import OPENAI, Endpoint
    from llmops.client.summary import summarize
    from llmops.client.transport import RawTransport

    url = f"http://127.0.0.1:{port}"
    endpoint = Endpoint(url, OPENAI, "m", "sk-bench")
    bodies = request_bodies(endpoint, [[{"role": "user", "content": "hi"}]], 16, include_usage=True)

    async def go() -> dict[str, float]:
        transport = RawTransport(url, endpoint.api_key)
        try:
            warm = arrival_offsets(rate, min(1.0, seconds), "constant", 0)
            await run_open_loop(transport, endpoint, bodies, warm)
            offsets = arrival_offsets(rate, seconds, "constant", 0)
            records, _, wall = await run_open_loop(transport, endpoint, bodies, offsets)
        finally:
            await transport.aclose()
        lv = summarize(records, concurrency=None, duration_s=wall)
        lag = lv.schedule_lag_ms
        assert lag is not None
        return {
            "requests": lv.requests,
            "errors": lv.failed,
            "lag_p50": lag.p50,
            "lag_p99": lag.p99,
            "lag_max": lag.max,
            "achieved": lv.requests / wall,
        }

    return asyncio.run(go())


def p50(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2]


def machine() -> str:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _machine import describe

    return describe()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency-requests", type=int, default=5000)
    ap.add_argument("--httpx", action="store_true", help="also measure the httpx transport")
    ap.add_argument("--rates", default="500,2000", help="open-loop rates for the lag figures")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per open-loop rate")
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(f"machine: {machine()}")
        print(f"server: raw asyncio in pid {server.pid}, {len(RESPONSE)}-byte SSE response")
        base = p50(baseline_rtt(port, args.latency_requests)) * 1e3
        print(f"bare socket round trip p50: {base:.3f} ms")
        for name in ["raw", "httpx"] if args.httpx else ["raw"]:
            _, lat, bad1 = client_run(port, name, 1, args.latency_requests)
            ours = p50(lat) * 1e3
            rate, _, bad2 = client_run(port, name, args.concurrency, args.requests)
            print(
                f"transport {name:5s}: {rate:8.0f} requests/s at concurrency {args.concurrency} "
                f"({args.requests} requests); latency p50 at concurrency 1 {ours:.3f} ms, "
                f"added {ours - base:.3f} ms; errors {bad1 + bad2}"
            )
        for rate in (float(r) for r in args.rates.split(",") if r):
            load = os.getloadavg()[0]
            f = open_loop_run(port, rate, args.seconds)
            print(
                f"open loop {rate:6.0f} req/s for {args.seconds:g} s: schedule lag p50 "
                f"{f['lag_p50']:.3f} ms, p99 {f['lag_p99']:.3f} ms, max {f['lag_max']:.3f} ms "
                f"({f['requests']:.0f} requests, {f['errors']:.0f} errors; "
                f"load average {load:.2f} on {os.cpu_count()} CPUs)"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
