"""`llmops forward NAME|PORT --host H`: reach a remote endpoint as localhost, over SSH."""

import signal
import time
from typing import Annotated

import typer

from llmops.cli import deps, output
from llmops.errors import UsageError


def forward(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="NAME|PORT",
            help="A deployment name on the host (its port is read from its state there), or a "
            "port number.",
        ),
    ],
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="HOST",
            help="user@host[:port], an alias from ~/.ssh/config, or a pasted 'ssh -p ...' command "
            "(default: the root --host).",
        ),
    ] = None,
    local_port: Annotated[
        int | None,
        typer.Option(
            "--local-port",
            metavar="P",
            min=0,
            max=65535,
            help="Local port on 127.0.0.1 (default: the remote port; 0 picks a free one).",
        ),
    ] = None,
    remote_host: Annotated[
        str,
        typer.Option(
            "--remote-host",
            metavar="ADDR",
            help="Address to connect to, as seen from the host.",
        ),
    ] = "127.0.0.1",
    trust_new_host: Annotated[
        bool,
        typer.Option("--trust-new-host", help="Accept and record the key of a new host."),
    ] = False,
) -> None:
    """Forward a local port (bound to 127.0.0.1 only) to an endpoint on a remote host; Ctrl-C stops."""
    host = host or ctx.meta.get("llmops.host")
    if not host or not host.strip():
        raise UsageError("forward needs a host", "add --host user@host[:port]")
    if target.isdigit() and not 1 <= int(target) <= 65535:
        raise UsageError(f"port {target} is not from 1 to 65535", "e.g. `llmops forward 8000`")
    if not target.isdigit():
        deps.deployment_store().dir(target)  # a deployment name llmops could have made, or exit 2
    if not remote_host or any(c.isspace() or ord(c) < 0x20 for c in remote_host):
        raise UsageError(f"--remote-host {remote_host!r} is not an address", "e.g. 127.0.0.1")
    trust = trust_new_host or bool(ctx.meta.get("llmops.trust_new_host"))
    with deps.ssh_host(host, trust_new_host=trust) as h:
        if target.isdigit():
            remote_port = int(target)
            what = f"port {remote_port}"
        else:
            from llmops.run.remote import deployment_port

            remote_port = deployment_port(h, target)
            what = f"deployment {target} (port {remote_port})"
        lp = remote_port if local_port is None else local_port
        with h.forward(remote_port, local_port=lp, remote_host=remote_host) as fwd:
            output.info(
                f"forwarding 127.0.0.1:{fwd.local_port} → {remote_host}:{remote_port} on "
                f"{h.label} ({what}); Ctrl-C stops"
            )
            # The URL on stdout (data), so scripts can read it.
            typer.echo(fwd.url)
            shown = 0
            # SIGTERM (`kill`, a service manager, a background job, where Ctrl-C is ignored)
            # closes the forward as cleanly as Ctrl-C does.
            previous = signal.signal(signal.SIGTERM, _interrupt)
            try:
                while fwd.alive():
                    time.sleep(0.5)
                    for err in fwd.errors[shown:]:
                        output.warn(err)
                    shown = len(fwd.errors)
            except KeyboardInterrupt:
                output.info(f"forward closed after {fwd.connections} connection(s)")
                return
            finally:
                signal.signal(signal.SIGTERM, previous)
    from llmops.errors import SshConnectError

    raise SshConnectError(
        f"the SSH session to {h.label} ended; the forward is closed",
        "run the command again (the host may have restarted)",
    )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.command("forward")(forward)
