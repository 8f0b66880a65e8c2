"""`llmops top`: a live view of this host's deployments (from their engine metrics) and GPUs."""

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import deps, output
from llmops.cli.params import TopJsonOpt, TopOnceOpt

if TYPE_CHECKING:
    from rich.console import RenderableType

    from llmops.client.metrics_scrape import ServerSnapshot


class _Session:
    """Scrapes every running deployment's /metrics and NVML; keeps each one's scrape history."""

    def __init__(self) -> None:
        import httpx

        self.client = httpx.Client(timeout=2.0)
        self.history: dict[str, list[tuple[float, ServerSnapshot]]] = {}
        self.nvml = deps.nvml_module()
        self.docker_error: str | None = None

    def close(self) -> None:
        self.client.close()

    def _scrape(self, url: str | None) -> "tuple[ServerSnapshot | None, str | None]":
        import httpx

        from llmops.client import metrics_scrape as ms

        if url is None:
            return None, "no port"
        try:
            r = self.client.get(url)
        except httpx.HTTPError as exc:
            return None, f"{url}: {type(exc).__name__}"
        if r.status_code != 200:
            return None, f"{url} answered HTTP {r.status_code}"
        snap = ms.snapshot(ms.parse(r.text))
        if snap.engine is None:
            return None, "no known metrics"
        return snap, None

    def frame(self, interval_s: float | None = None) -> dict[str, Any]:
        """One frame now; rates are over the time since the previous one."""
        from llmops.client.monitor import gpu_samples
        from llmops.client.top import deployment_row, metrics_url

        d = deps.deployments()
        statuses = d.status()
        self.docker_error = d.docker_error
        rows = []
        for st in statuses:
            snap, error = None, None
            if st.status == "running":
                snap, error = self._scrape(metrics_url(st.endpoint))
            else:
                error = st.status
            hist = self.history.setdefault(st.name, [])
            if snap is not None:
                hist.append((time.monotonic(), snap))
                del hist[1:-2]  # keep the first, the previous and the latest
            last = hist[-1] if hist and snap is not None else None
            prev = hist[-2] if len(hist) > 1 and snap is not None else None
            first = hist[0] if hist else None
            rows.append(deployment_row(st, first, prev, last, error))
        gpus, gpu_error = gpu_samples(self.nvml)
        return {"deployments": rows, "gpus": gpus, "gpu_error": gpu_error}

    def render(self, frame: dict[str, Any], interval_s: float) -> "RenderableType":
        return render_frame(frame, interval_s)


class _RemoteSession:
    """Frames of another host: its own ``llmops top --once --json`` over SSH, one per refresh.

    The rates in each frame are measured there, over the refresh interval, so a frame takes
    that long to arrive; the live loop waits only for what is left of the interval.
    """

    def __init__(self, host: Any, remote: Any) -> None:
        self.host, self.remote = host, remote
        self.docker_error: str | None = None
        self.where = host.label

    def close(self) -> None:
        """The SSH session belongs to the command's context, which closes it."""

    def frame(self, interval_s: float) -> dict[str, Any]:
        return remote_frame(self.host, self.remote, interval_s)

    def render(self, frame: dict[str, Any], interval_s: float) -> "RenderableType":
        return render_frame(frame, interval_s, self.where)


def remote_frame(host: Any, remote: Any, interval_s: float) -> dict[str, Any]:
    """One frame of ``host``: its llmops's ``top --once --json`` (rates over ``interval_s``,
    measured there). A failure is the frame's ``error`` (with a ``hint`` when llmops gave one)."""
    import json
    from types import SimpleNamespace

    from llmops.run.fleet import error_from_stderr
    from llmops.run.remote import capture_llmops

    argv = ["top", "--once", "--json", "--interval", f"{interval_s:g}"]
    code, out, err = capture_llmops(host, remote, argv, timeout_s=interval_s + 60)
    if code != 0:
        why, hint = error_from_stderr(err)
        return {
            "deployments": [],
            "gpus": [],
            "gpu_error": None,
            "error": why or f"exit code {code}",
            "hint": hint,
        }
    try:
        doc = json.loads(out)
        rows = [SimpleNamespace(**d) for d in doc["deployments"]]
        gpus = [SimpleNamespace(**g) for g in doc["gpus"]]
    except (ValueError, KeyError, TypeError) as exc:
        return {"deployments": [], "gpus": [], "gpu_error": None, "error": f"bad frame: {exc}"}
    return {"deployments": rows, "gpus": gpus, "gpu_error": doc.get("gpu_error")}


class _FleetSession:
    """Frames of every inventory host at once: each host's ``llmops top --once --json`` over
    its own SSH session (opened once, kept, reopened after a failure), all hosts in parallel,
    merged into one screen. A host that cannot be reached is an error line, not the end."""

    def __init__(self, hosts: Any, connect: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from llmops.run.fleet import MAX_PARALLEL

        self.hosts, self.connect = tuple(hosts), connect
        self.docker_error: str | None = None
        self._open: dict[str, tuple[Any, Any]] = {}  # name -> (connected SshHost, its llmops)
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(self.hosts))))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for ssh, _ in self._open.values():
            ssh.close()
        self._open.clear()

    def _host_frame(self, h: Any, interval_s: float) -> dict[str, Any]:
        from llmops.errors import LlmopsError
        from llmops.run.remote import find_llmops

        head = {"name": h.name, "ssh": h.ssh}
        try:
            if h.name not in self._open:
                ssh = self.connect(h).connect()
                remote = find_llmops(ssh, h.llmops)
                if remote is None:
                    ssh.close()
                    return {
                        **head,
                        **_no_frame(
                            f"llmops is not installed on {ssh.label}",
                            f"install it with `llmops remote bootstrap {h.name}`",
                        ),
                    }
                self._open[h.name] = (ssh, remote)
            ssh, remote = self._open[h.name]
            frame = remote_frame(ssh, remote, interval_s)
        except LlmopsError as e:
            self._drop(h.name)
            return {**head, **_no_frame(e.message, e.hint)}
        except Exception as e:  # one host's surprise must not blank the others
            self._drop(h.name)
            return {**head, **_no_frame(f"{type(e).__name__}: {e}", None)}
        return {**head, "ok": "error" not in frame, "error": None, "hint": None, **frame}

    def _drop(self, name: str) -> None:
        opened = self._open.pop(name, None)
        if opened is not None:
            opened[0].close()

    def frame(self, interval_s: float) -> dict[str, Any]:
        hosts = list(self._pool.map(lambda h: self._host_frame(h, interval_s), self.hosts))
        return {"hosts": hosts}

    def render(self, frame: dict[str, Any], interval_s: float) -> "RenderableType":
        return render_fleet_frame(frame, interval_s)


def _no_frame(error: str, hint: str | None) -> dict[str, Any]:
    return {
        "ok": False,
        "error": error,
        "hint": hint,
        "deployments": [],
        "gpus": [],
        "gpu_error": None,
    }


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _head(title: str, interval_s: float) -> "RenderableType":
    from rich.text import Text

    return Text(
        f"{title} · {time.strftime('%H:%M:%S')} · every {interval_s:g} s · q quits", style="bold"
    )


def _deployments_table(rows: list[tuple[str | None, Any]]) -> "RenderableType":
    """(host or None, row) pairs; a host column when any host is given."""
    from rich.table import Table
    from rich.text import Text

    hosts = any(h is not None for h, _ in rows)
    t = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    cols = ("deployment", "engine", "status", "req/s", "tok/s", "queue", "running", "KV %")
    for col in (("host",) if hosts else ()) + cols:
        t.add_column(col, justify="left" if col in ("host", *cols[:3]) else "right")
    t.add_column("TTFT p99 ms", justify="right")
    t.add_column("metrics", justify="left")
    for h, r in rows:
        t.add_row(
            *([Text(h or "")] if hosts else []),
            Text(r.name),
            Text(r.engine or "?"),
            Text(f"{r.status}/{r.health}"),
            _fmt(r.requests_per_s, ".2f"),
            _fmt(r.tokens_per_s, ".1f"),
            _fmt(r.waiting, ".0f"),
            _fmt(r.running, ".0f"),
            _fmt(r.kv_usage_pct, ".0f"),
            _fmt(r.ttft_p99_ms, ".0f"),
            Text(r.metrics or "-"),
        )
    return t


def _gpus_table(rows: list[tuple[str | None, Any]]) -> "RenderableType":
    from rich.table import Table
    from rich.text import Text

    hosts = any(h is not None for h, _ in rows)
    g = Table(box=None, pad_edge=False, header_style="bold")
    for col in (("host",) if hosts else ()) + ("GPU", "name", "util %", "memory MiB", "power W"):
        g.add_column(col, justify="left" if col in ("host", "name") else "right")
    g.add_column("temp C", justify="right")
    for h, s in rows:
        mem = (
            f"{_fmt(s.memory_used_mib, '.0f')}/{_fmt(s.memory_total_mib, '.0f')}"
            if s.memory_total_mib is not None
            else "-"
        )
        g.add_row(
            *([Text(h or "")] if hosts else []),
            str(s.index),
            Text(s.name or "?"),
            _fmt(s.utilization_pct, ".0f"),
            mem,
            _fmt(s.power_w, ".0f"),
            _fmt(s.temperature_c, ".0f"),
        )
    return g


def render_frame(
    frame: dict[str, Any], interval_s: float, where: str | None = None
) -> "RenderableType":
    from rich.console import Group
    from rich.text import Text

    place = f" · {where}" if where else ""
    parts: list[Any] = [_head(f"llmops top{place}", interval_s), Text("")]
    if frame.get("error"):
        parts.append(Text(f"could not read a frame: {frame['error']}", style="red"))
    elif frame["deployments"]:
        parts.append(_deployments_table([(None, r) for r in frame["deployments"]]))
    else:
        parts.append(Text("no deployments; start one with `llmops up MODEL`"))
    parts.append(Text(""))
    if frame["gpus"]:
        parts.append(_gpus_table([(None, s) for s in frame["gpus"]]))
    else:
        parts.append(Text(f"GPUs: {frame['gpu_error'] or 'none'}"))
    return Group(*parts)


def render_fleet_frame(frame: dict[str, Any], interval_s: float) -> "RenderableType":
    """Every host in one screen: one deployments table and one GPU table with a host column,
    then a line per host that could not be read (with its fix) or has no GPUs to show."""
    from rich.console import Group
    from rich.text import Text

    hosts = frame["hosts"]
    up = sum(1 for h in hosts if h["ok"])
    title = f"llmops fleet top · {up}/{len(hosts)} hosts answering"
    parts: list[Any] = [_head(title, interval_s), Text("")]
    deployments = [(h["name"], r) for h in hosts for r in h["deployments"]]
    if deployments:
        parts.append(_deployments_table(deployments))
    else:
        parts.append(Text("no deployments on any host answering"))
    parts.append(Text(""))
    gpus = [(h["name"], s) for h in hosts for s in h["gpus"]]
    if gpus:
        parts.append(_gpus_table(gpus))
    for h in hosts:
        if not h["ok"]:
            fix = f" (fix: {h['hint']})" if h.get("hint") else ""
            parts.append(Text(f"{h['name']}: {h['error']}{fix}", style="red"))
        elif not h["gpus"]:
            parts.append(Text(f"{h['name']}: GPUs: {h['gpu_error'] or 'none'}"))
    return Group(*parts)


def _live(session: "_Session | _RemoteSession | _FleetSession", interval_s: float) -> None:
    """Redraw in place every ``interval_s`` until ``q`` (or Ctrl-C)."""
    import os
    import select
    import sys

    from rich.console import Console
    from rich.live import Live

    def terminal_size() -> "os.terminal_size | None":
        try:
            return os.get_terminal_size(sys.stdout.fileno())
        except (OSError, ValueError):
            return None

    # The real terminal's size, not $COLUMNS: a full-screen frame wider or taller than the
    # terminal wraps and scrolls instead of redrawing in place.
    size = terminal_size()
    console = (
        Console(file=sys.stdout, width=size.columns, height=size.lines, highlight=False)
        if size is not None
        else output.stdout()
    )
    tty_in = sys.stdin.isatty()
    old: Any = None
    if tty_in:
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    try:
        with Live(console=console, screen=tty_in, auto_refresh=False) as live:
            while True:
                size = terminal_size()
                if size is not None:  # follow a resized terminal
                    console.size = (size.columns, size.lines)
                started = time.monotonic()
                frame = session.frame(interval_s)
                live.update(session.render(frame, interval_s), refresh=True)
                deadline = started + interval_s
                while True:  # at least one look at the keyboard, even when a frame was slow
                    left = max(0.0, deadline - time.monotonic())
                    if not tty_in:
                        time.sleep(left)
                        break
                    ready, _, _ = select.select([sys.stdin], [], [], left)
                    if ready and sys.stdin.read(1).lower() == "q":
                        return
                    if not ready:
                        break
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, old)


def check_options(interval: float, flag: str, *, once: bool, json_: bool, command: str) -> None:
    """``top``'s and ``fleet top``'s options checked together (Typer checks the range)."""
    import math

    from llmops.errors import UsageError

    if not math.isfinite(interval):
        raise UsageError(f"--interval must be a finite number, got {interval}", f"e.g. {flag} 2")
    if json_ and not once:
        raise UsageError("--json prints one frame: add --once", f"{command} --once --json")


def top(
    ctx: typer.Context,
    once: TopOnceOpt = False,
    interval: Annotated[
        float,
        typer.Option("--interval", "-i", min=0.2, max=3600, help="Seconds between refreshes."),
    ] = 2.0,
    json_: TopJsonOpt = False,
) -> None:
    """Live view of this host: each deployment's req/s, tok/s, queue, KV, p99 TTFT; each GPU.

    With ``llmops --host H top`` the frames come from H's own llmops over SSH and are drawn here.
    """
    check_options(interval, "-i", once=once, json_=json_, command="llmops top")
    remote = ctx.meta.get("llmops.remote_top")
    if remote is not None:  # `--host H top`: live here, frames from there (--once ran there)
        _live(_RemoteSession(*remote), interval)
        return
    session = _Session()
    try:
        if not once:
            _live(session, interval)
            return
        session.frame()
        time.sleep(interval)
        frame = session.frame()
    finally:
        session.close()
    if session.docker_error:
        output.warn(f"Docker: {session.docker_error}; only native deployments are listed")
    if json_:
        output.emit_json({"interval_s": interval, **frame})
    else:
        output.stdout().print(render_frame(frame, interval))


def register(app: typer.Typer) -> None:
    app.command("top")(top)
