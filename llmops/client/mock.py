"""A built-in mock of an OpenAI-compatible streaming server with fixed timing, for
``llmops bench --calibrate``, the tests and ``benchmarks/bench_overhead.py``.

    python -m llmops.client.mock [--ttft-ms 20] [--itl-ms 5] [--tokens 8] [--port 0]

It prints its port on the first line of stdout and serves until killed. Each
``POST /v1/chat/completions`` streams ``--tokens`` tokens: the first after ``--ttft-ms``, the
rest ``--itl-ms`` apart, then a finish chunk, a usage chunk and ``[DONE]``. Behaviours the tests
need: ``--capacity N`` (at most N requests generate at once, the rest queue: a server that
saturates), ``--ttft-per-active-ms X`` (each request's TTFT grows by X per request already in
flight: latency that rises with load), ``--fail-every K`` (every K-th request answers 503),
``--usage-factor F`` (the usage chunk reports F times the tokens streamed: a server that lies),
``--max-queue Q`` (with a capacity, 503 once Q requests wait: a server that sheds load).
``GET /metrics`` reports the llmops backend's metric names (queue, running, generated tokens).
Raw asyncio (no framework), so that the server, not the client, is never the slow side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class MockTiming:
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    tokens: int = 8
    capacity: int = 0  # 0: unlimited
    ttft_per_active_ms: float = 0.0
    fail_every: int = 0
    usage_factor: float = 1.0
    max_queue: int = 0  # with capacity: 503 when this many already wait; 0 = no limit


def _chunk(obj: object) -> bytes:
    data = b"data: " + json.dumps(obj).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class MockServer:
    """The server state: timing, the capacity gate and counters for ``/metrics``."""

    def __init__(self, timing: MockTiming) -> None:
        self.t = timing
        self.gate = asyncio.Semaphore(timing.capacity) if timing.capacity else None
        self.calls = 0
        self.active = 0
        self.waiting = 0
        self.generated = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                method, path = lines[0].split(b" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if method == b"GET":
                    self._get(writer, path)
                elif path == b"/v1/chat/completions":
                    await self._stream(writer)
                else:
                    self._reply(writer, 404, b'{"error": "no route"}')
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _reply(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        ctype: str = "application/json",
    ) -> None:
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (status, ctype.encode(), len(body), body)
        )

    def _get(self, writer: asyncio.StreamWriter, path: bytes) -> None:
        if path == b"/v1/models":
            self._reply(
                writer, 200, b'{"object": "list", "data": [{"id": "mock", "object": "model"}]}'
            )
        elif path == b"/metrics":
            text = (
                "# TYPE llmops_queue_depth gauge\n"
                f"llmops_queue_depth {self.waiting}\n"
                "# TYPE llmops_active_sequences gauge\n"
                f"llmops_active_sequences {self.active}\n"
                "# TYPE llmops_generated_tokens_total counter\n"
                f"llmops_generated_tokens_total {self.generated}\n"
            )
            self._reply(writer, 200, text.encode(), "text/plain; version=0.0.4")
        else:
            self._reply(writer, 404, b'{"error": "no route"}')

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        t = self.t
        self.calls += 1
        if t.fail_every and self.calls % t.fail_every == 0:
            self._reply(writer, 503, b'{"error": {"message": "mock overload"}}')
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        extra = t.ttft_per_active_ms * (self.active + self.waiting) / 1000.0
        if self.gate is not None:
            if t.max_queue and self.waiting >= t.max_queue and self.gate.locked():
                self._reply(writer, 503, b'{"error": {"message": "mock queue full"}}')
                return
            self.waiting += 1
            await self.gate.acquire()
            self.waiting -= 1
        self.active += 1
        try:
            writer.write(_HEAD)
            await asyncio.sleep(max(0.0, start + t.ttft_ms / 1000.0 + extra - loop.time()))
            writer.write(
                _chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            )
            for i in range(t.tokens):
                if i:
                    await asyncio.sleep(t.itl_ms / 1000.0)
                writer.write(_chunk({"choices": [{"index": 0, "delta": {"content": f" t{i}"}}]}))
                self.generated += 1
            writer.write(
                _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
            )
            usage = {"prompt_tokens": 7, "completion_tokens": round(t.tokens * t.usage_factor)}
            writer.write(_chunk({"choices": [], "usage": usage}))
            data = b"data: [DONE]\n\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
        finally:
            self.active -= 1
            if self.gate is not None:
                self.gate.release()


async def serve(
    timing: MockTiming, port: int = 0, ready: asyncio.Future[int] | None = None
) -> None:
    server = MockServer(timing)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=4096)
    bound = srv.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(bound)
    else:
        print(bound, flush=True)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m llmops.client.mock", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=20.0)
    ap.add_argument("--itl-ms", type=float, default=5.0)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--capacity", type=int, default=0)
    ap.add_argument("--ttft-per-active-ms", type=float, default=0.0)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--usage-factor", type=float, default=1.0)
    ap.add_argument("--max-queue", type=int, default=0)
    a = ap.parse_args(argv)
    timing = MockTiming(
        a.ttft_ms,
        a.itl_ms,
        max(1, a.tokens),
        a.capacity,
        a.ttft_per_active_ms,
        a.fail_every,
        a.usage_factor,
        a.max_queue,
    )
    try:
        asyncio.run(serve(timing, a.port))
    except KeyboardInterrupt:
        sys.exit(130)


class MockProcess:
    """The mock in a child process (so it never shares the client's event loop or GIL)."""

    def __init__(self, **timing: float) -> None:
        import subprocess

        args = [sys.executable, "-m", "llmops.client.mock"]
        for k, v in timing.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the mock server did not start (said {line!r})")
        self.url = f"http://127.0.0.1:{int(line)}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> MockProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
