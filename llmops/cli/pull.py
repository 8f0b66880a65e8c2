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
            "--quant",
            "-q",
            help="4bit, 8bit, fp16, bf16, awq, gptq, fp8, q4_k_m, ... (default: what `up` would "
            "choose here). A word means the artifact the engine serves: 4bit is AWQ/GPTQ on "
            "vLLM, GGUF Q4_K_M on llama.cpp.",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", "-e", help="The engine it is for (default: as `up` chooses)."),
    ] = None,
    hw: Annotated[
        str | None,
        typer.Option("--hw", help="Choose as for this hardware (e.g. 1x24GB) instead of here."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the files and sizes, download nothing.")
    ] = False,
) -> None:
    """Download MODEL's weights for one quant into the Hugging Face cache (after a disk check)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from llmops.catalog.hub import check_disk, hf_cache_dir, plan_pull, run_pull
    from llmops.catalog.resolve import resolve
    from llmops.cli import deps
    from llmops.plan.deploy import HostCaps, Request, decide

    res = resolve(model)
    spec = res.spec
    facts = deps.planning_facts(hw, None, ["nvidia", "system", "docker"])
    req = Request(
        model=model,
        engine=engine.lower() if engine else None,
        quant=quant.lower() if quant else None,
        force=True,
    )
    art = decide(req, res, facts, HostCaps(planning=True)).artifact
    if art.format == "bundled":
        output.info(
            f"{spec.name} ({art.label}): its weights ship in the `{art.repo}` Python package; "
            "nothing to download"
        )
        return
    client = hub_client()
    plan = plan_pull(art, client, hf_cache_dir())
    output.info(
        f"{spec.name} ({art.label}): {len(plan.files)} file(s) from {plan.repo}, "
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
