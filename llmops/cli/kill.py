"""`llmops kill`: stop llmops' tunnels and deployments; with --all, other inference engines too."""

from typing import Annotated, Any

import typer

from llmops.cli import deps, output


def _describe(t: Any) -> str:
    where = f"pid {t.ident}" if t.kind in ("process", "tunnel") else t.ident
    return f"{t.kind:<10} {t.name}  ({where}; {t.matched_by})"


def kill(
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also stop other inference processes and containers (TGI, vLLM, llama-server, "
            "gradio, ngrok, cloudflared), after listing them and asking.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be stopped.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before stopping.")] = False,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL (0-3600).")
    ] = 10.0,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Stop, in order: llmops tunnels, llmops deployments, and (--all) other known engines."""
    import math

    if not (math.isfinite(grace) and 0 <= grace <= 3600):
        from llmops.errors import UsageError

        raise UsageError(
            f"--grace must be a number of seconds from 0 to 3600, got {grace:g}",
            "e.g. `llmops kill --grace 10`",
        )
    seq = deps.kill_sequence()
    targets = seq.discover(include_foreign=all_)
    if seq.docker_error:
        output.warn(f"Docker: {seq.docker_error}; containers were not checked")
    for b in getattr(seq, "broken", []):
        output.warn(f"left alone: {b.problem or f'deployment {b.name} is broken'}")
    foreign = [t for t in targets if t.foreign]
    if not json_:
        for t in targets:
            output.info(("would stop " if dry_run else "") + _describe(t))
        if not targets:
            output.info("nothing to stop" + ("" if all_ else " (add --all for other engines)"))
    if dry_run or not targets:
        if json_:
            output.emit_json({"dry_run": dry_run, "targets": targets, "results": []})
        return
    if foreign and not yes:
        try:
            ok = typer.confirm(
                f"stop these {len(foreign)} process(es)/container(s) llmops did not start?",
                default=False,
                err=True,
            )
        except typer.Abort:
            ok = False
        if not ok:
            targets = [t for t in targets if not t.foreign]
            output.info("left the ones llmops did not start alone (pass --yes to skip asking)")
    results = seq.execute(targets, grace)
    if json_:
        output.emit_json({"dry_run": False, "targets": targets, "results": results})
    else:
        for r in results:
            extra = f": {r.detail}" if r.detail else ""
            output.stdout().print(
                f"{r.outcome:<8} {r.target.kind} {r.target.name} ({r.target.ident}){extra}",
                markup=False,
            )
    if any(r.outcome == "failed" for r in results):
        from llmops.errors import KillError

        raise KillError(
            "some targets could not be stopped (see above)",
            "run again as their owner (or with sudo); `llmops kill --dry-run --all` lists them",
        )


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
