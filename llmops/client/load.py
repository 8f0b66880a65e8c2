"""Open-loop load: requests sent on a schedule (constant rate or Poisson arrivals), not when a
previous one finishes, and closed-loop load for a fixed time.

Every open-loop request carries its *intended* send time; the record's ``start_s`` is when its
bytes were actually about to be written. The difference is the schedule lag: when the client
(or its event loop) falls behind, the lag shows it, so a slow client cannot hide server latency
by quietly sending later (coordinated omission). The scheduler sleeps until just before a send
time and then yields to the event loop until the time comes, because ``asyncio.sleep`` alone
wakes up to a millisecond late (epoll timeouts are whole milliseconds). The cyclic garbage
collector is paused while a point's requests are sent and answered: its collections stopped the loop for up to
2.7 ms at 2,000 requests/s here, while a run's requests leave no cyclic garbage behind (0 objects
found by a collection after 10,000 of them), so nothing accumulates meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Callable, Iterator

from llmops.client.protocol import Endpoint
from llmops.client.records import RequestRecord, timed_request
from llmops.client.stream import Transport

CONSTANT = "constant"
POISSON = "poisson"
ARRIVALS = (CONSTANT, POISSON)

#: Below this many seconds to the next send, the scheduler yields instead of sleeping.
_SPIN_S = 0.0015


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic-GC pauses inside: objects alive now are frozen out of later collections, and
    collection is off until the block ends (then it is back as it was, and runs once)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
            gc.collect()


def arrival_offsets(rate: float, duration_s: float, arrival: str, seed: int) -> list[float]:
    """Send times in seconds from the start of a load point (pure; ``seed`` fixes Poisson).

    Constant: every ``1/rate`` s. Poisson: exponential inter-arrival gaps with mean ``1/rate``.
    At least one request is sent.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    if arrival == CONSTANT:
        n = max(1, int(rate * duration_s + 1e-9))
        return [i / rate for i in range(n)]
    if arrival != POISSON:
        raise ValueError(f"unknown arrival {arrival!r}")
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        out.append(t)
    return out or [0.0]


async def run_open_loop(
    transport: Transport,
    endpoint: Endpoint,
    bodies: list[bytes],
    offsets: list[float],
    *,
    max_in_flight: int = 4096,
    on_done: Callable[[RequestRecord], None] | None = None,
) -> tuple[list[RequestRecord], float, float]:
    """Send one request at each offset (bodies round-robin) and wait for all of them.

    When ``max_in_flight`` requests are outstanding the next one waits for a slot; it then goes
    late, and its lag says so.

    Returns:
        The records in send order (``intended_s`` set), the start time (perf_counter) the
        offsets count from, and the wall time until the last request finished.
    """
    clock = time.perf_counter
    loop = asyncio.get_running_loop()
    records: list[RequestRecord | None] = [None] * len(offsets)
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, intended: float) -> None:
        try:
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
        finally:
            slots.release()
        rec.intended_s = intended
        records[i] = rec
        if on_done is not None:
            on_done(rec)

    with gc_paused():
        t0 = clock() + 0.001
        for i, offset in enumerate(offsets):
            due = t0 + offset
            while (left := due - clock()) > 0:
                await asyncio.sleep(left - _SPIN_S if left > 2 * _SPIN_S else 0)
            await slots.acquire()
            task = loop.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:  # still paused: the last sends and the responses in flight are timed too
            await asyncio.gather(*tasks)
    wall_s = clock() - t0
    return [r for r in records if r is not None], t0, wall_s


async def run_closed_for(
    transport: Transport,
    endpoint: Endpoint,
    bodies: list[bytes],
    *,
    concurrency: int,
    duration_s: float,
    on_done: Callable[[RequestRecord], None] | None = None,
) -> tuple[list[RequestRecord], float, float]:
    """``concurrency`` workers each sending the next request as soon as theirs finishes, until
    ``duration_s`` has passed (requests in flight then are waited for).

    Returns:
        The records in completion order, the start time (perf_counter), and the wall time.
    """
    clock = time.perf_counter
    records: list[RequestRecord] = []
    counter = iter(range(1 << 62))
    t0 = clock()
    deadline = t0 + duration_s

    async def worker() -> None:
        while clock() < deadline:
            i = next(counter)
            rec = await timed_request(transport, endpoint, bodies[i % len(bodies)])
            records.append(rec)
            if on_done is not None:
                on_done(rec)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return records, t0, clock() - t0
