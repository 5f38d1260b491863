"""A tuning study's trials as one chart: linear axes, each trial a dot coloured by what it was (on the front,
within the SLO, outside it), its setting in the dot's tooltip rather than a label (a study has dozens of trials),
the front joined by a line."""

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
    swatches,
    text,
    tick_label,
    x_axis,
)

PLOT_H = 260
LEFT, RIGHT = 64, 24
Kind = Literal["front", "within", "outside"]
COLOURS: dict[Kind, str] = {"front": "#59a14f", "within": "#4e79a7", "outside": "#f28e2b"}
NAMES: dict[Kind, str] = {"front": "best / Pareto front", "within": "within the SLO", "outside": "outside the SLO"}


@dataclass(frozen=True)
class TrialPoint:
    tip: str
    x: float
    y: float
    kind: Kind


def trials_chart(title: str, subtitle: str, x_unit: str, y_unit: str, points: Sequence[TrialPoint]) -> Markup:
    xs, ys = [p.x for p in points], [p.y for p in points]
    xscale = Scale(nice_ticks(min(xs), max(xs)), LEFT, WIDTH - RIGHT)
    top = header_height(subtitle) + 22
    bottom = top + PLOT_H
    yticks = nice_ticks(min(ys), max(ys))
    yscale = Scale(yticks, bottom, top)
    body: list[Markup] = list(x_axis(xscale, top, bottom, x_unit))
    for t in yticks:
        body.append(el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=yscale(t), y2=yscale(t), class_="grid"))
        body.append(text(LEFT - 6, yscale(t) + 4, tick_label(t, yticks), anchor="end", cls="tick"))
    body.append(text(0, top - 8, y_unit, cls="unit"))
    front = sorted((p.x, p.y) for p in points if p.kind == "front")
    if len(front) >= 2:
        body.append(el("polyline", points=" ".join(f"{xscale(x):.1f},{yscale(y):.1f}" for x, y in front),
                       fill="none", stroke=COLOURS["front"], stroke_width=1.5))
    for p in sorted(points, key=lambda p: p.kind == "front"):  # the front drawn last, on top
        body.append(el("circle", el("title", p.tip), cx=round(xscale(p.x), 1), cy=round(yscale(p.y), 1),
                       r=5 if p.kind == "front" else 3.5, fill=COLOURS[p.kind], fill_opacity=0.85))
    legend, height = swatches([(NAMES[k], COLOURS[k]) for k in COLOURS if any(p.kind == k for p in points)],
                              LEFT, bottom + 46, WIDTH - LEFT)
    return chart_svg(title, subtitle, bottom + 46 + height, [*body, *legend])
