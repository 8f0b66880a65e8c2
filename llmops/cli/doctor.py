"""`llmops doctor`: probe the host and say what is wrong and how to fix it."""

from pathlib import Path
from typing import Annotated

import typer

from llmops.cli import deps, output


def doctor(
    json_: Annotated[bool, typer.Option("--json", help="Output facts and checks as JSON.")] = False,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-c",
            metavar="NAME",
            help="Run only this check or group (gpu, system, docker, hf, tools, platform, or a "
            "full name such as docker.nvidia); repeatable.",
        ),
    ] = None,
    gpu_smoke_test: Annotated[
        bool,
        typer.Option(
            "--gpu-smoke-test", help="Also run a container that requests GPUs (`--gpus all`)."
        ),
    ] = False,
    smoke_image: Annotated[
        str | None,
        typer.Option(
            "--smoke-image",
            metavar="IMAGE",
            help="Image for --gpu-smoke-test (default a CUDA base image).",
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not contact the Hugging Face Hub.")
    ] = False,
    facts_file: Annotated[
        Path | None,
        typer.Option(
            "--facts",
            metavar="FILE",
            help="Check facts saved by `llmops doctor --json` instead of probing this host.",
        ),
    ] = None,
) -> None:
    """Probe this host (GPUs, system, Docker, platform, Hugging Face, tools) and say what to fix."""
    from llmops.plan import checks as chk

    specs = chk.select(check)
    if facts_file is not None:
        facts = deps.load_facts_file(facts_file)
    else:
        facts = deps.collect_facts(
            chk.sections_for(specs),
            gpu_smoke_test=gpu_smoke_test,
            gpu_smoke_test_image=smoke_image,
            hf_online_check=not offline,
        )
    results = chk.run_checks(facts, specs)
    if json_:
        output.emit_json({"facts": facts, "checks": results})
    else:
        from llmops.cli.doctor_view import render_report

        render_report(output.stdout(), facts, results)
    code = chk.exit_code(results)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
