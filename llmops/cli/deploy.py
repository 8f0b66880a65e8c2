"""`llmops ps`, `llmops logs`, `llmops down`: see and stop what llmops started."""

import sys
from typing import Annotated

import typer

from llmops.cli import deps, output


def _uptime(s: int | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def ps(
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """List deployments llmops started (containers and native processes) with their health."""
    d = deps.deployments()
    rows = d.status()
    if d.docker_error:
        output.warn(f"Docker: {d.docker_error}; only native deployments are listed")
    if json_:
        if any(r.status == "running" for r in rows):
            nv = deps.collect_facts(["nvidia"]).nvidia
            rows = d.measure(rows, nv.gpus if nv is not None and nv.error is None else None)
        output.emit_json({"deployments": rows})
        return
    from rich import box

    if not rows:
        output.info("no deployments; start one with `llmops up MODEL`")
        return
    t = output.table(box=box.SIMPLE_HEAD, pad_edge=False)  # labels print literally
    for col in (
        "name",
        "engine",
        "model",
        "quant",
        "runtime",
        "port",
        "GPUs",
        "status",
        "health",
        "uptime",
    ):
        t.add_column(col, no_wrap=col in ("name", "port", "status"))
    for r in rows:
        t.add_row(
            r.name,
            r.engine or "?",
            r.model or "?",
            r.quant or "?",
            r.runtime,
            str(r.port or "-"),
            r.gpus or "-",
            r.status,
            r.health,
            _uptime(r.uptime_s),
        )
    output.stdout().print(t)
    _warn_broken(rows)


def _warn_broken(rows: list) -> None:  # type: ignore[type-arg]
    """One line per damaged record: what is wrong, and the command that removes it."""
    for r in rows:
        if r.status == "broken":
            output.warn(r.problem or f"deployment {r.name} is broken")


def logs(
    name: Annotated[str, typer.Argument(help="Deployment name (see `llmops ps`).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option("--tail", "-n", min=0, help="Only the last N lines (default all)."),
    ] = None,
) -> None:
    """Print a deployment's engine log (container log or native log file)."""
    d = deps.deployments()
    if follow:
        try:
            for chunk in d.follow(name, tail if tail is not None else 50):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        except KeyboardInterrupt:
            return
        return
    text = d.logs(name, tail)
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


def down(
    name: Annotated[str | None, typer.Argument(help="Deployment name (see `llmops ps`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every llmops deployment.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
    grace: Annotated[
        int,
        typer.Option(
            "--grace", min=0, max=3600, help="Seconds to wait after SIGTERM before SIGKILL."
        ),
    ] = 20,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also remove a damaged record (`llmops ps` shows it as broken); only an engine "
            "llmops can still identify is stopped.",
        ),
    ] = False,
) -> None:
    """Stop and remove a deployment (only ever what llmops started)."""
    from llmops.errors import LlmopsError, UsageError
    from llmops.run.state import BrokenDeployment

    if bool(name) == all_:
        raise UsageError("give a deployment name or --all", "`llmops ps` lists them")
    d = deps.deployments()
    if all_:
        names = d.names()
    else:
        n = name or ""
        rec = d.record(n)  # also validates the name
        if rec is None or (isinstance(rec, BrokenDeployment) and not force):
            d.require(n)  # not found: the error lists what exists; damaged: hint --force
        names = [n]
    stopped, skipped = [], []
    for n in names:
        try:
            d.stop(n, grace, force=force)
        except LlmopsError as err:
            if not all_:
                raise
            skipped.append(n)  # --all carries on: one bad record must not stop the rest
            output.warn(f"{err.message}" + (f"; {err.hint}" if err.hint else ""))
            continue
        stopped.append(n)
        if not json_:
            output.info(f"stopped {n}")
    if json_:
        output.emit_json({"stopped": stopped, "skipped": skipped})
    elif not stopped and not skipped:
        output.info("nothing to stop")
    if skipped:
        raise LlmopsError(
            f"{len(skipped)} deployment(s) were left: {', '.join(skipped)}",
            "see the warnings above; `llmops down NAME --force` removes a damaged record",
        )


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("down")(down)
