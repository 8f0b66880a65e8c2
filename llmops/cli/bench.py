"""`llmops bench`: streamed load, closed loop (concurrency levels) or open loop (request rates,
sweeps, SLO search); TTFT, TPOT, ITL, schedule lag, goodput, server metrics, GPUs, plots."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import output
from llmops.cli.bench_view import Progress, render, render_calibration
from llmops.cli.params import ApiKeyOpt, ModelNameOpt

if TYPE_CHECKING:
    from llmops.client.bench import BenchSettings, EndpointResult


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
        str,
        typer.Option(
            "--warmup",
            metavar="N|Ts",
            help="N untimed requests first, or Ts: leave each timed point's first T s out.",
        ),
    ] = "1",
    cooldown: Annotated[
        float,
        typer.Option(
            "--cooldown",
            min=0,
            max=86400,
            metavar="S",
            help="Leave each timed point's last S s out.",
        ),
    ] = 0.0,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            "-r",
            metavar="R,R,...",
            help="Open loop: send R requests/s regardless of replies (one point per rate).",
        ),
    ] = None,
    arrival: Annotated[
        str, typer.Option("--arrival", help="constant or poisson inter-arrival times.")
    ] = "constant",
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            min=0.1,
            max=86400,
            metavar="S",
            help="Seconds per point (default: --requests at each rate).",
        ),
    ] = None,
    sweep: Annotated[
        int,
        typer.Option(
            "--sweep",
            min=0,
            max=100,
            metavar="N",
            help="Synchronous baseline, throughput ceiling, then N rates between.",
        ),
    ] = 0,
    max_concurrency: Annotated[
        int,
        typer.Option(
            "--max-concurrency", min=1, max=4096, help="Concurrency that finds the ceiling."
        ),
    ] = 64,
    slo: Annotated[
        str | None,
        typer.Option(
            "--slo",
            metavar="SPEC",
            help="Latency limits, e.g. ttft_p99=500ms,itl_p99=50ms: goodput per point.",
        ),
    ] = None,
    search: Annotated[
        bool,
        typer.Option("--search", help="Find the highest rate meeting --slo (double, bisect)."),
    ] = False,
    max_rate: Annotated[
        float,
        typer.Option("--max-rate", min=0.01, max=1e6, help="Highest rate --search tries."),
    ] = 10000.0,
    search_steps: Annotated[
        int, typer.Option("--search-steps", min=0, max=20, help="Bisection steps of --search.")
    ] = 4,
    fixed_output: Annotated[
        bool,
        typer.Option(
            "--fixed-output",
            help="Ask for exactly --max-tokens (ignore_eos, min_tokens) where supported.",
        ),
    ] = False,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=0, max=2**32 - 1, help="Seed of the first point (each point its own)."
        ),
    ] = 0,
    repeat: Annotated[
        int,
        typer.Option("--repeat", min=1, max=100, help="Runs per point; 95% CIs when > 1."),
    ] = 1,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor/--no-monitor", help="Scrape /metrics and sample NVML during each point."
        ),
    ] = True,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.html|.svg|.png",
            help="Draw latency vs throughput and the time series.",
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="First measure the client's own overhead and schedule lag on a built-in mock.",
        ),
    ] = False,
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
    from llmops.cli import deps
    from llmops.client.prompts import load_prompts
    from llmops.client.targets import resolve_target

    # (the options are the signature; the body parses, calls and prints)
    _check_finite(timeout_s=timeout_s, cooldown=cooldown, max_rate=max_rate)
    if duration is not None:
        _check_finite(duration=duration)
    if out is not None:
        _check_out(out)
    if plot is not None:
        from llmops.client.plot import check_plot_path

        check_plot_path(plot)
    settings = _settings(
        concurrency=concurrency,
        requests=requests,
        max_tokens=max_tokens,
        warmup=warmup,
        cooldown=cooldown,
        transport=transport,
        timeout_s=timeout_s,
        tokenizer=tokenizer,
        rate=rate,
        arrival=arrival,
        duration=duration,
        fixed_output=fixed_output,
        seed=seed,
        repeat=repeat,
        sweep=sweep,
        max_concurrency=max_concurrency,
        slo=slo,
        search=search,
        max_rate=max_rate,
        search_steps=search_steps,
        monitor=monitor,
    )
    lookup = deps.deployment_resolver()
    targets = [resolve_target(target, api_key, lookup)]
    if compare is not None:
        targets.append(resolve_target(compare, compare_api_key or api_key, lookup))
    calibration = None
    if calibrate:
        from llmops.client.calibrate import calibrate as run_calibration

        calibration = run_calibration(settings)
        if not json_:
            render_calibration(output.stderr(), calibration)
    results = _run(targets, model, load_prompts(prompts), settings)
    _report(results, settings, calibration, plot=plot, out=out, json_=json_)
    _exit_status(results)


def _settings(
    *,
    concurrency: str,
    warmup: str,
    cooldown: float,
    transport: str,
    timeout_s: float,
    rate: str | None,
    arrival: str,
    duration: float | None,
    slo: str | None,
    search: bool,
    sweep: int,
    max_rate: float,
    max_concurrency: int,
    **same: Any,
) -> "BenchSettings":
    """The options checked together (each error names its option and how to fix it; finiteness
    is checked before) and turned into what the run needs; ``same`` are taken as they are
    (Typer checked their ranges)."""
    from llmops.client.bench import BenchSettings
    from llmops.client.load import ARRIVALS
    from llmops.client.slo import parse_slo
    from llmops.errors import UsageError

    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival {arrival!r} is not constant or poisson", "--arrival poisson")
    warmup_n, warmup_s = _warmup(warmup)
    timed = duration is not None or rate is not None or sweep or search
    if (warmup_s or cooldown) and not timed:
        raise UsageError(
            "--warmup Ts and --cooldown need timed points",
            "add --duration S (or use --rate, --sweep or --search)",
        )
    if sweep and duration is None:
        raise UsageError("--sweep needs --duration", "e.g. --sweep 4 --duration 20")
    slo_targets = parse_slo(slo) if slo else ()
    if search and not slo_targets:
        raise UsageError("--search needs --slo", "e.g. --search --slo ttft_p99=500ms")
    if duration is not None and warmup_s + cooldown >= duration:
        raise UsageError(
            f"--warmup {warmup_s:g}s plus --cooldown {cooldown:g}s leave nothing of --duration "
            f"{duration:g}",
            "make --duration longer than the two windows together",
        )
    return BenchSettings(
        concurrency=_levels(concurrency),
        warmup=warmup_n,
        transport=_transport(transport),
        timeout_s=timeout_s,
        rates=_rates(rate) if rate is not None else (),
        arrival=arrival,
        duration_s=duration,
        warmup_s=warmup_s,
        cooldown_s=cooldown,
        sweep=sweep,
        sweep_concurrency=max_concurrency,
        slo=slo_targets,
        search=search,
        max_rate=max_rate,
        **same,
    )


def _report(
    results: "list[EndpointResult]",
    settings: "BenchSettings",
    calibration: dict[str, Any] | None,
    *,
    plot: Path | None,
    out: Path | None,
    json_: bool,
) -> None:
    """The table (or the JSON document) on stdout, and the plot and ``--out`` file if asked."""
    doc = _document(results, settings)
    if calibration is not None:
        doc["calibration"] = calibration
    if plot is not None:
        from llmops.client.plot import write_plot

        write_plot(plot, [{"label": r.url, "endpoint": r} for r in results])
        output.stderr().print(f"plot written to {plot}", markup=False, highlight=False)
    if out is not None:
        from llmops.hw.facts import SCHEMA_VERSION, to_jsonable

        text = json.dumps({"schema": SCHEMA_VERSION, **to_jsonable(doc)}, indent=2)
        out.write_text(text + "\n", encoding="utf-8")
    if json_:
        output.emit_json(doc)
    else:
        render(output.stdout(), results)


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


def _warmup(spec: str) -> tuple[int, float]:
    """``--warmup``: ``N`` untimed requests, or ``Ts`` a leading window of every timed point."""
    import math

    from llmops.errors import UsageError

    text = spec.strip().lower()
    try:
        if text.endswith("s"):
            value = float(text[:-1])
            if math.isfinite(value) and 0 <= value <= 86400:
                return 0, value
        else:
            n = int(text)
            if 0 <= n <= 100000:
                return n, 0.0
    except ValueError:
        pass
    raise UsageError(
        f"--warmup {spec!r} is neither a request count nor seconds",
        "e.g. --warmup 2 (requests) or --warmup 5s (a window)",
    )


def _rates(spec: str) -> tuple[float, ...]:
    import math

    from llmops.errors import UsageError

    try:
        rates = tuple(float(p) for p in spec.replace(" ", "").split(",") if p)
    except ValueError:
        rates = ()
    if not rates or not all(math.isfinite(r) and 0 < r <= 1e6 for r in rates):
        raise UsageError(
            f"--rate {spec!r} is not a list of positive request rates (at most 1e6/s)",
            "e.g. --rate 2,4,8",
        )
    return rates


def _transport(name: str) -> str:
    from llmops.errors import UsageError

    if name not in ("raw", "httpx"):
        raise UsageError(f"--transport {name!r} is not raw or httpx", "use --transport raw")
    return name


def _run(
    targets: list[Any], model: str | None, prompts: list[Any], settings: "BenchSettings"
) -> "list[EndpointResult]":
    import asyncio

    from llmops.cli import deps
    from llmops.client.bench import bench_endpoint

    nvml = deps.nvml_module()
    labels = "AB" if len(targets) > 1 else " "
    with Progress() as progress:

        async def go() -> "list[EndpointResult]":
            return [
                await bench_endpoint(
                    label.strip(), t.url, t.api_key, model, prompts, settings, progress, nvml
                )
                for label, t in zip(labels, targets, strict=False)
            ]

        return asyncio.run(go())


def _document(results: "list[EndpointResult]", settings: "BenchSettings") -> dict[str, Any]:
    from dataclasses import asdict

    return {"settings": asdict(settings), "endpoints": results}


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


def bench_plot(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="RESULTS.json...", help="Saved `llmops bench --out` files."),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="FILE.html|.svg|.png", help="Where to draw them."),
    ],
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Compare saved bench runs in one plot: latency vs throughput, one line per run."""
    from llmops.client.plot import check_plot_path, runs_from_document, write_plot
    from llmops.errors import UsageError

    check_plot_path(out)
    runs: list[dict[str, Any]] = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(
                f"{str(f)!r} cannot be read: {exc.strerror}", "give a saved run"
            ) from exc
        except ValueError as exc:
            raise UsageError(
                f"{str(f)!r} is not JSON", "save a run with `llmops bench URL --out run.json`"
            ) from exc
        runs += runs_from_document(doc, f.name)
    write_plot(out, runs)
    if json_:
        output.emit_json({"plot": str(out), "runs": [r["label"] for r in runs]})
    else:
        output.stdout().print(
            f"plot of {len(runs)} run(s) written to {out}", markup=False, highlight=False
        )


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("bench-plot")(bench_plot)
