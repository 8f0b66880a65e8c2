"""`llmops bench`: streamed load at several concurrencies; TTFT, ITL, throughput, errors."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import output
from llmops.cli.params import ApiKeyOpt, ModelNameOpt

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from llmops.client.bench import BenchSettings, EndpointResult
    from llmops.client.stats import Distribution


def bench(
    target: Annotated[
        str, typer.Argument(metavar="NAME|URL", help="A deployment name or a base URL.")
    ],
    concurrency: Annotated[
        str,
        typer.Option("--concurrency", "-c", metavar="N,N,...", help="Concurrency levels to run."),
    ] = "1,4,16",
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, help="Requests per concurrency level.")
    ] = 32,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="max_tokens of every request.")
    ] = 128,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            metavar="FILE",
            help='One prompt per line, or JSON lines with "prompt" or "messages".',
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option("--compare", metavar="NAME|URL", help="A second endpoint, side by side."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Also write the JSON to FILE.")
    ] = None,
    api_key: ApiKeyOpt = None,
    compare_api_key: Annotated[
        str | None,
        typer.Option("--compare-api-key", metavar="KEY", help="API key for --compare."),
    ] = None,
    model: ModelNameOpt = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            metavar="REPO|DIR",
            help="Count tokens with this tokenizer when the server reports no usage.",
        ),
    ] = None,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, help="Untimed requests before measuring.")
    ] = 1,
    transport: Annotated[
        str,
        typer.Option(
            "--transport", help="raw (lean HTTP/1.1, default) or httpx (proxies, redirects)."
        ),
    ] = "raw",
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=0.1, max=86400, help="Seconds allowed per request.")
    ] = 300.0,
) -> None:
    """Measure an endpoint under streamed load: TTFT, inter-token latency, tokens/s, errors."""
    from llmops.client.bench import BenchSettings, load_prompts
    from llmops.client.targets import resolve_target
    from llmops.run.state import resolve_deployment

    _check_finite(timeout_s=timeout_s)
    if out is not None:
        _check_out(out)
    settings = BenchSettings(
        concurrency=_levels(concurrency),
        requests=requests,
        max_tokens=max_tokens,
        warmup=warmup,
        transport=_transport(transport),
        timeout_s=timeout_s,
        tokenizer=tokenizer,
    )
    targets = [resolve_target(target, api_key, resolve_deployment)]
    if compare is not None:
        targets.append(resolve_target(compare, compare_api_key or api_key, resolve_deployment))
    results = _run(targets, model, load_prompts(prompts), settings)
    doc = _document(results, settings)
    if out is not None:
        from llmops.hw.facts import SCHEMA_VERSION, to_jsonable

        text = json.dumps({"schema": SCHEMA_VERSION, **to_jsonable(doc)}, indent=2)
        out.write_text(text + "\n", encoding="utf-8")
    if json_:
        output.emit_json(doc)
    else:
        render(output.stdout(), results)
    _exit_status(results)


def _check_finite(**values: float) -> None:
    import math

    from llmops.errors import UsageError

    for name, v in values.items():
        if not math.isfinite(v):
            opt = "--" + name.removesuffix("_s").replace("_", "-")
            raise UsageError(f"{opt} must be a finite number, got {v}", f"e.g. {opt} 300")


def _check_out(out: Path) -> None:
    """``--out FILE`` must be writable before the run starts, so results are never lost."""
    import os

    from llmops.errors import UsageError

    parent = out.parent if str(out.parent) else Path(".")
    if str(out) in ("", ".") or out.is_dir():
        raise UsageError(
            f"--out {str(out)!r} is a directory", "give a file name, e.g. --out bench.json"
        )
    if not parent.is_dir():
        raise UsageError(
            f"--out {str(out)!r}: the directory {str(parent)!r} does not exist",
            f"create it first (`mkdir -p {parent}`) or write elsewhere",
        )
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"--out {str(out)!r} is not writable", "write the results elsewhere")


def _levels(spec: str) -> tuple[int, ...]:
    from llmops.errors import UsageError

    try:
        levels = tuple(int(p) for p in spec.replace(" ", "").split(",") if p)
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1 or max(levels) > 4096:
        raise UsageError(
            f"--concurrency {spec!r} is not a list of positive integers (at most 4096)",
            "e.g. --concurrency 1,4,16",
        )
    return levels


def _transport(name: str) -> str:
    from llmops.errors import UsageError

    if name not in ("raw", "httpx"):
        raise UsageError(f"--transport {name!r} is not raw or httpx", "use --transport raw")
    return name


def _run(
    targets: list[Any], model: str | None, prompts: list[Any], settings: "BenchSettings"
) -> "list[EndpointResult]":
    import asyncio

    from llmops.client.bench import bench_endpoint

    labels = "AB" if len(targets) > 1 else " "
    with _Progress() as progress:

        async def go() -> "list[EndpointResult]":
            return [
                await bench_endpoint(
                    label.strip(), t.url, t.api_key, model, prompts, settings, progress
                )
                for label, t in zip(labels, targets, strict=False)
            ]

        return asyncio.run(go())


class _Progress:
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

    def __enter__(self) -> "_Progress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start_level(self, label: str, concurrency: int, total: int) -> None:
        self.errors = 0
        self.desc = f"{label + ' ' if label else ''}concurrency {concurrency}"
        self.task = self.bar.add_task(self.desc, total=total, errors=0)

    def advance(self, ok: bool) -> None:
        if not ok:
            self.errors += 1
        self.bar.update(self.task, advance=1, errors=self.errors)

    def end_level(self) -> None:
        if self.bar.disable:
            task = self.bar.tasks[-1]
            self.console.print(
                f"{self.desc}: {task.completed:.0f}/{task.total:.0f} requests, "
                f"{self.errors} errors, {task.finished_time or task.elapsed or 0:.1f} s",
                markup=False,
                highlight=False,
            )


def _document(results: "list[EndpointResult]", settings: "BenchSettings") -> dict[str, Any]:
    from dataclasses import asdict

    return {"settings": asdict(settings), "endpoints": results}


def _ms(d: "Distribution | None", *keys: str) -> str:
    if d is None:
        return "-"
    return " / ".join(_num(getattr(d, k)) for k in keys)


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def bench_table(results: "list[EndpointResult]") -> "Table":
    """The report: one row per concurrency level, endpoints side by side (A, B) within a level."""
    from rich.table import Table

    two = len(results) > 1
    table = Table(box=None, pad_edge=False, header_style="bold")
    if two:
        table.add_column("ep")
    for name in ("conc", "ok/n", "req/s", "out tok/s", "TTFT ms p50/p90/p99"):
        table.add_column(name, justify="right")
    for name in ("ITL ms p50/p90/p99", "latency ms p50/p99", "tok/s/req p50", "errors"):
        table.add_column(name, justify="right" if name != "errors" else "left")
    levels = sorted({lv.concurrency for r in results for lv in r.levels})
    for c in levels:
        for label, r in zip("AB", results, strict=False):
            lv = next((x for x in r.levels if x.concurrency == c), None)
            if lv is None:
                continue
            errors = ", ".join(f"{k} {v}" for k, v in lv.errors.items()) or "-"
            speed = lv.request_output_tok_s
            row = [
                str(c),
                f"{lv.ok}/{lv.requests}",
                _num(lv.request_throughput_rps),
                _num(lv.output_throughput_tok_s),
                _ms(lv.ttft_ms, "p50", "p90", "p99"),
                _ms(lv.itl_ms, "p50", "p90", "p99"),
                _ms(lv.latency_ms, "p50", "p99"),
                _num(speed.p50) if speed else "-",
                errors,
            ]
            table.add_row(*([label] if two else []), *row)
    return table


def render(console: "Console", results: "list[EndpointResult]") -> None:
    """Endpoint lines, the table, then one example message per error kind."""
    two = len(results) > 1
    for label, r in zip("AB", results, strict=False):
        what = f"{r.protocol} API, model {r.model}" if r.protocol else "not measured"
        sources = sorted({lv.token_source for lv in r.levels if lv.token_source})
        tokens = f", tokens from {'/'.join(sources)}" if sources else ""
        console.print(
            f"{label + ': ' if two else ''}{r.url} ({what}{tokens})", markup=False, highlight=False
        )
        if r.error:
            console.print(f"  error: {r.error}", markup=False, highlight=False)
    if any(r.levels for r in results):
        _print_unwrapped(console, bench_table(results))
    for label, r in zip("AB", results, strict=False):
        examples: dict[str, str] = {}
        for lv in r.levels:
            for kind, msg in lv.error_examples.items():
                examples.setdefault(kind, msg)
        for kind, msg in examples.items():
            console.print(
                f"{label + ' ' if two else ''}{kind}: {msg}", markup=False, highlight=False
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


def _exit_status(results: "list[EndpointResult]") -> None:
    """Exit 1 when an endpoint could not be measured or no request to it succeeded."""
    bad = [r for r in results if r.error or not any(lv.ok for lv in r.levels)]
    if bad:
        output.print_error(
            f"{bad[0].url} could not be measured: "
            + (bad[0].error or "every request failed (see the errors above)"),
            "check the URL and the API key with `llmops chat URL -m hello`",
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
