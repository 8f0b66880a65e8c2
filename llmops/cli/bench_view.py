"""How `llmops bench` shows a run: the progress bar on stderr, the results table (one row per
load point, wider columns than the terminal are never wrapped), the side lines under it (server
metrics, GPUs, SLO verdicts, confidence intervals) and the client calibration."""

from typing import TYPE_CHECKING, Any

from llmops.cli import output

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from llmops.client.bench import EndpointResult
    from llmops.client.stats import Distribution


class Progress:
    """A rich progress bar on stderr, one row per (endpoint, concurrency); plain lines when
    stderr is not a terminal."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = output.stderr()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.task: Any = None
        self.errors = 0
        self.desc = ""

    def __enter__(self) -> "Progress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start_level(self, label: str, what: str, total: int | None) -> None:
        self.errors = 0
        self.desc = f"{label + ' ' if label else ''}{what}"
        self.task = self.bar.add_task(self.desc, total=total, errors=0)

    def advance(self, ok: bool) -> None:
        if not ok:
            self.errors += 1
        self.bar.update(self.task, advance=1, errors=self.errors)

    def end_level(self) -> None:
        if self.bar.disable:
            task = self.bar.tasks[-1]
            total = f"/{task.total:.0f}" if task.total is not None else ""
            self.console.print(
                f"{self.desc}: {task.completed:.0f}{total} requests, "
                f"{self.errors} errors, {task.finished_time or task.elapsed or 0:.1f} s",
                markup=False,
                highlight=False,
            )


def _ms(d: "Distribution | None", *keys: str) -> str:
    if d is None:
        return "-"
    return " / ".join(_num(getattr(d, k)) for k in keys)


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _point_name(lv: Any) -> str:
    base = f"{lv.rate_rps:.3g}/s" if lv.mode == "rate" else f"c={lv.concurrency}"
    return f"{lv.label} {base}" if lv.label else base


def bench_table(results: "list[EndpointResult]") -> "Table":
    """The report: one row per load point, endpoints side by side (A, B) within a point."""
    from rich.table import Table

    two = len(results) > 1
    levels_all = [lv for r in results for lv in r.levels]
    lag = any(lv.schedule_lag_ms is not None for lv in levels_all)
    slo = any(lv.slo is not None for lv in levels_all)
    table = Table(box=None, pad_edge=False, header_style="bold")
    if two:
        table.add_column("ep")
    table.add_column("point", justify="right")
    for name in ("ok/n", "req/s", "out tok/s", "TTFT ms p50/p90/p99", "TPOT ms p50"):
        table.add_column(name, justify="right")
    for name in ("ITL ms p50/p90/p99", "latency ms p50/p99", "tok/s/req p50"):
        table.add_column(name, justify="right")
    if lag:
        table.add_column("lag ms p99", justify="right")
    if slo:
        table.add_column("SLO", justify="left")
        table.add_column("goodput/s", justify="right")
    table.add_column("errors", justify="left")
    count = max((len(r.levels) for r in results), default=0)
    for i in range(count):
        for label, r in zip("AB", results, strict=False):
            if i >= len(r.levels):
                continue
            lv = r.levels[i]
            errors = ", ".join(f"{k} {v}" for k, v in lv.errors.items()) or "-"
            speed = lv.request_output_tok_s
            row = [
                _point_name(lv),
                f"{lv.ok}/{lv.requests}",
                _num(lv.request_throughput_rps),
                _num(lv.output_throughput_tok_s),
                _ms(lv.ttft_ms, "p50", "p90", "p99"),
                _ms(lv.tpot_ms, "p50"),
                _ms(lv.itl_ms, "p50", "p90", "p99"),
                _ms(lv.latency_ms, "p50", "p99"),
                _num(speed.p50) if speed else "-",
            ]
            if lag:
                row.append(_ms(lv.schedule_lag_ms, "p99"))
            if slo:
                v = lv.slo
                row.append(
                    "-" if v is None else f"{'met' if v.met else 'broken'} {v.attainment:.0%}"
                )
                row.append("-" if v is None else _num(v.goodput_rps))
            row.append(errors)
            table.add_row(*([label] if two else []), *row)
    return table


def render(console: "Console", results: "list[EndpointResult]") -> None:
    """Endpoint lines, the table, server/GPU lines, the search verdict, notes, then one example
    message per error kind."""
    two = len(results) > 1

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    for label, r in zip("AB", results, strict=False):
        what = f"{r.protocol} API, model {r.model}" if r.protocol else "not measured"
        sources = sorted({lv.token_source for lv in r.levels if lv.token_source})
        tokens = f", tokens from {'/'.join(sources)}" if sources else ""
        say(f"{label + ': ' if two else ''}{r.url} ({what}{tokens})")
        if r.error:
            say(f"  error: {r.error}")
    if any(r.levels for r in results):
        _print_unwrapped(console, bench_table(results))
    for label, r in zip("AB", results, strict=False):
        pre = f"{label} " if two else ""
        for lv in r.levels:
            line = _side_line(lv)
            if line:
                say(f"{pre}{_point_name(lv)}: {line}")
        if r.search is not None:
            best = r.search.best_rate_rps
            say(
                f"{pre}search: highest rate meeting the SLO "
                + (f"{best:.4g} req/s" if best is not None else "none")
                + f"; stopped ({r.search.reason}): {r.search.detail}"
            )
        for note in r.notes:
            say(f"{pre}note: {note}")
        examples: dict[str, str] = {}
        for lv in r.levels:
            for kind, msg in lv.error_examples.items():
                examples.setdefault(kind, msg)
        for kind, msg in examples.items():
            say(f"{pre}{kind}: {msg}")


def _side_line(lv: Any) -> str:
    """Server metrics, GPUs and the CIs of one point, as one line (empty when none)."""
    parts = []
    srv = lv.server.server if lv.server is not None else None
    if srv is not None:
        bits = [f"{srv.engine} metrics"]
        if srv.waiting_max is not None:
            bits.append(f"queue max {srv.waiting_max:g}")
        if srv.running_max is not None:
            bits.append(f"running max {srv.running_max:g}")
        if srv.kv_usage_pct_max is not None:
            bits.append(f"KV max {srv.kv_usage_pct_max:.0f}%")
        if srv.ttft_p99_ms is not None:
            bits.append(f"server TTFT p99 {_num(srv.ttft_p99_ms)} ms")
        parts.append(", ".join(bits))
    if lv.gpu is not None:
        g = lv.gpu
        bits = [f"{len(g.gpus)} GPU(s)"]
        if g.power_w_mean is not None:
            bits.append(f"{g.power_w_mean:.0f} W")
        if g.tokens_per_joule is not None:
            bits.append(f"{g.tokens_per_joule:.3g} tok/J")
        parts.append(", ".join(bits))
    if lv.ci95:
        ci = lv.ci95
        bits = [
            f"{k} {v.mean:.4g}±{v.ci95:.2g}"
            for k, v in ci.items()
            if k in ("request_throughput_rps", "ttft_p99_ms", "itl_p99_ms", "goodput_rps")
        ]
        parts.append(f"95% CI over {lv.repeats} runs: " + ", ".join(bits))
    return "; ".join(parts)


def render_calibration(console: "Console", cal: dict[str, Any]) -> None:
    """The client's own overhead and schedule lag against the built-in mock."""
    console.print(
        f"calibration against the built-in mock (TTFT {cal['mock_ttft_ms']:g} ms, "
        f"ITL {cal['mock_itl_ms']:g} ms, {cal['tokens']} tokens):",
        markup=False,
        highlight=False,
    )
    for row in cal["points"]:
        console.print(
            f"  {row['rate_rps']:g} req/s: client overhead TTFT p50 {row['ttft_overhead_ms_p50']:+.3f} ms,"
            f" p99 {row['ttft_overhead_ms_p99']:+.3f} ms; ITL p50 {row['itl_overhead_ms_p50']:+.3f} ms; "
            f"schedule lag p50 {row['lag_ms_p50']:.3f} ms, p99 {row['lag_ms_p99']:.3f} ms, "
            f"max {row['lag_ms_max']:.3f} ms ({row['requests']} requests, {row['errors']} errors)",
            markup=False,
            highlight=False,
        )


def _print_unwrapped(console: "Console", table: "Table") -> None:
    """Print a table at its natural width even on a narrower terminal (rows never wrap)."""
    from rich.console import Console
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(1000), table).maximum
    if need > console.width:
        console = Console(
            file=console.file,
            width=need,
            highlight=False,
            force_terminal=console.is_terminal,
            no_color=console.no_color,
        )
    console.print(table)
