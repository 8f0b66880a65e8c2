"""Server metrics, rendered in the Prometheus text exposition format (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict

TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def render(self, name: str) -> list[str]:
        lines = []
        for edge, count in zip(self.buckets, self.counts, strict=True):
            lines.append(f'{name}_bucket{{le="{edge:g}"}} {count}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.total}')
        lines.append(f"{name}_sum {self.sum:.6f}")
        lines.append(f"{name}_count {self.total}")
        return lines


class Metrics:
    """Counters, gauges and histograms shared by the HTTP handlers and the scheduler thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.rejected = 0
        self.cancelled = 0
        self.queue_depth = 0
        self.active = 0
        self.ttft = _Histogram(TTFT_BUCKETS_S)
        self.batch = _Histogram(BATCH_BUCKETS)

    def request_done(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def add_tokens(self, *, prompt: int = 0, generated: int = 0) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.generated_tokens += generated

    def observe_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batch.observe(size)

    def set_load(self, *, queue_depth: int, active: int) -> None:
        with self._lock:
            self.queue_depth = queue_depth
            self.active = active

    def count_rejected(self) -> None:
        with self._lock:
            self.rejected += 1

    def count_cancelled(self) -> None:
        with self._lock:
            self.cancelled += 1

    def render(self, *, ready: bool) -> str:
        """The ``/metrics`` body."""
        with self._lock:
            out = [
                "# HELP llmops_ready 1 when the model is loaded and the server accepts requests.",
                "# TYPE llmops_ready gauge",
                f"llmops_ready {int(ready)}",
                "# HELP llmops_requests_total HTTP requests to generation routes, by status.",
                "# TYPE llmops_requests_total counter",
            ]
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'llmops_requests_total{{route="{route}",status="{status}"}} {n}')
            out += [
                "# HELP llmops_prompt_tokens_total Prompt tokens processed.",
                "# TYPE llmops_prompt_tokens_total counter",
                f"llmops_prompt_tokens_total {self.prompt_tokens}",
                "# HELP llmops_generated_tokens_total Tokens generated.",
                "# TYPE llmops_generated_tokens_total counter",
                f"llmops_generated_tokens_total {self.generated_tokens}",
                "# HELP llmops_rejected_requests_total Requests refused with 503 (queue full).",
                "# TYPE llmops_rejected_requests_total counter",
                f"llmops_rejected_requests_total {self.rejected}",
                "# HELP llmops_cancelled_requests_total Requests whose client went away.",
                "# TYPE llmops_cancelled_requests_total counter",
                f"llmops_cancelled_requests_total {self.cancelled}",
                "# HELP llmops_queue_depth Requests waiting for a batch slot.",
                "# TYPE llmops_queue_depth gauge",
                f"llmops_queue_depth {self.queue_depth}",
                "# HELP llmops_active_sequences Sequences in the running batch.",
                "# TYPE llmops_active_sequences gauge",
                f"llmops_active_sequences {self.active}",
                "# HELP llmops_time_to_first_token_seconds Time from arrival to first token.",
                "# TYPE llmops_time_to_first_token_seconds histogram",
                *self.ttft.render("llmops_time_to_first_token_seconds"),
                "# HELP llmops_batch_size Sequences per decode forward pass.",
                "# TYPE llmops_batch_size histogram",
                *self.batch.render("llmops_batch_size"),
            ]
        return "\n".join(out) + "\n"
