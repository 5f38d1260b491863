"""Charts on numeric axes: a throughput-vs-latency curve, series over the time of a load, and a tuning study's
trials (each a dot coloured by what it was, its setting in its tooltip, the Pareto front joined)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup

from reports.html.svg import (
    WIDTH,
    Scale,
    chart_svg,
    el,
    header_height,
    nice_ticks,
    num,
    swatches,
    text,
    tick_label,
)


def _axes(xt: list[float], yt: list[float], x_of: Scale, y_of: Scale, box: tuple[float, float, float, float],
          x_unit: str, y_unit: str, unit_above: float) -> list[Markup]:
    """Horizontal grid lines with their tick labels, the x ticks, and the two unit labels."""
    left, right, top, bottom = box
    out: list[Markup] = []
    for t in yt:
        out += [el("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                text(left - 6, y_of(t) + 4, tick_label(t, yt), anchor="end", cls="tick")]
    for t in xt:
        out.append(text(x_of(t), bottom + 16, tick_label(t, xt), anchor="middle", cls="tick"))
    return out + [text(left - 6, top - unit_above, y_unit, anchor="end", cls="unit"),
                  text(right, bottom + 32, x_unit, anchor="end", cls="unit")]


def render_curve_svg(points: list[tuple[str, float, float]], title: str, x_unit: str, y_unit: str,
                     subtitle: str = "") -> str:
    """A throughput-vs-latency curve: (label, x, y) points joined in the given order (e.g. by concurrency)."""
    left, right, top = 56.0, WIDTH - 16.0, header_height(subtitle) + 24.0
    bottom = top + 150
    xs, ys = [x for _, x, _ in points], [y for _, _, y in points]
    xt = nice_ticks(0, max(xs) * 1.1 or 1.0, 5)
    yt = nice_ticks(0, max(ys) * 1.1 or 1.0, 4)
    x_of, y_of = Scale(xt, left, right), Scale(yt, bottom, top)
    body: list[Markup] = _axes(xt, yt, x_of, y_of, (left, right, top, bottom), x_unit, y_unit, unit_above=12)
    xy = [(x_of(x), y_of(y)) for _, x, y in points]
    body.append(el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy), class_="trend"))
    for (label, x, y), (px, py) in zip(points, xy, strict=True):
        body.append(el("circle", el("title", f"{label}: {num(x)} {x_unit}, {num(y)} {y_unit}"), cx=px, cy=py,
                       r=3.2, class_="trend"))
        body.append(text(px + 5, py - 6, label, cls="tick"))
    return str(chart_svg(title, subtitle, bottom + 38, body, cls="chart trend"))


@dataclass(frozen=True)
class TimeLine:
    """One line of a chart over time: (x seconds, y) points; `step` holds each y until the next x (to `until`)."""

    name: str
    color: str
    points: list[tuple[float, float]]
    step: bool = False
    until: float | None = None
    dashed: bool = False


def render_time_svg(title: str, y_unit: str, lines: Sequence[TimeLine], subtitle: str = "",
                    x_unit: str = "s after the load's start") -> str:
    """A chart over time: one polyline per line (steps where asked), y from 0, a legend when there are several."""
    left, right = 56.0, WIDTH - 16.0
    legend = [(ln.name, ln.color) for ln in lines] if len(lines) > 1 else []
    legend_els, legend_h = swatches(legend, 0, header_height(subtitle) + 4, WIDTH)
    top = header_height(subtitle) + legend_h + 20.0
    bottom = top + 140
    xs = [x for ln in lines for x, _ in ln.points] + [ln.until for ln in lines if ln.until is not None]
    ys = [y for ln in lines for _, y in ln.points]
    if not xs or not ys:
        return str(chart_svg(title, subtitle, bottom, [text(WIDTH / 2, top + 60, "no data", anchor="middle",
                                                            cls="subtitle")], cls="chart trend"))
    xt = nice_ticks(min(0.0, *xs), max(xs) or 1.0, 6)
    yt = nice_ticks(min(0.0, *ys), max(ys) * 1.1 or 1.0, 4)
    x_of, y_of = Scale(xt, left, right), Scale(yt, bottom, top)
    body: list[Markup] = [*legend_els, *_axes(xt, yt, x_of, y_of, (left, right, top, bottom), x_unit, y_unit,
                                               unit_above=10)]
    for ln in lines:
        pts = ln.points
        if ln.step:
            ends = [x for x, _ in pts[1:]] + [ln.until if ln.until is not None else pts[-1][0]]
            xy = [p for (x, y), x2 in zip(pts, ends, strict=True) for p in ((x, y), (x2, y))]
        else:
            xy = pts
        peak = max(pts, key=lambda p: p[1])
        body.append(el("polyline", el("title", f"{ln.name}: max {num(peak[1])} {y_unit} at {num(peak[0])} s"),
                       points=" ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in xy), fill="none",
                       stroke=ln.color, stroke_width=1.8, stroke_dasharray="4 3" if ln.dashed else None))
    return str(chart_svg(title, subtitle, bottom + 38, body, cls="chart trend"))


TrialKind = Literal["front", "within", "outside"]
TRIAL_COLOURS: dict[TrialKind, str] = {"front": "#59a14f", "within": "#4e79a7", "outside": "#f28e2b"}
TRIAL_NAMES: dict[TrialKind, str] = {"front": "best / Pareto front", "within": "within the SLO",
                                     "outside": "outside the SLO"}


@dataclass(frozen=True)
class TrialPoint:
    tip: str
    x: float
    y: float
    kind: TrialKind


def trials_chart(title: str, subtitle: str, x_unit: str, y_unit: str, points: Sequence[TrialPoint]) -> Markup:
    """Every trial a dot, without labels (a study has dozens of trials: the setting is in the tooltip)."""
    left, right, top = 64.0, WIDTH - 24.0, header_height(subtitle) + 22.0
    bottom = top + 260
    xt = nice_ticks(min(p.x for p in points), max(p.x for p in points))
    yt = nice_ticks(min(p.y for p in points), max(p.y for p in points))
    x_of, y_of = Scale(xt, left, right), Scale(yt, bottom, top)
    body: list[Markup] = _axes(xt, yt, x_of, y_of, (left, right, top, bottom), x_unit, y_unit, unit_above=10)
    front = sorted((p.x, p.y) for p in points if p.kind == "front")
    if len(front) >= 2:
        body.append(el("polyline", points=" ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in front),
                       fill="none", stroke=TRIAL_COLOURS["front"], stroke_width=1.5))
    for p in sorted(points, key=lambda p: p.kind == "front"):  # the front drawn last, on top
        body.append(el("circle", el("title", p.tip), cx=round(x_of(p.x), 1), cy=round(y_of(p.y), 1),
                       r=5 if p.kind == "front" else 3.5, fill=TRIAL_COLOURS[p.kind], fill_opacity=0.85))
    legend, height = swatches([(TRIAL_NAMES[k], c) for k, c in TRIAL_COLOURS.items() if any(p.kind == k for p in points)],
                              left, bottom + 50, right - left)
    return chart_svg(title, subtitle, bottom + 50 + height, [*body, *legend])
