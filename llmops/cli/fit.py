"""`llmops fit` and `llmops recommend`: what fits on this (or described) hardware, and how well."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import deps, output

if TYPE_CHECKING:
    from rich.table import Table

    from llmops.errors import DoesNotFitError
    from llmops.hw.facts import HostFacts
    from llmops.plan.deploy import Decision
    from llmops.plan.hardware import Device
    from llmops.plan.memory import FitReport
    from llmops.plan.recommend import Recommendation
    from llmops.plan.verify import VerifyRow

GIB = 1 << 30
MAX_TARGET_CONTEXT = 1 << 24  # above every model's trained context (Llama 4 Scout: 10M)
MIB = 1 << 20

HwOpt = Annotated[
    str | None,
    typer.Option(
        "--hw",
        metavar="SPEC",
        help="Plan for hardware you describe instead of probing this host: 2x24GB, "
        "1xA100-80GB, 8xH100, 24GB+12GB, cpu, cpu:64GB.",
    ),
]
FactsOpt = Annotated[
    Path | None,
    typer.Option(
        "--facts", metavar="FILE", help="Plan for a host saved with `llmops doctor --json`."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Output as JSON.")]


def host_facts(hw: str | None, facts_file: Path | None) -> "HostFacts":
    """The hardware to plan for: --facts FILE, --hw SPEC, or the local probe."""
    return deps.planning_facts(hw, facts_file, ["nvidia", "system", "docker"])


def _devices(facts: "HostFacts") -> "tuple[tuple[Device, ...], Device | None]":
    from llmops.plan.hardware import devices_from_facts

    return devices_from_facts(facts)


def _gib(b: int) -> str:
    return f"{b / GIB:.2f}"


def fit_table(r: "FitReport") -> "Table":
    """The per-device breakdown, GiB."""
    from rich.table import Table

    t = Table(title=None, show_lines=False)
    for col in (
        "device",
        "layers",
        "weights",
        "KV cache",
        "activations",
        "overhead",
        "total",
        "usable",
        "capacity",
        "fits",
    ):
        t.add_column(col, justify="left" if col == "device" else "right")
    for d in r.per_gpu:
        label = f"GPU {d.index}" if d.device == "gpu" else "CPU RAM"
        t.add_row(
            f"{label} {d.name}"[:40],
            str(d.layers),
            _gib(d.weights_bytes),
            _gib(d.kv_cache_bytes),
            _gib(d.activation_bytes),
            _gib(d.overhead_bytes),
            _gib(d.total_bytes),
            _gib(d.usable_bytes),
            _gib(d.capacity_bytes),
            "yes" if d.fits else "[red]NO[/]",
        )
    if r.host_bytes:
        cap = _gib(r.host_capacity_bytes) if r.host_capacity_bytes is not None else "?"
        t.add_row(
            "host RAM (token_embd)",
            "",
            _gib(r.host_bytes),
            "",
            "",
            "",
            _gib(r.host_bytes),
            cap,
            "",
            "",
        )
    return t


def fit_json(d: "Decision", hardware: str) -> dict[str, Any]:
    from dataclasses import asdict

    r = d.report
    doc = asdict(r)
    s = d.summary()
    doc.update(
        engine=d.engine,
        artifact=s["artifact"],
        gpus=s["gpus"],
        passed_over=s["passed_over"],
        command=_command(d),
    )
    doc["per_gpu"] = [
        {**asdict(d), "fits": d.fits, "free_after_bytes": d.free_after_bytes} for d in r.per_gpu
    ]
    doc["total_bytes"] = r.total_bytes
    doc["hardware"] = hardware
    return doc


def _command(d: "Decision") -> str:
    return (
        f"llmops up {d.artifact.model} --engine {d.engine} --quant {d.artifact.quant} "
        f"--context {d.context}"
    )


def _print_fit(d: "Decision", label: str, hardware: str) -> None:
    r = d.report
    con = output.stdout()
    kvk = r.kv_bytes_per_token / 1024
    where = d.artifact.repo + (f"/{d.artifact.file}" if d.artifact.file else "")
    con.print(
        f"[bold]{output.esc(label)}[/]  {d.artifact.label} on {r.engine}, context {r.context} x "
        f"{r.concurrency} seq, KV {r.kv_dtype} ({kvk:g} KiB/token)",
        highlight=False,
    )
    con.print(f"artifact: {where} ({r.weights_source})", highlight=False, markup=False)
    con.print(f"hardware: {output.esc(hardware)}", highlight=False)
    con.print(fit_table(r))
    how = {
        "tensor": f"tensor parallel over {r.tensor_parallel} GPUs",
        "layers": f"layers split over {r.gpus_used} GPUs",
        "single": "1 GPU",
        "cpu": "CPU RAM",
    }[r.parallelism]
    verdict = "[green]FITS[/]" if r.fits else "[red]DOES NOT FIT[/]"
    con.print(
        f"{verdict} ({how}; {r.total_bytes / GIB:.2f} GiB in all). "
        f"Largest context that fits: {r.max_context} (trained: {r.trained_context}).",
        highlight=False,
    )
    if r.rope is not None:
        con.print(
            f"rope scaling: {r.rope.kind} x{r.rope.factor:g} from {r.rope.original_context} tokens",
            highlight=False,
        )
    for s in r.suggestions:
        con.print(f"  try: {s}", highlight=False, markup=False)
    if d.fits:
        con.print(f"start it: {_command(d)}", highlight=False, markup=False)


def _verify(d: "Decision") -> "tuple[list[str], tuple[VerifyRow, ...]]":
    from llmops.plan.verify import compare

    argv, engine = deps.fit_tool()(d)
    return argv, compare(d.report, engine)


def _verify_json(d: "Decision", argv: list[str], rows: "tuple[VerifyRow, ...]") -> dict[str, Any]:
    from llmops.plan.verify import overhead_bytes

    return {
        "tool_argv": argv,
        "rows": [
            {
                "device": r.device,
                "engine_device": r.engine_device,
                "part": r.part,
                "estimate_bytes": r.estimate_bytes,
                "engine_bytes": r.engine_bytes,
                "diff_pct": None if r.diff_pct is None else round(r.diff_pct, 2),
            }
            for r in rows
        ],
        "overhead_bytes_not_in_engine": overhead_bytes(d.report),
    }


def _print_verify(d: "Decision", argv: list[str], rows: "tuple[VerifyRow, ...]") -> None:
    from rich.table import Table

    from llmops.plan.verify import overhead_bytes

    con = output.stdout()
    t = Table(title="estimate vs the engine's own report (MiB)", title_justify="left")
    for col in ("device", "part", "llmops", "llama.cpp", "diff"):
        t.add_column(col, justify="left" if col in ("device", "part") else "right")
    for r in rows:
        diff = "—" if r.diff_pct is None else f"{r.diff_pct:+.1f} %"
        t.add_row(
            output.lit(f"{r.device} ({r.engine_device})"),
            r.part,
            f"{r.estimate_bytes / MIB:.0f}",
            f"{r.engine_bytes / MIB:.0f}",
            diff,
            style="bold" if r.part == "total" else None,
        )
    con.print(t)
    con.print(
        f"llmops also counts {overhead_bytes(d.report) / MIB:.0f} MiB of runtime overhead the "
        "engine does not report.",
        highlight=False,
    )
    con.print("asked: " + " ".join(argv), highlight=False, markup=False)


def fit(
    model: Annotated[str, typer.Argument(help="Catalog name/alias, Hub repo id, or a .gguf path.")],
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            "-q",
            help="fp16, bf16, fp32, 8bit, 4bit, gptq, awq, fp8, q4_k_m, q5_k_m, q8_0 "
            "(default: the checkpoint's dtype; GGUF Q4_K_M on a CPU-only host).",
        ),
    ] = None,
    context: Annotated[
        int | None,
        typer.Option("--context", "-c", help="Tokens per sequence (default: trained, max 32768)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", help="Sequences served at once at full context.")
    ] = 1,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine", "-e", help="vllm, sglang, llamacpp, tgi (maintenance mode) or torch."
        ),
    ] = None,
    kv_dtype: Annotated[
        str, typer.Option("--kv-dtype", help="KV cache dtype: auto, fp16, bf16, fp8, q8_0, q4_0.")
    ] = "auto",
    gpus: Annotated[
        int | None,
        typer.Option("--gpus-count", help="Use exactly this many GPUs (default: fewest)."),
    ] = None,
    gpu_memory_utilization: Annotated[
        float, typer.Option("--gpu-memory-utilization", help="vLLM's memory fraction.")
    ] = 0.90,
    rope: Annotated[
        str | None,
        typer.Option("--rope", help="Scaling beyond the trained context: dynamic, linear, yarn."),
    ] = None,
    hw: HwOpt = None,
    facts_file: FactsOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Use only cached Hub data.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also ask the engine what it will allocate (llama.cpp: llama-fit-params, on "
            "this host, with the model file) and show it beside the estimate.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Show whether MODEL fits: memory per GPU, the verdict, the largest context (exit 3: no fit).

    The choice is the one `up` and `render` make (same engine, artifact and context)."""
    from llmops.catalog.resolve import resolve
    from llmops.errors import UsageError
    from llmops.plan.deploy import HostCaps, Request, decide
    from llmops.plan.hardware import describe

    req = Request(
        model=model,
        engine=engine.lower() if engine else None,
        quant=quant.lower() if quant else None,
        context=context,
        concurrency=concurrency,
        kv_dtype=kv_dtype,
        gpu_count=gpus,
        gpu_memory_utilization=gpu_memory_utilization,
        rope_kind=rope,
        runtime="native" if verify else None,  # the tool takes the native server's flags
    )
    if verify and (hw or facts_file):
        raise UsageError(
            "--verify asks the engine on this host, so it cannot check --hw/--facts hardware",
            "drop --hw/--facts, or run `llmops --host HOST fit ... --verify` there",
        )
    facts = host_facts(hw, facts_file)
    res = resolve(model, offline=offline)
    d = decide(req, res, facts, HostCaps(planning=True))
    gpu_devs, host = _devices(facts)
    hardware = describe(gpu_devs, host)
    checked = _verify(d) if verify and d.fits else None
    if json_:
        doc = fit_json(d, hardware)
        if checked is not None:
            doc["verify"] = _verify_json(d, *checked)
        output.emit_json(doc)
    else:
        _print_fit(d, res.spec.label, hardware)
        if checked is not None:
            _print_verify(d, *checked)
    for w in d.warnings:
        output.warn(w)
    if not d.fits:
        raise _does_not_fit(d, res.spec.name, hardware, concurrency)


def _does_not_fit(d: "Decision", name: str, hardware: str, concurrency: int) -> "DoesNotFitError":
    """The exit-3 error: how far the fullest device is short, and what to try."""
    from llmops.errors import DoesNotFitError

    report = d.report
    need = max((x.total_bytes - x.usable_bytes for x in report.per_gpu), default=0)
    return DoesNotFitError(
        f"{name} as {d.artifact.label} on {d.engine} with {report.context} tokens x "
        f"{concurrency} does not fit {hardware}: {need / GIB:.2f} GiB short on the fullest "
        "device",
        "; ".join(report.suggestions[:3]) or f"try `llmops recommend` for what fits {hardware}",
    )


def recommend(
    task: Annotated[str | None, typer.Option("--task", help="chat or code.")] = None,
    prefer: Annotated[str, typer.Option("--prefer", help="quality or speed.")] = "quality",
    concurrency: Annotated[int, typer.Option("--concurrency", "-n", help="Sequences at once.")] = 1,
    limit: Annotated[int, typer.Option("--limit", help="How many rows (0: all).")] = 10,
    context: Annotated[
        int,
        typer.Option("--context", "-c", help="Target context in tokens: rows below it rank last."),
    ] = 8192,
    hw: HwOpt = None,
    facts_file: FactsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Rank the catalog's models x quant x engine x context that fit, best first, with why.

    Ranks by quality tier, then benchmark x quant quality, then the newer release; each row
    reaches the target context with headroom and names the runner-up engine/quant."""
    from llmops.catalog.recipes import catalog
    from llmops.errors import DoesNotFitError, UsageError
    from llmops.plan.hardware import describe
    from llmops.plan.recommend import recommend as rank

    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}", "e.g. `-n 4`")
    if limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {limit}", "e.g. `--limit 5`")
    if context < 1 or context > MAX_TARGET_CONTEXT:
        raise UsageError(
            f"--context must be 1..{MAX_TARGET_CONTEXT} tokens, got {context}",
            "e.g. `--context 32768` (the longest trained context in the catalog is 10M)",
        )
    facts = host_facts(hw, facts_file)
    gpu_devs, host = _devices(facts)
    hardware = describe(gpu_devs, host)
    recs = rank(
        catalog().models,
        facts,
        task=task,
        prefer=prefer,
        concurrency=concurrency,
        limit=limit,
        context=context,
    )
    if json_:
        output.emit_json(
            {
                "hardware": hardware,
                "prefer": prefer,
                "task": task,
                "target_context": context,
                "recommendations": [_rec_json(r) for r in recs],
            }
        )
    else:
        _print_recs(recs, hardware)
    if not recs:
        raise DoesNotFitError(
            f"no catalog model fits {hardware}",
            "plan for other hardware with `--hw 1x24GB`, or free memory on this host",
        )


def _rec_json(r: "Recommendation") -> dict[str, Any]:
    return {
        "model": r.model,
        "display_name": r.display_name,
        "quant": r.quant,
        "format": r.format,
        "engine": r.engine,
        "context": r.context,
        "gpus_used": r.gpus_used,
        "params": r.params,
        "mmlu": r.mmlu,
        "quality_score": round(r.quality_score, 2),
        "speed_score": round(r.speed_score, 3),
        "total_bytes": r.total_bytes,
        "capacity_bytes": r.capacity_bytes,
        "tier": r.tier,
        "released": r.released or None,
        "runner_up": r.runner_up or None,
        "reason": r.reason,
        "command": f"llmops up {r.model} --engine {r.engine} --quant {r.quant} --context {r.context}",
    }


def _print_recs(recs: "list[Recommendation]", hardware: str) -> None:
    from rich.table import Table

    con = output.stdout()
    con.print(f"hardware: {output.esc(hardware)}", highlight=False)
    t = Table()
    for col in (
        "#",
        "model",
        "params",
        "artifact",
        "engine",
        "context",
        "GPUs",
        "memory GiB",
        "why",
    ):
        t.add_column(
            col,
            justify="right" if col in ("#", "params", "context", "GPUs", "memory GiB") else "left",
        )
    for i, r in enumerate(recs, 1):
        t.add_row(
            str(i),
            r.model,
            f"{r.params / 1e9:.1f}B",
            r.format,
            r.engine,
            str(r.context),
            str(r.gpus_used) if r.gpus_used else "cpu",
            f"{r.total_bytes / GIB:.1f}",
            r.reason,
        )
    con.print(t)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("recommend")(recommend)
