"""Small SVG time charts, rendered on the server: lines, a dashed objective, vertical
markers (step boundaries, decisions) and shaded bands (freezes). Every text is escaped.

Why hand-made SVG rather than a charting library: the charts are a handful of step and
line plots that re-render with the page's fragment on every change; SVG from the server
needs no JavaScript, no vendored file to keep up to date, works offline and escapes
tenant-provided names with the same function as the rest of the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

COLOURS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")


@dataclass(frozen=True)
class Line:
    label: str
    points: list[tuple[float, float]]
    step: bool = False  # a step function (weights) rather than straight segments
    colour: str | None = None


@dataclass(frozen=True)
class Marker:
    at: float
    label: str
    colour: str = "#6b7280"


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    start: float
    end: float
    lines: list[Line] = field(default_factory=list)
    objective: float | None = None
    objective_label: str = "objective"
    markers: list[Marker] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    y_min: float | None = None
    y_max: float | None = None
    unit: str = ""
    note: str = ""  # e.g. where the data came from, or why there is none
    css_class: str = "chart"


W, H = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 36, 28


def render(chart: Chart) -> str:
    values = [v for line in chart.lines for _, v in line.points]
    if chart.objective is not None:
        values.append(chart.objective)
    lo = chart.y_min if chart.y_min is not None else min(values, default=0.0)
    hi = chart.y_max if chart.y_max is not None else max(values, default=1.0)
    if hi <= lo:
        hi, lo = lo + 1.0, lo - (1.0 if chart.y_min is None else 0.0)
    start, end = chart.start, max(chart.end, chart.start + 1.0)

    def x(t: float) -> float:
        return LEFT + (min(max(t, start), end) - start) / (end - start) * (W - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (hi - min(max(v, lo), hi)) / (hi - lo) * (H - TOP - BOTTOM)

    out = [f'<svg class="{escape(chart.css_class)}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{LEFT}" y="14" class="ct">{escape(chart.title)}</text>']
    for band in chart.bands:
        x0, x1 = x(band.start), x(band.end)
        out.append(f'<rect class="band" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{H - TOP - BOTTOM}"><title>{escape(band.label)}</title></rect>')
    for tick in (lo, (lo + hi) / 2, hi):
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(tick):.1f}" '
                   f'y2="{y(tick):.1f}"/><text class="tick" x="{LEFT - 4}" y="{y(tick) + 4:.1f}"'
                   f' text-anchor="end">{escape(_num(tick))}{escape(chart.unit)}</text>')
    for i, t in enumerate((start, (start + end) / 2, end)):
        anchor = ("start", "middle", "end")[i]
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{H - 8}" text-anchor="{anchor}">'
                   f'{escape(_clock(t))}</text>')
    for marker in chart.markers:
        mx = x(marker.at)
        out.append(f'<line class="marker" x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" '
                   f'y2="{H - BOTTOM}" stroke="{escape(marker.colour)}">'
                   f'<title>{escape(marker.label)}</title></line>')
    if chart.objective is not None:
        oy = y(chart.objective)
        out.append(f'<line class="objective" x1="{LEFT}" x2="{W - RIGHT}" y1="{oy:.1f}" '
                   f'y2="{oy:.1f}"><title>{escape(chart.objective_label)} '
                   f'{escape(_num(chart.objective))}</title></line>')
    for i, line in enumerate(chart.lines):
        colour = line.colour or COLOURS[i % len(COLOURS)]
        points = _stepped(line.points, end) if line.step else line.points
        if not points:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        out.append(f'<polyline class="series" fill="none" stroke="{escape(colour)}" '
                   f'points="{path}"><title>{escape(line.label)}</title></polyline>')
    legend = [f'<tspan fill="{escape(line.colour or COLOURS[i % len(COLOURS)])}">■ '
              f'{escape(line.label)}</tspan>' for i, line in enumerate(chart.lines)]
    if chart.objective is not None:
        legend.append(f'<tspan class="obj">- - {escape(chart.objective_label)}</tspan>')
    out.append(f'<text x="{W - RIGHT}" y="29" text-anchor="end" class="legend">'
               + " ".join(legend) + "</text>")
    if chart.note:
        out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H / 2:.0f}" '
                   f'text-anchor="middle" class="note">{escape(chart.note)}</text>')
    out.append("</svg>")
    return "".join(out)


def _stepped(points: list[tuple[float, float]], end: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for t, v in points:
        if out:
            out.append((t, out[-1][1]))
        out.append((t, v))
    if out:
        out.append((end, out[-1][1]))
    return out


def _num(v: float) -> str:
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.4g}"


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M:%S")
