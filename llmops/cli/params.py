"""Option types shared by several commands (one definition, one help text)."""

from typing import Annotated

import typer

ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help="API key (default: $LLMOPS_API_KEY, else the deployment's). Never printed.",
    ),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option("--model", metavar="MODEL", help="Model name (default: the served one)."),
]
TopOnceOpt = Annotated[
    bool, typer.Option("--once", help="Print one frame (rates over --interval) and exit.")
]
TopJsonOpt = Annotated[bool, typer.Option("--json", help="Output as JSON (with --once).")]
