"""`llmops --host H CMD ...` (run any command on a remote host) and `llmops remote bootstrap`.

The dispatch is generic: with llmops installed on H, ``llmops --host H CMD ARGS`` runs
``<remote llmops> CMD ARGS`` over SSH, streaming its stdout/stderr and exiting with its exit
code, for every command (doctor, fit, recommend, up, ps, logs, down, power, kill, ...). Without
llmops there, the facts-only commands (``FACTS_ONLY``) run here on facts probed over SSH with
shell commands and ``nvidia-smi``; the others say how to install llmops there.
"""

import shlex
from pathlib import Path
from typing import Annotated

import typer

from llmops.cli import deps, output
from llmops.errors import RemoteLlmopsMissing, UsageError

#: Commands that run here and talk to the host themselves (or to many hosts).
LOCAL_COMMANDS = frozenset({"remote", "fleet", "forward"})
#: Commands that only read HostFacts: they work on a host without llmops (facts over SSH).
FACTS_ONLY = frozenset({"doctor", "fit", "recommend"})


def dispatch(ctx: typer.Context) -> None:
    """Called by the root callback when ``--host`` is given, before the subcommand runs.

    Raises ``typer.Exit`` with the remote exit code when the command ran remotely; returns
    (with the SSH session in ``ctx.meta``) when the command should run here on remote facts.
    """
    sub = ctx.invoked_subcommand
    if sub is None or sub in LOCAL_COMMANDS:
        return
    from llmops.run.remote import find_llmops, run_llmops

    host_text = ctx.meta["llmops.host"]
    argv = list(ctx.meta.get("llmops.argv") or [sub])
    if "--facts" in argv:
        raise UsageError(
            "--facts reads a file on this machine; it cannot be combined with --host",
            f"run `llmops {' '.join(argv)}` without --host",
        )
    host = deps.ssh_host(host_text, trust_new_host=bool(ctx.meta.get("llmops.trust_new_host")))
    ctx.call_on_close(host.close)
    host.connect()
    remote = find_llmops(host)
    if remote is not None:
        from llmops import __version__

        if remote.version != __version__:
            output.warn(
                f"{host.label} runs llmops {remote.version}, this is {__version__}; "
                f"`llmops remote bootstrap {shlex.quote(host_text)}` updates it"
            )
        if ctx.meta.get("llmops.debug"):
            argv = ["--debug", *argv]
        if sub == "top" and "--once" not in argv:
            # a live view needs this terminal: frames are read over SSH and drawn here
            ctx.meta["llmops.remote_top"] = (host, remote)
            return
        raise typer.Exit(run_llmops(host, remote, argv))
    if sub in FACTS_ONLY:
        output.info(
            f"llmops is not installed on {host.label}: probing it with shell commands and "
            f"nvidia-smi (`llmops remote bootstrap {shlex.quote(host_text)}` installs it for the full probe)"
        )
        ctx.meta["llmops.remote_facts"] = host
        return
    raise RemoteLlmopsMissing(
        f"llmops is not installed on {host.label}, and `{sub}` has to run there",
        f"install it with `llmops remote bootstrap {shlex.quote(host_text)}`",
    )


remote_app = typer.Typer(
    name="remote",
    help="Prepare remote hosts: install llmops there over SSH.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@remote_app.command("bootstrap")
def remote_bootstrap(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Argument(
            metavar="HOST",
            help="user@host[:port], an alias from ~/.ssh/config, or a pasted 'ssh -p ...' command.",
        ),
    ],
    wheel: Annotated[
        Path | None,
        typer.Option("--wheel", metavar="FILE", help="The llmops wheel (default: build one here)."),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(
            "--wheelhouse",
            metavar="DIR",
            help="Dependency wheels for the host's Python and platform (default: the ones "
            "installed here, when the host runs the same Python on the same platform).",
        ),
    ] = None,
    from_index: Annotated[
        bool,
        typer.Option("--from-index", help="Let the host's pip fetch dependencies from its index."),
    ] = False,
    python: Annotated[
        str, typer.Option("--python", metavar="CMD", help="The host's Python 3 interpreter.")
    ] = "python3",
    trust_new_host: Annotated[
        bool,
        typer.Option("--trust-new-host", help="Accept and record the key of a new host."),
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output what was done as JSON.")] = False,
) -> None:
    """Install llmops into ~/.llmops/venv on a host over SSH, and pick its runtime."""
    from llmops.run.remote import bootstrap

    trust = trust_new_host or bool(ctx.meta.get("llmops.trust_new_host"))
    with deps.ssh_host(host, trust_new_host=trust) as h:
        output.info(f"bootstrapping {h.label}")
        rep = bootstrap(
            h,
            wheel=wheel,
            wheelhouse=wheelhouse,
            from_index=from_index,
            python=python,
            log=lambda line: output.info(f"  {line}"),
        )
    if json_:
        output.emit_json({"bootstrap": rep})
        return
    out = output.stdout()
    out.print(f"llmops {rep.llmops_version} installed on {rep.host}", markup=False)
    out.print(f"  path      {rep.llmops_path}", markup=False)
    out.print(
        f"  python    {rep.python_version} ({rep.python}), venv {rep.venv}",
        markup=False,
    )
    out.print(
        f"  wheels    {rep.wheels_sent} copied ({rep.sent_mib} MiB), dependencies from "
        f"{rep.deps_from}",
        markup=False,
    )
    out.print(f"  platform  {rep.platform}", markup=False)
    out.print(f"  runtime   {rep.runtime}: {rep.runtime_reason}", markup=False)
    if rep.engines:
        found = ", ".join(f"{k} ({v})" for k, v in rep.engines.items() if v) or "none on PATH"
        out.print(f"  engines   {found}", markup=False)
    out.print(f"next: llmops --host {shlex.quote(host)} doctor", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote")
