"""`llmops power show|set|reset` and `llmops ecc show|on|off`: GPU power limits and ECC via NVML."""

from typing import Annotated, Any

import typer

from llmops.cli import deps, output

power_app = typer.Typer(
    help="GPU power limits (like `nvidia-smi -pl`): ~75% of the default limit is often nearly "
    "as fast, cooler and cheaper.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
ecc_app = typer.Typer(
    help="GPU ECC mode (like `nvidia-smi -e`): off frees some VRAM; changes apply after a reboot.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

GpuOpt = Annotated[
    str | None, typer.Option("--gpu", help="GPU indices, e.g. 0,1 (default: all GPUs).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Output as JSON.")]


def _gpus(text: str | None) -> tuple[int, ...] | None:
    from llmops.plan.gpus import admin_gpus

    return admin_gpus(text)


def _fmt(w: float | None) -> str:
    return "-" if w is None else f"{w:g} W"


@power_app.command("show")
def power_show(gpu: GpuOpt = None, json_: JsonOpt = False) -> None:
    """Each GPU's power draw, limit, default limit and allowed range."""
    rows = deps.gpu_admin().power_show(_gpus(gpu))
    if json_:
        output.emit_json({"gpus": rows})
        return
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("gpu", "name", "draw", "limit", "enforced", "default", "range"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        if r.error:
            t.add_row(str(r.index), f"error: {r.error}", "", "", "", "", "")
            continue
        rng = (
            f"{r.min_limit_w:g}-{r.max_limit_w:g} W"
            if r.min_limit_w is not None and r.max_limit_w is not None
            else "-"
        )
        t.add_row(
            str(r.index),
            r.name or "?",
            _fmt(r.draw_w),
            _fmt(r.limit_w),
            _fmt(r.enforced_limit_w),
            _fmt(r.default_limit_w),
            rng,
        )
    output.stdout().print(t)


def _report_power(changes: list[Any], json_: bool) -> None:
    if json_:
        output.emit_json({"changed": changes, "persistent": False})
        return
    for c in changes:
        output.stdout().print(
            f"GPU {c.index} ({c.name}): power limit {_fmt(c.old_limit_w)} -> {_fmt(c.new_limit_w)}"
            f" (default {_fmt(c.default_limit_w)})",
            markup=False,
        )
    output.info("power limits last until a reboot or driver reload (`llmops power reset` undoes)")


@power_app.command("set")
def power_set(
    watts: Annotated[
        float | None, typer.Option("--watts", help="New limit in watts, e.g. 280.")
    ] = None,
    percent: Annotated[
        float | None,
        typer.Option("--percent", help="New limit as a percentage of the default limit, e.g. 75."),
    ] = None,
    gpu: GpuOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Set the power limit, checked against each GPU's min/max (needs root)."""
    _report_power(deps.gpu_admin().power_set(_gpus(gpu), watts=watts, percent=percent), json_)


@power_app.command("reset")
def power_reset(gpu: GpuOpt = None, json_: JsonOpt = False) -> None:
    """Put the power limit back to each GPU's default (needs root)."""
    _report_power(deps.gpu_admin().power_set(_gpus(gpu), reset=True), json_)


def _onoff(v: bool | None) -> str:
    return "-" if v is None else ("on" if v else "off")


@ecc_app.command("show")
def ecc_show(gpu: GpuOpt = None, json_: JsonOpt = False) -> None:
    """Each GPU's ECC mode now and after the next reboot."""
    rows = deps.gpu_admin().ecc_show(_gpus(gpu))
    if json_:
        output.emit_json(
            {"gpus": [{**_asdict(r), "reboot_pending": r.reboot_pending} for r in rows]}
        )
        return
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("gpu", "name", "ecc now", "after reboot"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        if r.error:
            t.add_row(str(r.index), f"error: {r.error}", "", "")
        else:
            after = _onoff(r.pending) + (" (pending)" if r.reboot_pending else "")
            t.add_row(str(r.index), r.name or "?", _onoff(r.current), after)
    output.stdout().print(t)
    if any(r.current is None and not r.error for r in rows):
        output.info("'-': the GPU has no ECC (GeForce cards)")


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


def _ecc_set(enabled: bool, gpu: str | None, json_: bool) -> None:
    changes = deps.gpu_admin().ecc_set(enabled, _gpus(gpu))
    pending = [c for c in changes if c.current != c.pending]
    if json_:
        output.emit_json({"changed": changes, "reboot_required": bool(pending)})
        return
    for c in changes:
        state = "on" if c.pending else "off"
        if c.current == c.pending:
            msg = f"GPU {c.index} ({c.name}): ECC is already {state}"
        else:
            msg = (
                f"GPU {c.index} ({c.name}): ECC will be {state} after the next reboot "
                f"(pending; now {_onoff(c.current)})"
            )
        output.stdout().print(msg, markup=False)
    if pending:
        output.warn(
            "the change takes effect only after a reboot (or a GPU reset with `nvidia-smi -r` "
            "while nothing uses the GPU)"
        )


@ecc_app.command("on")
def ecc_on(gpu: GpuOpt = None, json_: JsonOpt = False) -> None:
    """Turn ECC on (pending until the next reboot; needs root)."""
    _ecc_set(True, gpu, json_)


@ecc_app.command("off")
def ecc_off(gpu: GpuOpt = None, json_: JsonOpt = False) -> None:
    """Turn ECC off to free some VRAM (pending until the next reboot; needs root)."""
    _ecc_set(False, gpu, json_)


def register(app: typer.Typer) -> None:
    app.add_typer(power_app, name="power")
    app.add_typer(ecc_app, name="ecc")
