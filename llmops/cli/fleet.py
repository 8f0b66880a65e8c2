"""`llmops fleet doctor | ps | up | top | hosts`: one command on many hosts, in parallel, one
table (`top`: one live screen).

Each host runs its own llmops with ``--json`` (hosts without llmops still answer ``fleet
doctor``, from shell commands and nvidia-smi); the documents are merged into one table, and a
host that cannot be reached is an error row that does not stop the others.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from llmops.cli import deps, output
from llmops.cli.params import TopJsonOpt, TopOnceOpt

fleet_app = typer.Typer(
    name="fleet",
    help="Run doctor, ps, up or top on many hosts from a hosts.yaml inventory, in parallel.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        "-i",
        metavar="FILE",
        help="The hosts.yaml inventory (default: $LLMOPS_HOME/hosts.yaml).",
    ),
]
OnOpt = Annotated[
    str | None,
    typer.Option("--on", metavar="LABEL", help="Only hosts with this label (or this name)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Output every host's result as JSON.")]


def _connector(ctx: typer.Context) -> Any:
    trust = bool(ctx.meta.get("llmops.trust_new_host"))

    def connect(h: Any) -> Any:
        return deps.ssh_host(h.ssh, trust_new_host=trust)

    return connect


def _hosts(ctx: typer.Context, inventory: Path | None, on: str | None) -> Any:
    from llmops.errors import UsageError

    if ctx.meta.get("llmops.host"):
        raise UsageError(
            "fleet commands take their hosts from the inventory, not --host",
            "drop --host, or use `--on LABEL` to pick hosts",
        )
    return deps.inventory(inventory).select(on)


def _emit(outcomes: list[Any], json_: bool, table: Any) -> None:
    if json_:
        output.emit_json({"hosts": outcomes})
    else:
        output.stdout().print(table)
    if any(not o.ok or o.exit_code for o in outcomes):
        raise typer.Exit(1)


def _base_table(title: str, *cols: str) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=None, pad_edge=False, show_edge=False)
    for c in ("host", *cols):
        t.add_column(c, overflow="fold")
    return t


def _error_cell(o: Any) -> str:
    return f"{o.error}" + (f"\nfix: {o.hint}" if o.hint else "")


@fleet_app.command("doctor")
def fleet_doctor(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    on: OnOpt = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not contact the Hugging Face Hub.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Probe and check every host; one line per host."""
    from llmops.cli.doctor import check_facts
    from llmops.run.fleet import llmops_json_job, run_on_hosts
    from llmops.run.remote import collect_remote_facts

    hosts = _hosts(ctx, inventory, on)

    def fallback(ssh: Any) -> tuple[int, Any]:
        """A host without llmops: probe it with shell commands, then check as `doctor` does."""
        report = check_facts(collect_remote_facts(ssh))
        return report.exit_code, report.document()

    argv = ["doctor", "--json", *(["--offline"] if offline else [])]
    job = llmops_json_job(argv, connect=_connector(ctx), fallback=fallback)
    outcomes = run_on_hosts(hosts, job)
    table = _base_table("fleet doctor", "status", "GPUs", "checks", "details")
    for o in outcomes:
        if not o.ok:
            table.add_row(
                o.name, "UNREACHABLE" if o.via is None else "ERROR", "-", "-", _error_cell(o)
            )
            continue
        doc = o.result or {}
        checks = doc.get("checks") or []
        n = {s: sum(1 for c in checks if c.get("status") == s) for s in ("pass", "warn", "fail")}
        status = "FAIL" if n["fail"] else "WARN" if n["warn"] else "PASS"
        nv = (doc.get("facts") or {}).get("nvidia") or {}
        gpus = nv.get("gpus") or []
        if gpus:
            names = sorted({str(g.get("name") or "?") for g in gpus})
            gpu_cell = f"{len(gpus)}× {', '.join(names)}"
        else:
            gpu_cell = "none" + (f" ({nv.get('error_kind')})" if nv.get("error_kind") else "")
        worst = [c for c in checks if c.get("status") == "fail"] or [
            c for c in checks if c.get("status") == "warn"
        ]
        detail = f"{worst[0]['name']}: {worst[0]['message']}" if worst else "all checks passed"
        if o.via == "shell-probe":
            detail += " (no llmops there: probed with shell commands)"
        table.add_row(
            o.name,
            status,
            gpu_cell,
            f"{n['pass']} pass, {n['warn']} warn, {n['fail']} fail",
            detail,
        )
    _emit(outcomes, json_, table)


@fleet_app.command("ps")
def fleet_ps(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    on: OnOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List deployments on every host (runs `llmops ps --json` on each)."""
    from llmops.run.fleet import llmops_json_job, rows_of, run_on_hosts, scalar_columns

    hosts = _hosts(ctx, inventory, on)
    outcomes = run_on_hosts(hosts, llmops_json_job(["ps", "--json"], connect=_connector(ctx)))
    rows = [(o, r) for o in outcomes if o.ok for r in rows_of(o.result)]
    cols = scalar_columns(r for _, r in rows)
    table = _base_table("fleet ps", *(cols or ["result"]))
    for o in outcomes:
        mine = [r for oo, r in rows if oo is o]
        if not o.ok:
            table.add_row(o.name, *(["-"] * (max(len(cols), 1) - 1)), _error_cell(o))
        elif not mine:
            table.add_row(o.name, *(["-"] * max(len(cols), 1)))
        for r in mine:
            table.add_row(o.name, *("-" if r.get(c) is None else str(r.get(c)) for c in cols))
    _emit(outcomes, json_, table)


@fleet_app.command(
    "up",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def fleet_up(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="What `llmops up` takes.")],
    on: Annotated[
        str, typer.Option("--on", metavar="LABEL", help="Start it on the hosts with this label.")
    ],
    inventory: InventoryOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start MODEL on every host with a label (runs `llmops up MODEL ... --json` on each);
    further options are passed to `up`."""
    from llmops.run.fleet import llmops_json_job, rows_of, run_on_hosts, scalar_columns

    hosts = _hosts(ctx, inventory, on)
    argv = ["up", model, *ctx.args, "--json"]
    outcomes = run_on_hosts(hosts, llmops_json_job(argv, connect=_connector(ctx)))
    rows = [(o, rows_of(o.result)[0]) for o in outcomes if o.ok and rows_of(o.result)]
    cols = scalar_columns(r for _, r in rows)
    table = _base_table(f"fleet up {model} --on {on}", "exit", *(cols or ["result"]))
    for o in outcomes:
        mine = next((r for oo, r in rows if oo is o), None)
        if mine is None:
            table.add_row(
                o.name,
                str(o.exit_code if o.exit_code is not None else "-"),
                *(["-"] * (max(len(cols), 1) - 1)),
                _error_cell(o) if o.error else "-",
            )
        else:
            table.add_row(
                o.name,
                str(o.exit_code),
                *("-" if mine.get(c) is None else str(mine.get(c)) for c in cols),
            )
    _emit(outcomes, json_, table)


@fleet_app.command("top")
def fleet_top(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    on: OnOpt = None,
    once: TopOnceOpt = False,
    interval: Annotated[
        float,
        typer.Option("--interval", "-n", min=0.2, max=3600, help="Seconds between refreshes."),
    ] = 2.0,
    json_: TopJsonOpt = False,
) -> None:
    """Live view of every host in one screen: deployments and GPUs with a host column.

    Each host's own `llmops top --once --json` runs over SSH (one session per host, kept open),
    all hosts in parallel; a host that cannot be reached is a line with its fix, and the others
    go on. `q` quits.
    """
    from llmops.cli.top import _FleetSession, _live, check_options, render_fleet_frame

    check_options(interval, "-n", once=once, json_=json_, command="llmops fleet top")
    hosts = _hosts(ctx, inventory, on)
    session = _FleetSession(hosts, _connector(ctx))
    try:
        if not once:
            _live(session, interval)
            return
        frame = session.frame(interval)
    finally:
        session.close()
    if json_:
        hosts = [
            {
                **h,
                "deployments": [vars(r) for r in h["deployments"]],
                "gpus": [vars(g) for g in h["gpus"]],
            }
            for h in frame["hosts"]
        ]
        output.emit_json({"interval_s": interval, "hosts": hosts})
    else:
        output.stdout().print(render_fleet_frame(frame, interval))
    if any(not h["ok"] for h in frame["hosts"]):
        raise typer.Exit(1)


@fleet_app.command("hosts")
def fleet_hosts(
    ctx: typer.Context, inventory: InventoryOpt = None, on: OnOpt = None, json_: JsonOpt = False
) -> None:
    """List the inventory's hosts and labels (connects to nothing)."""
    hosts = _hosts(ctx, inventory, on)
    if json_:
        output.emit_json({"hosts": list(hosts)})
        return
    table = _base_table("fleet hosts", "ssh", "labels")
    for h in hosts:
        table.add_row(h.name, h.ssh, ", ".join(h.labels) or "-")
    output.stdout().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(fleet_app, name="fleet")
