"""`llmops tunnel [NAME|PORT] --via ...`, `llmops tunnel ls`, `llmops tunnel stop NAME|--all`.

Bare ``llmops tunnel`` exposes the one running deployment (with several it lists them and says
how to choose; with none it says how to start one). Every tunnel is audited first
(``llmops audit``), locally and then through the public URL.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click.core import Context
from typer.core import TyperGroup

from llmops.cli import deps, output

if TYPE_CHECKING:
    from llmops.run.tunnels import OpenedTunnel, Target


class _DefaultOpen(TyperGroup):
    """``llmops tunnel X ...`` means ``llmops tunnel open X ...`` unless X is a subcommand;
    bare ``llmops tunnel`` (or only options) means ``llmops tunnel open``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["open", *args]
        return super().parse_args(ctx, args)


tunnel_app = typer.Typer(
    cls=_DefaultOpen,
    help="Expose a deployment (or a local port) through cloudflared, ngrok or an SSH reverse "
    "forward, after auditing that no route answers without its API key.",
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _manager() -> Any:
    return deps.tunnel_manager()


def _cf_token(token_file: Path | None) -> str | None:
    from llmops.errors import UsageError

    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as e:
            raise UsageError(
                f"cannot read the tunnel token file {token_file}: {e.strerror or e}",
                "pass the file cloudflared's dashboard token is saved in (mode 0600)",
            ) from e
        if not token:
            raise UsageError(f"the tunnel token file {token_file} is empty", "save the token in it")
        return token
    return os.environ.get("TUNNEL_TOKEN") or os.environ.get("CF_TUNNEL_TOKEN") or None


@tunnel_app.command("open")
def tunnel_open(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Deployment name (see `llmops ps`) or a local port; omitted: the one running "
            "deployment."
        ),
    ] = None,
    via: Annotated[
        str, typer.Option("--via", help="cloudflared (quick or named tunnel), ngrok, or ssh.")
    ] = "cloudflared",
    ssh_host: Annotated[
        str | None, typer.Option("--ssh-host", help="[user@]host[:port] you own (with --via ssh).")
    ] = None,
    ssh_key: Annotated[
        Path | None,
        typer.Option("--ssh-key", help="Private key for --ssh-host (default: agent, ~/.ssh/id_*)."),
    ] = None,
    ssh_known_hosts: Annotated[
        Path | None,
        typer.Option("--ssh-known-hosts", help="known_hosts file to verify --ssh-host with."),
    ] = None,
    remote_port: Annotated[
        int, typer.Option("--remote-port", help="Port to open on --ssh-host (0: the server picks).")
    ] = 0,
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname", help="Named cloudflared tunnel: the public hostname routed to it."
        ),
    ] = None,
    cf_token_file: Annotated[
        Path | None,
        typer.Option(
            "--cf-token-file",
            help="Named cloudflared tunnel: file holding its token (else $TUNNEL_TOKEN or $CF_TUNNEL_TOKEN).",
        ),
    ] = None,
    allow_public_no_auth: Annotated[
        bool,
        typer.Option(
            "--allow-public-no-auth", help="Expose it even though it answers without an API key."
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the URL to answer.")
    ] = 60.0,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Audit NAME or PORT, start a tunnel to it, audit it through the public URL, print the URL."""
    from llmops.run.tunnels import TunnelSpec, open_tunnel

    token = _check_via(via, ssh_host, hostname, cf_token_file)
    resolved = _resolve(target, allow_public_no_auth)
    spec = TunnelSpec(
        name=resolved.name,
        port=resolved.port,
        via=via,
        deployment=resolved.deployment,
        cf_token=token,
        cf_hostname=hostname,
        ssh_host=ssh_host,
        ssh_key=str(ssh_key) if ssh_key else None,
        ssh_known_hosts=str(ssh_known_hosts) if ssh_known_hosts else None,
        ssh_remote_port=remote_port,
    )
    if resolved.api_key is None and not resolved.deployment:
        output.info("no API key known for a bare port (set LLMOPS_API_KEY to check with it)")
    opened = open_tunnel(
        _manager(),
        spec,
        resolved.api_key,
        allow_public_no_auth=allow_public_no_auth,
        verify_timeout_s=timeout,
        on_progress=output.info,
        engine=resolved.engine,
    )
    _show_opened(opened, _limits(via, token), json_)


def _check_via(
    via: str, ssh_host: str | None, hostname: str | None, cf_token_file: Path | None
) -> str | None:
    """Refuse an unknown --via or flags that do not go together; the named tunnel's token."""
    from llmops.errors import UsageError
    from llmops.plan import tunnel as tp

    if via not in tp.VIAS:
        raise UsageError(f"unknown --via {via!r}", "use cloudflared, ngrok or ssh")
    if via == "ssh" and not ssh_host:
        raise UsageError(
            "`--via ssh` needs `--ssh-host [user@]host[:port]`", "a host you own, with sshd"
        )
    token = (
        _cf_token(cf_token_file) if via == "cloudflared" and (hostname or cf_token_file) else None
    )
    if via == "cloudflared" and cf_token_file is not None and not hostname:
        raise UsageError(
            "a named cloudflared tunnel needs `--hostname`",
            "the public hostname you routed to the tunnel in Cloudflare's dashboard",
        )
    if hostname and not token:
        raise UsageError(
            "`--hostname` is for a named cloudflared tunnel, and no token was given",
            "pass `--cf-token-file FILE` or set TUNNEL_TOKEN",
        )
    return token


def _resolve(target: str | None, allow_public_no_auth: bool) -> "Target":
    """NAME, PORT or the one running deployment; a deployment without a key is refused."""
    from llmops.run.tunnels import resolve_target

    deployments = deps.deployments()
    if target is None:
        target = _the_one_running(deployments)
        output.info(f"exposing deployment {target}, the one running (`llmops ps`)")
    resolved = resolve_target(target, deployments, os.environ)
    if resolved.deployment and resolved.api_key is None and not allow_public_no_auth:
        from llmops.errors import TunnelUnprotected

        raise TunnelUnprotected(
            f"refusing to expose deployment {resolved.deployment}: it has no API key",
            f"restart it with a key (`llmops down {resolved.deployment}`, then `llmops up` sets "
            "one by default), or pass `--allow-public-no-auth` if it really should be public",
        )
    return resolved


def _limits(via: str, token: str | None) -> tuple[str, ...]:
    """What a quick cloudflared tunnel or ngrok's free plan cannot do."""
    from llmops.plan import tunnel as tp

    if via == "cloudflared" and not token:
        return tp.CLOUDFLARED_QUICK_LIMITS
    if via == "ngrok":
        return tp.NGROK_LIMITS
    return ()


def _show_opened(opened: "OpenedTunnel", limits: tuple[str, ...], json_: bool) -> None:
    """The URL (or the JSON record), after the audit's caveats and the tunnel's limits."""
    if opened.check.verdict == "unprotected-allowed":
        output.warn(f"{opened.check.detail}: exposed anyway (--allow-public-no-auth)")
    caveats = opened.public_audit.caveats if opened.public_audit else ()
    if json_:
        output.emit_json(
            {
                "tunnel": opened.record,
                "check": opened.check,
                "audit": {"local": opened.local_audit, "public": opened.public_audit},
                "caveats": list(caveats),
                "limits": list(limits),
            }
        )
        return
    for line in caveats:
        output.warn(line)
    for line in limits:
        output.warn(line)
    output.info(f"{opened.check.detail}; stop it with `llmops tunnel stop {opened.record.name}`")
    output.stdout().print(f"{opened.record.url}/v1", markup=False)


def _the_one_running(deployments: Any) -> str:
    """Bare ``llmops tunnel``: the one running deployment, else a usage error saying what to do."""
    from llmops.errors import UsageError
    from llmops.run.tunnels import running_deployments

    rows = running_deployments(deployments)
    if len(rows) == 1:
        return str(rows[0].name)
    if not rows:
        raise UsageError(
            "no deployment is running, so there is nothing to expose",
            "start one with `llmops up MODEL` (it gets an API key), then `llmops tunnel`; "
            "or expose a local port: `llmops tunnel 8000`",
        )
    listed = ", ".join(
        f"{r.name} ({r.engine or '?'}, port {r.port if r.port is not None else '-'})" for r in rows
    )
    raise UsageError(
        f"{len(rows)} deployments are running: {listed}; which one?",
        f"name it: `llmops tunnel {rows[0].name}` (`llmops ps` lists them)",
    )


@tunnel_app.command("ls")
def tunnel_ls(
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """List the tunnels llmops started."""
    rows = _manager().status()
    if json_:
        output.emit_json({"tunnels": rows})
        return
    if not rows:
        output.info("no tunnels; open one with `llmops tunnel NAME --via cloudflared`")
        return
    from rich import box

    t = output.table(box=box.SIMPLE_HEAD, pad_edge=False)  # outside text prints literally
    for col in ("name", "via", "deployment", "port", "url", "status", "pid"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        t.add_row(
            r.name,
            r.via,
            r.deployment or "-",
            str(r.port),
            r.url or "-",
            "running" if r.running else "exited",
            str(r.pid),
        )
    output.stdout().print(t)


@tunnel_app.command("stop")
def tunnel_stop(
    name: Annotated[
        str | None, typer.Argument(help="Tunnel name (see `llmops tunnel ls`).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every llmops tunnel.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Stop a tunnel (or all of them)."""
    from llmops.errors import UsageError

    if bool(name) == all_:
        raise UsageError("give a tunnel name or --all", "`llmops tunnel ls` lists them")
    m = _manager()
    names = [r.name for r in m.records()] if all_ else [name or ""]
    if name and m.load(name) is None:
        known = [r.name for r in m.records()]
        raise UsageError(
            f"no tunnel named {name!r}",
            ("tunnels: " + ", ".join(known)) if known else "`llmops tunnel ls` lists them",
        )
    stopped = []
    for n in names:
        was_running = m.stop(n)
        stopped.append({"name": n, "was_running": was_running})
        if not json_:
            output.info(f"stopped tunnel {n}" if was_running else f"removed exited tunnel {n}")
    if json_:
        output.emit_json({"stopped": stopped})
    elif not stopped:
        output.info("no tunnels")


def register(app: typer.Typer) -> None:
    app.add_typer(tunnel_app, name="tunnel")
