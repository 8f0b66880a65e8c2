"""`llmops pull MODEL [--quant Q]`: download one format's weights into the HF cache."""

from typing import TYPE_CHECKING, Annotated

import typer

from llmops.cli import output

if TYPE_CHECKING:
    from llmops.catalog.hub import HubClient


def hub_client() -> "HubClient":
    """The Hub client `pull` uses (tests monkeypatch this factory)."""
    import os

    from llmops.catalog.hub import HfHubClient

    return HfHubClient(os.environ.get("HF_TOKEN"))


def pull(
    model: Annotated[str, typer.Argument(help="Catalog name/alias or Hub repo id.")],
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant", "-q", help="Which format to download (default: the checkpoint's dtype)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the files and sizes, download nothing.")
    ] = False,
) -> None:
    """Download MODEL's weights for one quant into the Hugging Face cache (after a disk check)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from llmops.catalog.hub import check_disk, hf_cache_dir, plan_pull, run_pull
    from llmops.catalog.resolve import resolve
    from llmops.plan.memory import check_quant, default_quant

    res = resolve(model)
    spec = res.spec
    q = (quant or res.native_quant or default_quant(spec, on_cpu=False)).lower()
    check_quant(spec, q)
    # 8bit/4bit/fp32 are made on the fly from the 16-bit checkpoint
    q_files = spec.formats.dtype if q in ("8bit", "4bit", "fp32") else q
    client = hub_client()
    plan = plan_pull(spec, q_files, client, hf_cache_dir())
    output.info(
        f"{spec.name} ({q}): {len(plan.files)} file(s) from {plan.repo}, "
        f"{plan.total_bytes / 1e9:.2f} GB, into {plan.cache_dir}"
    )
    check_disk(plan)
    if dry_run:
        for f in plan.files:
            output.stdout().print(f, highlight=False, markup=False)
        return
    with Progress(
        TextColumn("downloading weights"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.description}"),
        console=output.stderr(),
    ) as progress:
        task = progress.add_task("", total=plan.total_bytes)

        def step(name: str, size: int) -> None:
            progress.update(task, advance=size, description=name)

        where = run_pull(plan, client, step)
    output.stdout().print(str(where), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
