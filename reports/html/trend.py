"""History trends: one metric of one cell over recorded runs, with its change points, as a line chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from harness.core.metrics import METRICS
from reports.html.svg import WIDTH, Scale, chart_svg, el, nice_ticks, num, text, tick_label, truncate


@dataclass(frozen=True)
class TrendMark:
    """A change point on a trend chart: `index` is the first point at the new level."""

    index: int
    text: str  # e.g. "+7.1% [+5.0%, +9.3%] regression, p=2e-06"
    regression: bool


@dataclass(frozen=True)
class Trend:
    """One metric of one cell over recorded runs: (run label, median) oldest first, and its change points."""

    points: list[tuple[str, float]]
    marks: list[TrendMark]


def trend_unit(title: str) -> str:
    """The unit of the metric tag a trend title names (e.g. '<cell key> tpot_ms'), else ''."""
    for token in title.replace("·", " ").replace(":", " ").replace("/", " ").split():
        if token in METRICS:
            return METRICS[token].unit
    return ""


def render_trend_svg(points: list[tuple[str, float]], title: str, unit: str,
                     marks: Sequence[TrendMark] = ()) -> str:
    """A small line chart of one metric over runs: (label, value) points, oldest first; each change point
    a dashed line between the last run at the old level and the first at the new one."""
    left, right, top = 56.0, WIDTH - 16.0, 48.0
    bottom = top + 130
    if not points:
        return str(chart_svg(title, "", bottom, [text(WIDTH / 2, top + 60, "no history", anchor="middle",
                                                      cls="subtitle")], cls="chart trend"))
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    ticks = nice_ticks(lo - pad, hi + pad, 4)
    y_of = Scale(ticks, bottom, top)
    step = (right - left) / max(len(points) - 1, 1)

    def x_of(i: int) -> float:
        return left + i * step if len(points) > 1 else (left + right) / 2

    body: list[Markup] = []
    for t in ticks:
        body += [el("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                 text(left - 6, y_of(t) + 4, tick_label(t, ticks), anchor="end", cls="tick")]
    body.append(text(left - 6, top - 12, unit, anchor="end", cls="unit"))
    for mark in marks:
        if 0 < mark.index < len(points):
            x = x_of(mark.index) - step / 2
            cls = "change regression" if mark.regression else "change"
            body += [el("line", el("title", f"change point before {points[mark.index][0]}: {mark.text}"),
                        x1=x, x2=x, y1=top - 4, y2=bottom, class_=cls),
                     text(x + 3, top + 6, mark.text.split(" ")[0], cls=f"{cls} tick")]
    xy = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
    body.append(el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy), class_="trend"))
    last, every = len(points) - 1, max(1, math.ceil(len(points) / 5))
    for i, ((label, v), (x, y)) in enumerate(zip(points, xy, strict=True)):
        body.append(el("circle", el("title", f"{label}: {num(v)} {unit}"), cx=x, cy=y, r=3.2, class_="trend"))
        if i == last or (i % every == 0 and last - i >= every):  # x labels spaced out, always the newest
            anchor = "end" if i == last and last else "middle"  # the first centred: a start-anchored one ran into the next
            body.append(text(x, bottom + 16, truncate(label, 16), anchor=anchor, cls="tick", tip=label))
    body.append(text(xy[-1][0] - 6, xy[-1][1] - 8, num(values[-1]), anchor="end", cls="value"))
    return str(chart_svg(title, "", bottom + 26, body, cls="chart trend"))
