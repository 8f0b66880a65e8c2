"""`llmops top`: a live view of this host's deployments (from their engine metrics) and GPUs."""

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import deps, output

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

    def frame(self) -> dict[str, Any]:
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
        import json
        from types import SimpleNamespace

        from llmops.run.remote import capture_llmops

        argv = ["top", "--once", "--json", "--interval", f"{interval_s:g}"]
        code, out, err = capture_llmops(self.host, self.remote, argv, timeout_s=interval_s + 60)
        if code != 0:
            why = (err.strip().splitlines() or [f"exit code {code}"])[-1]
            return {"deployments": [], "gpus": [], "gpu_error": None, "error": why}
        try:
            doc = json.loads(out)
            rows = [SimpleNamespace(**d) for d in doc["deployments"]]
            gpus = [SimpleNamespace(**g) for g in doc["gpus"]]
        except (ValueError, KeyError, TypeError) as exc:
            return {"deployments": [], "gpus": [], "gpu_error": None, "error": f"bad frame: {exc}"}
        return {"deployments": rows, "gpus": gpus, "gpu_error": doc.get("gpu_error")}


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def render_frame(
    frame: dict[str, Any], interval_s: float, where: str | None = None
) -> "RenderableType":
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    place = f" · {where}" if where else ""
    head = Text(
        f"llmops top{place} · {time.strftime('%H:%M:%S')} · every {interval_s:g} s · q quits",
        style="bold",
    )
    t = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    for col in ("deployment", "engine", "status", "req/s", "tok/s", "queue", "running", "KV %"):
        t.add_column(col, justify="left" if col in ("deployment", "engine", "status") else "right")
    t.add_column("TTFT p99 ms", justify="right")
    t.add_column("metrics", justify="left")
    for r in frame["deployments"]:
        t.add_row(
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
    parts: list[Any] = [head, Text("")]
    if frame.get("error"):
        parts.append(Text(f"could not read a frame: {frame['error']}", style="red"))
    elif frame["deployments"]:
        parts.append(t)
    else:
        parts.append(Text("no deployments; start one with `llmops up MODEL`"))
    parts.append(Text(""))
    if frame["gpus"]:
        g = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("GPU", "name", "util %", "memory MiB", "power W", "temp C"):
            g.add_column(col, justify="left" if col == "name" else "right")
        for s in frame["gpus"]:
            mem = (
                f"{_fmt(s.memory_used_mib, '.0f')}/{_fmt(s.memory_total_mib, '.0f')}"
                if s.memory_total_mib is not None
                else "-"
            )
            g.add_row(
                str(s.index),
                Text(s.name or "?"),
                _fmt(s.utilization_pct, ".0f"),
                mem,
                _fmt(s.power_w, ".0f"),
                _fmt(s.temperature_c, ".0f"),
            )
        parts.append(g)
    else:
        parts.append(Text(f"GPUs: {frame['gpu_error'] or 'none'}"))
    return Group(*parts)


def _live(session: "_Session | _RemoteSession", interval_s: float) -> None:
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
                frame = (
                    session.frame(interval_s)
                    if isinstance(session, _RemoteSession)
                    else session.frame()
                )
                where = session.where if isinstance(session, _RemoteSession) else None
                live.update(render_frame(frame, interval_s, where), refresh=True)
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


def top(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame (rates over --interval) and exit.")
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", "-i", min=0.2, max=3600, help="Seconds between refreshes."),
    ] = 2.0,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON (with --once).")] = False,
) -> None:
    """Live view of this host: each deployment's req/s, tok/s, queue, KV, p99 TTFT; each GPU.

    With ``llmops --host H top`` the frames come from H's own llmops over SSH and are drawn here.
    """
    import math

    from llmops.errors import UsageError

    if not math.isfinite(interval):
        raise UsageError(f"--interval must be a finite number, got {interval}", "e.g. -i 2")
    if json_ and not once:
        raise UsageError("--json prints one frame: add --once", "llmops top --once --json")
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
