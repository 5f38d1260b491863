"""Generic charts: horizontal grouped bars with whiskers, and box plots of raw values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from reports.html.svg import (
    WIDTH,
    Scale,
    chart_svg,
    el,
    header_height,
    label_width,
    nice_ticks,
    num,
    palette,
    swatches,
    text,
    truncate,
    x_axis,
)

BAR_H, BAR_GAP, GROUP_GAP = 14, 3, 12
ROW_H = 24  # box-plot row
VALUE_W = 74  # right-hand column of value labels


@dataclass(frozen=True)
class Bar:
    """One bar: value, optional whisker (lo, hi), optional colour overriding the series colour."""

    value: float
    lo: float | None = None
    hi: float | None = None
    color: str | None = None
    label: str | None = None  # value text shown at the right; default: the value
    tip: str | None = None


def bar_chart(title: str, unit: str, groups: Sequence[str], series: Sequence[str],
              bars: dict[tuple[str, str], Bar], *, subtitle: str = "", band: float | None = None,
              legend: Sequence[tuple[str, str]] | None = None, colors: dict[str, str] | None = None,
              include: Sequence[float] = ()) -> Markup:
    """Horizontal grouped bars: a block of bars per group (label at the left), one bar per series
    present in the group, bars from zero (negative values go left), whiskers lo–hi, the value in a
    column at the right. `band` shades ±band around zero (a comparison's minimum effect); `colors`
    fixes series colours (default: the palette in series order); the axis covers `include` too."""
    colors = colors or palette(series)
    if legend is None:
        legend = [(s, colors[s]) for s in series] if len(series) > 1 else []
    values = [v for b in bars.values() for v in (b.value, b.lo, b.hi) if v is not None]
    values += [-band, band, *include] if band else list(include)
    label_w = label_width(groups)
    scale = Scale(nice_ticks(min(0.0, *values), max(0.0, *values)), label_w + 6, WIDTH - VALUE_W - 8)
    legend_els, legend_h = swatches(legend, 0, header_height(subtitle) + 4, WIDTH)
    top = header_height(subtitle) + legend_h + 4
    y = top + 6
    body: list[Markup] = []
    for g in groups:
        present = [s for s in series if (g, s) in bars]
        if not present:
            continue
        block = len(present) * (BAR_H + BAR_GAP) - BAR_GAP
        body.append(text(label_w, y + block / 2 + 4, truncate(g, 34), anchor="end", cls="label", tip=g))
        for s in present:
            body += _bar(bars[(g, s)], scale, y, bars[(g, s)].color or colors[s], s if len(series) > 1 else g)
            y += BAR_H + BAR_GAP
        y += GROUP_GAP - BAR_GAP
    bottom = y - GROUP_GAP + 10
    under: list[Markup] = []
    if band:
        under.append(el("rect", x=scale(-band), y=top, width=scale(band) - scale(-band), height=bottom - top,
                        class_="band"))
    under += x_axis(scale, top, bottom, unit)
    return chart_svg(title, subtitle, bottom + 34, [*legend_els, *under, *body])


def _bar(b: Bar, scale: Scale, y: float, color: str, name: str) -> list[Markup]:
    x0, x1 = sorted((scale(0), scale(b.value)))
    tip = b.tip or f"{name}: {num(b.value)}"
    out = [el("rect", el("title", tip), x=x0, y=y, width=max(x1 - x0, 1.0), height=BAR_H, rx=2, fill=color)]
    if b.lo is not None and b.hi is not None:
        lo, hi, mid = scale(b.lo), scale(b.hi), y + BAR_H / 2
        out += [el("line", x1=lo, x2=hi, y1=mid, y2=mid, class_="whisker"),
                el("line", x1=lo, x2=lo, y1=mid - 4, y2=mid + 4, class_="whisker"),
                el("line", x1=hi, x2=hi, y1=mid - 4, y2=mid + 4, class_="whisker")]
    out.append(text(WIDTH - 4, y + BAR_H - 3, b.label or num(b.value), anchor="end", cls="value"))
    return out


def box_chart(title: str, unit: str, rows: Sequence[tuple[str, Sequence[float]]], *, subtitle: str = "",
              colors: Sequence[str] | None = None) -> Markup:
    """Horizontal box plots, one row per label: box q1–q3, median line, whiskers to the furthest
    values within 1.5 IQR, every value as a dot; the median and n in the right-hand column.
    `colors`: one per row (default: the palette in row order)."""
    colors = list(colors or palette([label for label, _ in rows]).values())
    boxes = [(label, np.asarray(v, dtype=float), color)
             for (label, v), color in zip(rows, colors, strict=True) if len(v)]
    label_w = label_width(label for label, _, _ in boxes)
    allv = np.concatenate([v for _, v, _ in boxes])
    scale = Scale(nice_ticks(float(allv.min()), float(allv.max())), label_w + 6, WIDTH - VALUE_W - 8)
    top = header_height(subtitle) + 4
    body: list[Markup] = []
    for i, (label, v, color) in enumerate(boxes):
        y = top + 6 + i * ROW_H
        body.append(text(label_w, y + ROW_H / 2, truncate(label, 34), anchor="end", cls="label", tip=label))
        body += _box(v, scale, y + 2, ROW_H - 8, color, unit)
    bottom = top + 6 + len(boxes) * ROW_H
    return chart_svg(title, subtitle, bottom + 34, [*x_axis(scale, top, bottom, unit), *body])


def _box(v: np.ndarray, scale: Scale, y: float, h: float, color: str, unit: str) -> list[Markup]:
    q1, med, q3 = (float(q) for q in np.percentile(v, [25, 50, 75]))
    fence_lo, fence_hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    w_lo, w_hi = float(v[v >= fence_lo].min()), float(v[v <= fence_hi].max())
    mid = y + h / 2
    tip = (f"n={len(v)}  median {num(med)} {unit}  q1 {num(q1)}  q3 {num(q3)}  "
           f"min {num(float(v.min()))}  max {num(float(v.max()))}")
    out = [el("line", x1=scale(w_lo), x2=scale(w_hi), y1=mid, y2=mid, class_="whisker"),
           el("line", x1=scale(w_lo), x2=scale(w_lo), y1=y + 2, y2=y + h - 2, class_="whisker"),
           el("line", x1=scale(w_hi), x2=scale(w_hi), y1=y + 2, y2=y + h - 2, class_="whisker"),
           el("rect", el("title", tip), x=scale(q1), y=y, width=max(scale(q3) - scale(q1), 1.0), height=h,
              fill=color, fill_opacity=0.25, stroke=color, stroke_width=1.2, rx=2),
           el("line", x1=scale(med), x2=scale(med), y1=y, y2=y + h, stroke=color, stroke_width=2.5)]
    for j, x in enumerate(v):  # every value; deterministic jitter so equal values stay visible
        outlier = x < fence_lo or x > fence_hi
        out.append(el("circle", cx=scale(float(x)), cy=mid + ((j * 0.618) % 1 - 0.5) * (h - 6), r=2.2,
                      fill="none" if outlier else color, stroke=color, fill_opacity=0.8))
    out.append(text(WIDTH - 4, mid + 4, f"{num(med)} · n={len(v)}", anchor="end", cls="value"))
    return out
