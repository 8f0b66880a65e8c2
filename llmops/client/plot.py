"""Pictures of bench results: latency against throughput (one line per endpoint or saved run)
and the server/GPU time series. HTML with inline SVG needs nothing installed; PNG draws the same
panels with matplotlib (``pip install 'llmops[plot]'``); SVG puts every panel in one image.

Input is the bench JSON (``--json``/``--out``) or the live results turned into the same shape,
so saved runs and a fresh one plot alike.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from llmops.errors import UsageError

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

#: (title, y field, y statistic) of the latency-vs-throughput panels; x is output tokens/s.
CURVES = (
    ("TTFT p99 (ms)", "ttft_ms", "p99"),
    ("TTFT p50 (ms)", "ttft_ms", "p50"),
    ("ITL p99 (ms)", "itl_ms", "p99"),
    ("TPOT p50 (ms)", "tpot_ms", "p50"),
    ("E2E latency p99 (ms)", "latency_ms", "p99"),
)
#: (title, series column) of the time-series panels.
SERIES = (
    ("requests running / waiting (server)", ("running", "waiting")),
    ("server output tokens/s", ("server_tok_s",)),
    ("KV-cache usage %", ("kv_usage_pct",)),
    ("GPU utilisation % (mean) / power W (sum)", ("gpu_util_pct", "gpu_power_w")),
)


def check_plot_path(path: Path) -> None:
    """``--plot FILE``: .html or .png, in a directory that exists (checked before the run).

    Raises:
        UsageError: another suffix, a missing directory, or PNG without matplotlib.
    """
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".png", ".svg"):
        raise UsageError(
            f"--plot {str(path)!r} is not .html, .svg or .png", "e.g. --plot bench.html"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(
            f"--plot {str(path)!r}: the directory {str(parent)!r} does not exist",
            f"create it first (`mkdir -p {parent}`)",
        )
    if suffix == ".png":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError(
                "--plot FILE.png needs matplotlib, which is not installed",
                "pip install 'llmops[plot]', or write HTML instead: --plot bench.html",
            ) from None


def runs_from_document(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The plottable runs of one saved bench JSON: one per endpoint.

    Raises:
        UsageError: the document is not bench output.
    """
    eps = doc.get("endpoints") if isinstance(doc, dict) else None
    if not isinstance(eps, list) or not all(isinstance(e, dict) and "levels" in e for e in eps):
        raise UsageError(
            f"{name} is not `llmops bench --json` output (no endpoints with levels)",
            "save a run with `llmops bench URL --out run.json`",
        )
    multi = len(eps) > 1
    return [
        {"label": f"{name}: {e.get('url')}" if multi else f"{name} ({e.get('url')})", "endpoint": e}
        for e in eps
    ]


def _plain(obj: Any) -> Any:
    from llmops.hw.facts import to_jsonable

    return to_jsonable(obj)


def _curve(levels: list[dict[str, Any]], field: str, stat: str) -> list[tuple[float, float]]:
    pts = []
    for lv in levels:
        d = lv.get(field)
        x = lv.get("output_throughput_tok_s")
        if isinstance(d, dict) and d.get(stat) is not None and x is not None:
            pts.append((float(x), float(d[stat])))
    return sorted(pts)


def _series(levels: list[dict[str, Any]], column: str) -> list[tuple[float, float]]:
    """One column of the points' time series, end to end (each point starts where the last
    ended)."""
    pts: list[tuple[float, float]] = []
    offset = 0.0
    for lv in levels:
        server = lv.get("server") or {}
        rows = server.get("series") or []
        last = 0.0
        for row in rows:
            v = row.get(column)
            if v is not None:
                pts.append((offset + float(row["t_s"]), float(v)))
            last = float(row["t_s"])
        offset += last
    return pts


def panels(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel to draw: title, axis names and lines (label, colour, points)."""
    plain = [(r["label"], _plain(r["endpoint"])) for r in runs]
    out = []
    for title, field, stat in CURVES:
        lines = [
            (label, COLOURS[i % len(COLOURS)], _curve(ep.get("levels") or [], field, stat))
            for i, (label, ep) in enumerate(plain)
        ]
        lines = [ln for ln in lines if ln[2]]
        if lines:
            out.append({"title": title, "x": "output tokens/s", "y": title, "lines": lines})
    for title, columns in SERIES:
        lines = []
        for i, (label, ep) in enumerate(plain):
            for j, col in enumerate(columns):
                pts = _series(ep.get("levels") or [], col)
                if pts:
                    name = f"{label} {col}" if len(columns) > 1 else label
                    lines.append((name, COLOURS[(i * len(columns) + j) % len(COLOURS)], pts))
        if lines:
            out.append({"title": title, "x": "seconds", "y": title, "lines": lines})
    return out


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + k * step for k in range(n + 2) if first + k * step <= hi + step * 1e-9]


def _svg(panel: dict[str, Any], width: int = 560, height: int = 320) -> str:
    left, right, top, bottom = 60, 12, 28, 44
    xs: list[float] = [x for _, _, pts in panel["lines"] for x, _ in pts]
    ys: list[float] = [y for _, _, pts in panel["lines"] for _, y in pts]
    x0, x1 = min(0.0, min(xs)), max(xs) or 1.0
    y0, y1 = min(0.0, min(ys)), max(ys) or 1.0
    xt, yt = _ticks(x0, x1), _ticks(y0, y1)
    x1, y1 = max(x1, xt[-1]), max(y1, yt[-1])
    w, h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0 or 1) * w

    def py(y: float) -> float:
        return top + h - (y - y0) / (y1 - y0 or 1) * h

    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{e(panel["title"])}</text>',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>',
    ]
    for t in xt:
        parts.append(
            f'<line x1="{px(t):.1f}" y1="{top + h}" x2="{px(t):.1f}" y2="{top + h + 4}" stroke="#888"/>'
            f'<text x="{px(t):.1f}" y="{top + h + 16}" text-anchor="middle">{t:g}</text>'
        )
    for t in yt:
        parts.append(
            f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + w}" y2="{py(t):.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>'
        )
    parts.append(
        f'<text x="{left + w / 2}" y="{height - 6}" text-anchor="middle">{e(panel["x"])}</text>'
    )
    for i, (label, colour, pts) in enumerate(panel["lines"]):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                f"<title>{e(label)}: x {x:.4g}, y {y:.4g}</title></circle>"
            )
        parts.append(
            f'<text x="{left + 6}" y="{top + 14 + 13 * i}" fill="{colour}">{e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(runs: list[dict[str, Any]], title: str = "llmops bench") -> str:
    body = "\n".join(f"<div>{_svg(p)}</div>" for p in panels(runs)) or "<p>nothing to plot</p>"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif} div{display:inline-block;margin:6px}</style>"
        f"</head><body><h3>{html.escape(title)}</h3>\n{body}\n</body></html>\n"
    )


def render_svg(runs: list[dict[str, Any]], columns: int = 2) -> str:
    """Every panel in one SVG image (a grid), e.g. for a README."""
    ps = panels(runs)
    w, h = 560, 320
    rows = max(1, math.ceil(len(ps) / columns))
    inner = "".join(
        _svg(p, w, h).replace("<svg ", f'<svg x="{(i % columns) * w}" y="{(i // columns) * h}" ', 1)
        for i, p in enumerate(ps)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * w}" height="{rows * h}">'
        f'<rect width="100%" height="100%" fill="white"/>{inner}</svg>\n'
    )


def render_png(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = panels(runs)
    cols = 2
    rows = max(1, math.ceil(len(ps) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.6 * rows), squeeze=False)
    for ax, p in zip(axes.flat, ps, strict=False):
        for label, colour, pts in p["lines"]:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", color=colour, label=label)
        ax.set_title(p["title"])
        ax.set_xlabel(p["x"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ps) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plot(path: Path, runs: list[dict[str, Any]]) -> None:
    """Write ``runs`` to ``path`` as HTML or PNG (by its suffix)."""
    if path.suffix.lower() == ".png":
        render_png(runs, path)
    elif path.suffix.lower() == ".svg":
        path.write_text(render_svg(runs), encoding="utf-8")
    else:
        path.write_text(render_html(runs), encoding="utf-8")
