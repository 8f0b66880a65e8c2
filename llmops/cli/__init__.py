"""The llmops command line: a thin Typer app over the domain code.

This module is the one error boundary: ``LlmopsError`` becomes a one-line message and a hint on
stderr with the error's exit code; anything else is an internal error (exit 70) whose traceback
is shown only with ``--debug`` or ``LLMOPS_DEBUG=1``.
"""

import os
import sys
import traceback
from typing import Annotated, Any

import typer

# typer >= 0.29 vendors click as typer._click (pinned in pyproject); the boundary needs its
# Context and ClickException types.
from typer._click.core import Context
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from llmops import __version__
from llmops.errors import ExitCode, LlmopsError


def _debug_enabled(ctx: Context | None) -> bool:
    if os.environ.get("LLMOPS_DEBUG", "") not in ("", "0"):
        return True
    while ctx is not None:
        if ctx.meta.get("llmops.debug"):
            return True
        ctx = ctx.parent
    return False


def report_error(err: LlmopsError) -> None:
    """Print an LlmopsError the way every command does: message, then hint, on stderr."""
    from llmops.cli.output import print_error

    print_error(err.message, err.hint)


class LlmopsGroup(TyperGroup):
    """Root group whose ``invoke`` is the single error boundary of the app."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        # The subcommand and its arguments as typed, for `--host H` to run them remotely.
        ctx.meta["llmops.argv"] = [*ctx._protected_args, *ctx.args]
        return rest

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmopsError as err:
            if _debug_enabled(ctx):
                traceback.print_exc(file=sys.stderr)
            report_error(err)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            from llmops.cli.output import print_error

            print_error("interrupted", None)
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:  # the internal-error boundary
            from llmops.cli.output import print_error

            if _debug_enabled(ctx):
                traceback.print_exc(file=sys.stderr)
            print_error(
                f"internal error: {type(exc).__name__}: {exc}",
                "run again with --debug for the traceback, and report it with that output",
            )
            raise typer.Exit(ExitCode.INTERNAL) from None


app = typer.Typer(
    name="llmops",
    cls=LlmopsGroup,
    help="Provision self-hosted LLM inference hosts: probe, fit, launch, expose, measure.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors (or set LLMOPS_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Run the command on a remote host over SSH: user@host[:port], an alias from "
            "~/.ssh/config, or a pasted 'ssh -p PORT user@host' command.",
        ),
    ] = None,
    trust_new_host: Annotated[
        bool,
        typer.Option(
            "--trust-new-host",
            help="Accept and record the key of a host not yet in known_hosts (a changed key is "
            "always refused).",
        ),
    ] = False,
) -> None:
    """Provision self-hosted LLM inference hosts: probe, fit, launch, expose, measure."""
    ctx.meta["llmops.debug"] = debug
    ctx.meta["llmops.host"] = host
    ctx.meta["llmops.trust_new_host"] = trust_new_host
    if host is not None:
        from llmops.cli.remote import dispatch

        dispatch(ctx)


def _register() -> None:
    # Command modules import only typer/rich and llmops' own light modules at import time;
    # SDKs (docker, paramiko, huggingface_hub, jinja2, torch) are imported inside commands.
    from llmops.cli import doctor

    doctor.register(app)
    __import__("llmops.cli.launch", fromlist=["register"]).register(app)
    __import__("llmops.cli.deploy", fromlist=["register"]).register(app)
    __import__("llmops.cli.serve", fromlist=["register"]).register(app)
    __import__("llmops.cli.engine", fromlist=["register"]).register(app)
    __import__("llmops.cli.remote", fromlist=["register"]).register(app)
    __import__("llmops.cli.forward", fromlist=["register"]).register(app)
    __import__("llmops.cli.fleet", fromlist=["register"]).register(app)
    __import__("llmops.cli.tunnel", fromlist=["register"]).register(app)
    __import__("llmops.cli.audit", fromlist=["register"]).register(app)
    __import__("llmops.cli.power", fromlist=["register"]).register(app)
    __import__("llmops.cli.kill", fromlist=["register"]).register(app)
    __import__("llmops.cli.chat", fromlist=["register"]).register(app)
    __import__("llmops.cli.bench", fromlist=["register"]).register(app)
    __import__("llmops.cli.top", fromlist=["register"]).register(app)
    __import__("llmops.cli.models", fromlist=["register"]).register(app)
    __import__("llmops.cli.fit", fromlist=["register"]).register(app)
    __import__("llmops.cli.pull", fromlist=["register"]).register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="llmops")
