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
FLOOR_DECADES = 5  # a log axis spanning more hides the differences that matter
LEFT, RIGHT = 64, 24


def _decades(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def scatter_chart(title: str, x_unit: str, y_unit: str, points: Sequence[tuple[str, float, float, bool]], *,
                  subtitle: str = "") -> Markup:
    """Points (label, x, y, on the front), numbered on the plot and named in a list under it (labels of points
    close together would overlap); y on a log scale whose floor is at most FLOOR_DECADES below the largest value,
    smaller values (and 0) drawn on the floor."""
    positive = [y for _, _, y, _ in points if y > 0]
    hi = max(positive) if positive else 1.0
    lo = max(min(positive) if positive else hi, hi * 10.0 ** -FLOOR_DECADES)
    decades = _decades(lo, hi)
    if len(decades) < 2:
        decades = [decades[0], decades[0] * 10]
    xs = [x for _, x, _, _ in points]
    top = header_height(subtitle) + 22
    bottom = top + PLOT_H
    xscale = Scale(nice_ticks(min(xs) * 0.9, max(xs) * 1.05), LEFT, WIDTH - RIGHT)
    y0, y1 = math.log10(decades[0]), math.log10(decades[-1])

    def ypx(y: float) -> float:
        v = max(math.log10(y), y0) if y > 0 else y0
        return bottom - (v - y0) / (y1 - y0) * PLOT_H

    body: list[Markup] = list(x_axis(xscale, top, bottom, x_unit))
    for d in decades:
        body.append(el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=ypx(d), y2=ypx(d), class_="grid"))
        body.append(text(LEFT - 6, ypx(d) + 4, f"{d:g}", anchor="end", cls="tick"))
    body.append(text(0, top - 8, y_unit + (f" (≤ {decades[0]:g} drawn on the floor)" if lo > min(
        [y for _, _, y, _ in points] or [lo]) else ""), cls="unit"))
    front = sorted((x, y) for _, x, y, on in points if on)
    if len(front) >= 2:
        body.append(el("polyline", points=" ".join(f"{xscale(x):.1f},{ypx(y):.1f}" for x, y in front),
                       fill="none", stroke="#59a14f", stroke_width=1.5))
    listed = bottom + 44
    for n, (label, x, y, on) in enumerate(points, 1):
        px, py = xscale(x), ypx(y)
        tip = f"{label}: {num(x)} {x_unit}, {y:.3g} {y_unit}"
        body.append(el("circle", el("title", tip), cx=px, cy=py, r=4.5 if on else 3.5,
                       fill="#59a14f" if on else "#4e79a7"))
        body.append(text(px + 6, py - 6, str(n), cls="legend", tip=tip))
        body.append(text(LEFT, listed + 16 * (n - 1), truncate(f"{n}  {'★ ' if on else ''}{label} — {num(x)} "
                                                              f"{x_unit}, {y:.3g}", 80), cls="legend", tip=tip))
    return chart_svg(title, subtitle, listed + 16 * len(points), body)
