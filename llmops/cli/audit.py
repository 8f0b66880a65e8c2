"""`llmops audit NAME|PORT|URL`: which routes answer without an API key."""

from typing import Annotated, Any

import typer

from llmops.cli import deps, output


def audit_table(result: Any) -> Any:
    """The audit as a rich table: each route, what it is, what it answered without a key."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from llmops.plan import audit as pa

    means = {
        pa.OPEN: "OPEN",
        pa.PROTECTED: "needs the key",
        pa.ABSENT: "not served",
        pa.UNKNOWN: "no usable answer",
    }
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("route", "kind", "probe", "answer", "means"):
        t.add_column(col, no_wrap=True)
    for p in result.probes:
        got = str(p.status) if p.status is not None else (p.error or "-")
        meaning = means[p.answer]
        if p.answer == pa.OPEN and p.kind not in pa.REFUSING_KINDS:
            meaning = "open (lists/tokenizes: allowed)"
        style = "bold red" if p.answer == pa.OPEN and p.kind in pa.REFUSING_KINDS else None
        t.add_row(Text(p.label), p.kind, p.probed_with, Text(got), Text(meaning), style=style)
    return t


def audit_cmd(
    target: Annotated[
        str,
        typer.Argument(help="Deployment name (see `llmops ps`), a local port, or a URL."),
    ],
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="The engine behind a port or URL (vllm, sglang, llamacpp, tgi, torch): probe only its "
            "routes. Default: a deployment's own; for a port or URL every engine's.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each route's answer.")
    ] = 10.0,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Ask every route the engine serves, without an API key, which answer (exit 1 if any
    route that generates or administers does)."""
    from llmops.errors import UsageError
    from llmops.plan import audit as pa
    from llmops.run import audit as ra

    if engine is not None and engine not in pa.ENGINE_NAMES:
        raise UsageError(f"unknown --engine {engine!r}", "use " + ", ".join(pa.ENGINE_NAMES))
    if not timeout > 0 or timeout > 600:
        raise UsageError(f"--timeout {timeout} is out of range", "give 0 < seconds <= 600")
    tgt = ra.resolve(target, deps.deployments, engine)
    what = f"deployment {tgt.deployment}" if tgt.deployment else pa.base_url(tgt.url)
    if not json_:
        scope = f"{tgt.engine} routes" if tgt.engine else "every known engine's routes"
        output.info(f"auditing {what} ({scope}) without an API key")
    result = ra.audit(tgt.url, tgt.engine, timeout_s=timeout)
    if json_:
        output.emit_json({"target": target, "deployment": tgt.deployment, "audit": result})
    else:
        output.stdout().print(audit_table(result))
        for line in result.caveats:
            output.warn(line)
        if result.ok:
            output.info(f"protected: {result.detail}")
        else:
            output.warn(f"{result.verdict}: {result.detail}")
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(
        "audit",
        help="Probe a deployment, port or URL without credentials: every route that generates, "
        "tokenizes, lists slots/props or administers, and what it answered.",
    )(audit_cmd)
