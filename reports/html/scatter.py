"""A labelled scatter chart with a log-scale y axis and a front joined by a line (the quality report's Pareto
chart: KLD against weight size)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from reports.html.svg import (
    WIDTH,
    Scale,
    chart_svg,
    el,
    header_height,
    nice_ticks,
    num,
    text,
    truncate,
    x_axis,
)

PLOT_H = 240
LEFT, RIGHT = 64, 24


def _decades(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def scatter_chart(title: str, x_unit: str, y_unit: str, points: Sequence[tuple[str, float, float, bool]], *,
                  subtitle: str = "") -> Markup:
    """Points (label, x, y, on the front); y > 0 on a log scale, y <= 0 drawn on the axis floor."""
    positive = [y for _, _, y, _ in points if y > 0]
    lo = min(positive) if positive else 1e-6
    hi = max(positive) if positive else 1.0
    decades = _decades(lo / 2 if lo == hi else lo, hi)
    if len(decades) < 2:
        decades = [decades[0], decades[0] * 10]
    xs = [x for _, x, _, _ in points]
    top = header_height(subtitle) + 8
    bottom = top + PLOT_H
    xscale = Scale(nice_ticks(min(xs) * 0.9, max(xs) * 1.05), LEFT, WIDTH - RIGHT)
    y0, y1 = math.log10(decades[0]), math.log10(decades[-1])

    def ypx(y: float) -> float:
        v = math.log10(y) if y > 0 else y0
        return bottom - (v - y0) / (y1 - y0) * PLOT_H

    body: list[Markup] = list(x_axis(xscale, top, bottom, x_unit))
    for d in decades:
        body.append(el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=ypx(d), y2=ypx(d), class_="grid"))
        body.append(text(LEFT - 6, ypx(d) + 4, f"{d:g}", anchor="end", cls="tick"))
    body.append(text(0, top - 4, y_unit, cls="unit"))
    front = sorted((x, y) for _, x, y, on in points if on)
    if len(front) >= 2:
        body.append(el("polyline", points=" ".join(f"{xscale(x):.1f},{ypx(y):.1f}" for x, y in front),
                       fill="none", stroke="#59a14f", stroke_width=1.5))
    for label, x, y, on in points:
        px, py = xscale(x), ypx(y)
        tip = f"{label}: {num(x)} {x_unit}, {y:.3g} {y_unit}"
        body.append(el("circle", el("title", tip), cx=px, cy=py, r=4.5 if on else 3.5,
                       fill="#59a14f" if on else "#4e79a7"))
        body.append(text(px + 7, py - 5, truncate(("★ " if on else "") + label, 30), cls="legend", tip=tip))
    return chart_svg(title, subtitle, bottom + 34, body)
