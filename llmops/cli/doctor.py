"""`llmops doctor`: probe the host and say what is wrong and how to fix it."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import deps, output

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts
    from llmops.plan.checks import Check, CheckSpec


@dataclass(frozen=True)
class DoctorReport:
    """The checks run over one host's facts: what `llmops doctor` prints and exits with, and
    what `llmops fleet doctor` reads back from every host."""

    facts: "HostFacts"
    checks: "list[Check]"
    exit_code: int

    def document(self) -> dict[str, Any]:
        """The `llmops doctor --json` document (schema, facts, checks) as JSON-ready data."""
        from llmops.hw.facts import SCHEMA_VERSION, to_jsonable

        return {
            "schema": SCHEMA_VERSION,
            **to_jsonable({"facts": self.facts, "checks": self.checks}),
        }


def check_facts(facts: "HostFacts", specs: "Iterable[CheckSpec] | None" = None) -> DoctorReport:
    """Run the checks (``specs``; default all) over ``facts``: the one facts → doctor step."""
    from llmops.plan import checks as chk

    results = chk.run_checks(facts, specs)
    return DoctorReport(facts, results, chk.exit_code(results))


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
    report = check_facts(facts, specs)
    if json_:
        output.emit_json(report.document())
    else:
        from llmops.cli.doctor_view import render_report

        render_report(output.stdout(), facts, report.checks)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
