"""Self-contained HTML reports of a run and of a comparison: one file, no scripts, no network.

Charts are inline SVG drawn here in Python (no JavaScript, no external fonts or stylesheets); the
page is a jinja2 template (reports/templates/) with autoescaping, and every string that goes into
an SVG passes through `_el`, which escapes it, so model output, keys and error texts are shown
as text and never interpreted. A Content-Security-Policy meta tag blocks scripts and any load
from the network even if something slipped through.

Charts of a run: grouped bars of output tok/s, TTFT and TPOT medians by precision · device
(whiskers min–max over the measured iterations), box plots of the raw per-iteration TTFT and TPOT
values (warm-up excluded), memory bars, speculative acceptance bars, and optional history trends.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from harness.core.metrics import METRICS
from harness.core.schema import FAILED_STATUSES, CellResult, RunResults, Summary
from harness.kinds import kind_spec
from reports.goodput import sweep_limits
from reports.precision_table import precision_groups
from reports.repeated_loads import repeated_loads
from reports.rows import by_kind, cell_row, column_text, fmt_spread, fmt_value, server_rows

if TYPE_CHECKING:  # harness.analyze.compare pulls in scipy: imported only when a comparison is rendered
    from harness.analyze.compare import Comparison, MetricComparison

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac")
VERDICT_COLORS = {"regression": "#d62728", "improvement": "#2ca02c", "inconclusive": "#e0a100",
                  "unchanged": "#8c8c8c"}
OUTPUT_CHARS = 400  # sample outputs are cut here

WIDTH = 600  # every chart's viewBox width; the page scales it to its column
BAR_H, BAR_GAP, GROUP_GAP = 14, 3, 12
ROW_H = 24  # box-plot row
CHAR_W = 6.6  # rough width of one 12px character, for label columns
VALUE_W = 74  # right-hand column of value labels

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


# ---------------------------------------------------------------- SVG primitives


def _attr_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1f}".removesuffix(".0")
    return str(v)


def _el(tag: str, *children: object, **attrs: object) -> Markup:
    """One SVG element. Text children and attribute values are escaped; Markup children are kept.
    `class_` -> class, `font_size` -> font-size; None attributes are left out."""
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(_attr_value(v))}"'
                   for k, v in attrs.items() if v is not None)
    if not children:
        return Markup(f"<{tag}{attr}/>")
    return Markup(f"<{tag}{attr}>{''.join(str(escape(c)) for c in children)}</{tag}>")


def _text(x: float, y: float, s: str, *, anchor: str = "start", cls: str | None = None, tip: str | None = None,
          **attrs: object) -> Markup:
    """A text label; `tip` (e.g. the untruncated label) becomes its hover title."""
    children: list[object] = [_el("title", tip)] if tip else []
    return _el("text", *children, s, x=x, y=y, text_anchor=anchor, class_=cls, **attrs)


def _truncate(s: str, chars: int) -> str:
    return s if len(s) <= chars else s[: chars - 1] + "…"


def _num(v: float) -> str:
    """A value label: about three significant digits."""
    a = abs(v)
    if a >= 100 or v == 0:
        return f"{v:.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.2f}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start, stop = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(start, stop + 1)]


def _tick_label(v: float, ticks: Sequence[float]) -> str:
    """The value with as few decimals as every tick of the axis needs (0.25 steps: two)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = next(d for d in range(8) if all(abs(round(t, d) - t) < step * 1e-6 for t in ticks) or d == 7)
    return f"{v:.{digits}f}"


@dataclass(frozen=True)
class _Scale:
    """Linear map from a value domain (the outer ticks) to pixels."""

    ticks: list[float]
    px0: float
    px1: float

    def __call__(self, v: float) -> float:
        d0, d1 = self.ticks[0], self.ticks[-1]
        return self.px0 + (v - d0) / (d1 - d0) * (self.px1 - self.px0)


def _x_axis(scale: _Scale, top: float, bottom: float, unit: str) -> list[Markup]:
    """Vertical grid lines with tick labels under the plot, and the unit at the right."""
    out = []
    for t in scale.ticks:
        x = scale(t)
        out.append(_el("line", x1=x, x2=x, y1=top, y2=bottom, class_="zero" if t == 0 else "grid"))
        out.append(_text(x, bottom + 14, _tick_label(t, scale.ticks), anchor="middle", cls="tick"))
    out.append(_text(scale.px1, bottom + 28, unit, anchor="end", cls="unit"))
    return out


def _legend(items: Sequence[tuple[str, str]], x0: float, y0: float, width: float) -> tuple[list[Markup], float]:
    """Colour swatches with names, wrapped to `width`; returns the elements and the height used."""
    out: list[Markup] = []
    x, y = x0, y0
    for name, color in items:
        w = 18 + len(name) * CHAR_W + 14
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 18
        out.append(_el("rect", x=x, y=y - 9, width=11, height=11, rx=2, fill=color))
        out.append(_text(x + 16, y, name, cls="legend"))
        x += w
    return out, (y - y0 + 18) if items else 0


def _svg(title: str, subtitle: str, height: float, body: Iterable[Markup], cls: str = "chart") -> Markup:
    """The chart's <svg>: accessible <title>, visible title and subtitle, then the body."""
    head = [_el("title", title), _text(0, 16, title, cls="title")]
    if subtitle:
        head.append(_text(0, 33, subtitle, cls="subtitle"))
    return _el("svg", *head, *body, class_=cls, role="img", viewBox=f"0 0 {WIDTH} {math.ceil(height)}",
               width=WIDTH, height=math.ceil(height), xmlns="http://www.w3.org/2000/svg")


def _header_height(subtitle: str) -> float:
    return 48 if subtitle else 30


def _palette(names: Iterable[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(_unique(names))}


def _unique(xs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def _label_width(labels: Iterable[str], limit: int = 34) -> float:
    return min(max((len(s) for s in labels), default=4), limit) * CHAR_W + 12


# ---------------------------------------------------------------- generic charts


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
    colors = colors or _palette(series)
    if legend is None:
        legend = [(s, colors[s]) for s in series] if len(series) > 1 else []
    values = [v for b in bars.values() for v in (b.value, b.lo, b.hi) if v is not None]
    values += [-band, band, *include] if band else list(include)
    label_w = _label_width(groups)
    scale = _Scale(_ticks(min(0.0, *values), max(0.0, *values)), label_w + 6, WIDTH - VALUE_W - 8)
    legend_els, legend_h = _legend(legend, 0, _header_height(subtitle) + 4, WIDTH)
    top = _header_height(subtitle) + legend_h + 4
    y = top + 6
    body: list[Markup] = []
    for g in groups:
        present = [s for s in series if (g, s) in bars]
        if not present:
            continue
        block = len(present) * (BAR_H + BAR_GAP) - BAR_GAP
        body.append(_text(label_w, y + block / 2 + 4, _truncate(g, 34), anchor="end", cls="label", tip=g))
        for s in present:
            body += _bar(bars[(g, s)], scale, y, bars[(g, s)].color or colors[s], s if len(series) > 1 else g)
            y += BAR_H + BAR_GAP
        y += GROUP_GAP - BAR_GAP
    bottom = y - GROUP_GAP + 10
    under: list[Markup] = []
    if band:
        under.append(_el("rect", x=scale(-band), y=top, width=scale(band) - scale(-band), height=bottom - top,
                         class_="band"))
    under += _x_axis(scale, top, bottom, unit)
    return _svg(title, subtitle, bottom + 34, [*legend_els, *under, *body])


def _bar(b: Bar, scale: _Scale, y: float, color: str, name: str) -> list[Markup]:
    x0, x1 = sorted((scale(0), scale(b.value)))
    tip = b.tip or f"{name}: {_num(b.value)}"
    out = [_el("rect", _el("title", tip), x=x0, y=y, width=max(x1 - x0, 1.0), height=BAR_H, rx=2, fill=color)]
    if b.lo is not None and b.hi is not None:
        lo, hi, mid = scale(b.lo), scale(b.hi), y + BAR_H / 2
        out += [_el("line", x1=lo, x2=hi, y1=mid, y2=mid, class_="whisker"),
                _el("line", x1=lo, x2=lo, y1=mid - 4, y2=mid + 4, class_="whisker"),
                _el("line", x1=hi, x2=hi, y1=mid - 4, y2=mid + 4, class_="whisker")]
    out.append(_text(WIDTH - 4, y + BAR_H - 3, b.label or _num(b.value), anchor="end", cls="value"))
    return out


def box_chart(title: str, unit: str, rows: Sequence[tuple[str, Sequence[float]]], *, subtitle: str = "",
              colors: Sequence[str] | None = None) -> Markup:
    """Horizontal box plots, one row per label: box q1–q3, median line, whiskers to the furthest
    values within 1.5 IQR, every value as a dot; the median and n in the right-hand column.
    `colors`: one per row (default: the palette in row order)."""
    colors = list(colors or _palette([label for label, _ in rows]).values())
    boxes = [(label, np.asarray(v, dtype=float), color)
             for (label, v), color in zip(rows, colors, strict=True) if len(v)]
    label_w = _label_width(label for label, _, _ in boxes)
    allv = np.concatenate([v for _, v, _ in boxes])
    scale = _Scale(_ticks(float(allv.min()), float(allv.max())), label_w + 6, WIDTH - VALUE_W - 8)
    top = _header_height(subtitle) + 4
    body: list[Markup] = []
    for i, (label, v, color) in enumerate(boxes):
        y = top + 6 + i * ROW_H
        body.append(_text(label_w, y + ROW_H / 2, _truncate(label, 34), anchor="end", cls="label", tip=label))
        body += _box(v, scale, y + 2, ROW_H - 8, color, unit)
    bottom = top + 6 + len(boxes) * ROW_H
    return _svg(title, subtitle, bottom + 34, [*_x_axis(scale, top, bottom, unit), *body])


def _box(v: np.ndarray, scale: _Scale, y: float, h: float, color: str, unit: str) -> list[Markup]:
    q1, med, q3 = (float(q) for q in np.percentile(v, [25, 50, 75]))
    fence_lo, fence_hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    w_lo, w_hi = float(v[v >= fence_lo].min()), float(v[v <= fence_hi].max())
    mid = y + h / 2
    tip = (f"n={len(v)}  median {_num(med)} {unit}  q1 {_num(q1)}  q3 {_num(q3)}  "
           f"min {_num(float(v.min()))}  max {_num(float(v.max()))}")
    out = [_el("line", x1=scale(w_lo), x2=scale(w_hi), y1=mid, y2=mid, class_="whisker"),
           _el("line", x1=scale(w_lo), x2=scale(w_lo), y1=y + 2, y2=y + h - 2, class_="whisker"),
           _el("line", x1=scale(w_hi), x2=scale(w_hi), y1=y + 2, y2=y + h - 2, class_="whisker"),
           _el("rect", _el("title", tip), x=scale(q1), y=y, width=max(scale(q3) - scale(q1), 1.0), height=h,
               fill=color, fill_opacity=0.25, stroke=color, stroke_width=1.2, rx=2),
           _el("line", x1=scale(med), x2=scale(med), y1=y, y2=y + h, stroke=color, stroke_width=2.5)]
    for j, x in enumerate(v):  # every value; deterministic jitter so equal values stay visible
        outlier = x < fence_lo or x > fence_hi
        out.append(_el("circle", cx=scale(float(x)), cy=mid + ((j * 0.618) % 1 - 0.5) * (h - 6), r=2.2,
                       fill="none" if outlier else color, stroke=color, fill_opacity=0.8))
    out.append(_text(WIDTH - 4, mid + 4, f"{_num(med)} · n={len(v)}", anchor="end", cls="value"))
    return out


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


def render_trend_svg(points: list[tuple[str, float]], title: str, unit: str,
                     marks: Sequence[TrendMark] = ()) -> str:
    """A small line chart of one metric over runs: (label, value) points, oldest first; each change point
    a dashed line between the last run at the old level and the first at the new one."""
    left, right, top = 56.0, WIDTH - 16.0, 48.0
    bottom = top + 130
    if not points:
        return str(_svg(title, "", bottom, [_text(WIDTH / 2, top + 60, "no history", anchor="middle", cls="subtitle")],
                        cls="chart trend"))
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    ticks = _ticks(lo - pad, hi + pad, 4)
    y_of = _Scale(ticks, bottom, top)
    step = (right - left) / max(len(points) - 1, 1)

    def x_of(i: int) -> float:
        return left + i * step if len(points) > 1 else (left + right) / 2

    body: list[Markup] = []
    for t in ticks:
        body += [_el("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                 _text(left - 6, y_of(t) + 4, _tick_label(t, ticks), anchor="end", cls="tick")]
    body.append(_text(left - 6, top - 12, unit, anchor="end", cls="unit"))
    for mark in marks:
        if 0 < mark.index < len(points):
            x = x_of(mark.index) - step / 2
            cls = "change regression" if mark.regression else "change"
            body += [_el("line", _el("title", f"change point before {points[mark.index][0]}: {mark.text}"),
                         x1=x, x2=x, y1=top - 4, y2=bottom, class_=cls),
                     _text(x + 3, top + 6, mark.text.split(" ")[0], cls=f"{cls} tick")]
    xy = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
    body.append(_el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy), class_="trend"))
    last, every = len(points) - 1, max(1, math.ceil(len(points) / 5))
    for i, ((label, v), (x, y)) in enumerate(zip(points, xy, strict=True)):
        body.append(_el("circle", _el("title", f"{label}: {_num(v)} {unit}"), cx=x, cy=y, r=3.2, class_="trend"))
        if i == last or (i % every == 0 and last - i >= every):  # x labels spaced out, always the newest
            anchor = "end" if i == last and last else "middle"  # the first centred: a start-anchored one ran into the next
            body.append(_text(x, bottom + 16, _truncate(label, 16), anchor=anchor, cls="tick", tip=label))
    body.append(_text(xy[-1][0] - 6, xy[-1][1] - 8, _num(values[-1]), anchor="end", cls="value"))
    return str(_svg(title, "", bottom + 26, body, cls="chart trend"))


def render_curve_svg(points: list[tuple[str, float, float]], title: str, x_unit: str, y_unit: str,
                     subtitle: str = "") -> str:
    """A throughput-vs-latency curve: (label, x, y) points joined in the given order (e.g. by concurrency)."""
    left, right, top = 56.0, WIDTH - 16.0, _header_height(subtitle) + 24.0
    bottom = top + 150
    xs, ys = [x for _, x, _ in points], [y for _, _, y in points]
    xt = _ticks(0, max(xs) * 1.1 or 1.0, 5)
    yt = _ticks(0, max(ys) * 1.1 or 1.0, 4)
    x_of, y_of = _Scale(xt, left, right), _Scale(yt, bottom, top)
    body: list[Markup] = []
    for t in yt:
        body += [_el("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                 _text(left - 6, y_of(t) + 4, _tick_label(t, yt), anchor="end", cls="tick")]
    for t in xt:
        body.append(_text(x_of(t), bottom + 16, _tick_label(t, xt), anchor="middle", cls="tick"))
    body += [_text(left - 6, top - 12, y_unit, anchor="end", cls="unit"),
             _text(right, bottom + 32, x_unit, anchor="end", cls="unit")]
    xy = [(x_of(x), y_of(y)) for _, x, y in points]
    body.append(_el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy), class_="trend"))
    for (label, x, y), (px, py) in zip(points, xy, strict=True):
        body.append(_el("circle", _el("title", f"{label}: {_num(x)} {x_unit}, {_num(y)} {y_unit}"), cx=px, cy=py,
                        r=3.2, class_="trend"))
        body.append(_text(px + 5, py - 6, label, cls="tick"))
    return str(_svg(title, subtitle, bottom + 38, body, cls="chart trend"))


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
    legend_els, legend_h = _legend(legend, 0, _header_height(subtitle) + 4, WIDTH)
    top = _header_height(subtitle) + legend_h + 20.0
    bottom = top + 140
    xs = [x for ln in lines for x, _ in ln.points] + [ln.until for ln in lines if ln.until is not None]
    ys = [y for ln in lines for _, y in ln.points]
    if not xs or not ys:
        return str(_svg(title, subtitle, bottom, [_text(WIDTH / 2, top + 60, "no data", anchor="middle",
                                                        cls="subtitle")], cls="chart trend"))
    xt = _ticks(min(0.0, *xs), max(xs) or 1.0, 6)
    yt = _ticks(min(0.0, *ys), max(ys) * 1.1 or 1.0, 4)
    x_of, y_of = _Scale(xt, left, right), _Scale(yt, bottom, top)
    body: list[Markup] = list(legend_els)
    for t in yt:
        body += [_el("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                 _text(left - 6, y_of(t) + 4, _tick_label(t, yt), anchor="end", cls="tick")]
    for t in xt:
        body.append(_text(x_of(t), bottom + 16, _tick_label(t, xt), anchor="middle", cls="tick"))
    body += [_text(left - 6, top - 10, y_unit, anchor="end", cls="unit"),
             _text(right, bottom + 32, x_unit, anchor="end", cls="unit")]
    for ln in lines:
        pts = ln.points
        if ln.step:
            ends = [x for x, _ in pts[1:]] + [ln.until if ln.until is not None else pts[-1][0]]
            xy = [p for (x, y), x2 in zip(pts, ends, strict=True) for p in ((x, y), (x2, y))]
        else:
            xy = pts
        peak = max(pts, key=lambda p: p[1])
        body.append(_el("polyline", _el("title", f"{ln.name}: max {_num(peak[1])} {y_unit} at {_num(peak[0])} s"),
                        points=" ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in xy), fill="none",
                        stroke=ln.color, stroke_width=1.8, stroke_dasharray="4 3" if ln.dashed else None))
    return str(_svg(title, subtitle, bottom + 38, body, cls="chart trend"))


def _load_sections(cells: list[CellResult]) -> list[dict[str, object]]:
    """Per serving cell: its load-level figures, charts over time (requests in flight, per-window throughput and
    latency, the server's /metrics series) and its time-slice table."""
    from reports.load_report import SLICE_HEADERS, figures, load_views, slice_cells

    out: list[dict[str, object]] = []
    for view in load_views(cells):
        end = view.duration_s
        charts = [render_time_svg(
            "Requests in flight", "requests",
            [TimeLine("mean per bucket", PALETTE[0], [(x, m) for x, m, _ in view.in_flight], step=True, until=end),
             TimeLine("max per bucket", PALETTE[1], [(x, p) for x, _, p in view.in_flight], step=True, until=end,
                      dashed=True)],
            subtitle=f"sent and not yet answered; {len(view.in_flight)} buckets of the load")]
        sl = view.slices
        if sl:
            w = f"per {view.window_s:g} s window"
            charts.append(render_time_svg(
                "Output tok/s over the load", "tokens/s",
                [TimeLine("output tok/s", PALETTE[2], [(x.start_s, x.output_tps) for x in sl], step=True,
                          until=sl[-1].end_s)], subtitle=f"{w}: output tokens delivered in it / its length"))
            lat = [TimeLine(name, color, pts, step=True, until=sl[-1].end_s) for name, color, pts in (
                ("TTFT p50", PALETTE[0], [(x.start_s, x.ttft_p50_ms) for x in sl if x.ttft_p50_ms is not None]),
                ("TTFT p90", PALETTE[1], [(x.start_s, x.ttft_p90_ms) for x in sl if x.ttft_p90_ms is not None]),
                ("TPOT p50", PALETTE[2], [(x.start_s, x.tpot_p50_ms) for x in sl if x.tpot_p50_ms is not None]))
                if pts]
            if lat:
                charts.append(render_time_svg("Latency over the load", "ms", lat,
                                              subtitle=f"{w}: of the requests completed in it"))
        for k, (fam, kind, pts) in enumerate(view.server):
            how = {"rate/s": ("per second", "counter as its rate between scrapes"),
                   "mean": ("mean", "histogram: mean observation per interval, Δsum / Δcount")}.get(
                kind, ("value", "gauge as read"))
            charts.append(render_time_svg(
                _truncate(fam, 60), how[0], [TimeLine(fam, PALETTE[(3 + k) % len(PALETTE)], pts)],
                subtitle=f"server /metrics: {how[1]}, labels summed"))
        out.append({"key": view.cell.key, "figures": figures(view), "charts": [Markup(c) for c in charts],
                    "headers": SLICE_HEADERS, "slices": [slice_cells(x) for x in sl]})
    return out


def _sweep_curves(cells: list[CellResult]) -> list[Markup]:
    """Per load sweep (serving or continuous batching, over concurrency or rate): output tok/s against TTFT
    p90, one point per concurrency or rate."""
    from reports.goodput import sweep_axis, sweep_key, sweep_value

    sweeps: dict[str, list[CellResult]] = defaultdict(list)
    for c in cells:
        if sweep_axis(c) and "batch_output_tps" in c.summaries and "ttft_ms" in c.summaries:
            sweeps[sweep_key(c)].append(c)
    out = []
    for key, group in sweeps.items():
        if len(group) < 2:
            continue
        group.sort(key=sweep_value)
        label = {"concurrency": "c", "rate": "r"}
        points = [(f"{label[sweep_axis(c) or 'concurrency']}={sweep_value(c)}", c.summaries["batch_output_tps"].median,
                   c.summaries["ttft_ms"].p90) for c in group]
        out.append(Markup(render_curve_svg(points, "Throughput vs latency", "total output tok/s (whole load)", "TTFT p90 ms",
                                           subtitle=_truncate(key, 90))))
    return out


# ---------------------------------------------------------------- run page: labels and data


def _short_labels(keys: Sequence[str], drop: dict[str, set[str]] | None = None,
                  groups: dict[str, str] | None = None) -> dict[str, str]:
    """Cell keys shortened for chart labels: '/'-separated parts every key shares (and each key's
    `drop` parts) left out, '[params]' removed while labels stay unique (within each key's group,
    when `groups` is given); the full keys when they would not be unique."""
    drop, groups = drop or {}, groups or {}
    parts = {k: [p for p in k.split("/") if p not in drop.get(k, set())] for k in keys}
    common = set.intersection(*(set(p) for p in parts.values())) if len(keys) > 1 else set()
    for strip in (True, False):
        labels = {k: " · ".join(p.split("[")[0] if strip else p for p in ps if p not in common) or k.split("/")[-1]
                  for k, ps in parts.items()}
        if len({(groups.get(k), label) for k, label in labels.items()}) == len(labels):
            return labels
    return {k: k for k in keys}


def _measured(cell: CellResult, tag: str) -> list[float]:
    """Raw per-iteration values of one metric, warm-up excluded."""
    return [x for s in cell.samples if not s.warmup for x in s.values.get(tag, [])]


def _summary_bar(s: Summary) -> Bar:
    return Bar(s.median, s.min, s.max, tip=f"median {_num(s.median)}, min {_num(s.min)}, max {_num(s.max)}, n={s.n}")


@dataclass(frozen=True)
class _Series:
    """Measured cells as chart series: grouped by precision · device, named by the rest of the key,
    one colour per name on every chart of the page."""

    group: dict[str, str]
    name: dict[str, str]
    color: dict[str, str]

    @classmethod
    def of(cls, cells: list[CellResult]) -> _Series:
        group = {c.key: f"{c.spec.precision} · {c.spec.device}" for c in cells}
        name = _short_labels([c.key for c in cells], {c.key: {c.spec.precision, c.spec.device} for c in cells}, group)
        return cls(group, name, _palette(name.values()))


def _metric_bars(cells: list[CellResult], tag: str, series: _Series, subtitle: str) -> Markup | None:
    """Medians of one metric grouped by precision · device, one bar per series."""
    cells = [c for c in cells if tag in c.summaries]
    if not cells:
        return None
    bars = {(series.group[c.key], series.name[c.key]): _summary_bar(c.summaries[tag]) for c in cells}
    m = METRICS[tag]
    better = "higher" if m.higher_is_better else "lower"
    return bar_chart(f"{m.title} ({m.unit}) by precision and device", m.unit, _unique(g for g, _ in bars),
                     _unique(n for _, n in bars), bars, subtitle=f"{subtitle}; {better} is better",
                     colors=series.color)


def _performance_charts(cells: list[CellResult], series: _Series) -> list[Markup]:
    sub = "median per cell; whiskers min–max of the measured iterations"
    charts = [_metric_bars(cells, tag, series, sub) for tag in ("output_tps", "ttft_ms", "tpot_ms")]
    return [c for c in charts if c is not None]


def _latency_boxes(cells: list[CellResult], labels: dict[str, str], series: _Series) -> list[Markup]:
    out = []
    for tag in ("ttft_ms", "tpot_ms"):
        rows = [(labels[c.key], _measured(c, tag)) for c in cells]
        if any(v for _, v in rows):
            m = METRICS[tag]
            out.append(box_chart(f"{m.title} distribution ({m.unit})", m.unit, rows,
                                 subtitle="every measured iteration (warm-up excluded); box q1–q3, whiskers 1.5 IQR",
                                 colors=[series.color[series.name[c.key]] for c in cells]))
    return out


def _memory_chart(cells: list[CellResult], labels: dict[str, str]) -> Markup | None:
    series = {"peak_rss_mb": "peak RSS", "model_memory_mb": "model memory (RSS added by loading)"}
    bars = {(labels[c.key], name): Bar(c.cell_values[tag]) for c in cells for tag, name in series.items()
            if tag in c.cell_values}
    if not bars:
        return None
    return bar_chart("Memory per cell (MiB)", "MiB", [labels[c.key] for c in cells], list(series.values()), bars,
                     subtitle="one measurement per cell; lower is better")


def _acceptance_chart(cells: list[CellResult], labels: dict[str, str]) -> Markup | None:
    tag = "acceptance_rate_pct"
    summaries = {labels[c.key]: c.summaries[tag] for c in cells if tag in c.summaries}
    if not summaries:
        return None
    bars = {(g, "acceptance"): replace(_summary_bar(s), label=f"{s.median:.1f}%") for g, s in summaries.items()}
    return bar_chart("Speculative acceptance rate (%)", "%", [g for g, _ in bars], ["acceptance"], bars,
                     subtitle="share of proposed draft tokens accepted; median, whiskers min–max", include=(100,))


def _sample_outputs(cells: list[CellResult], labels: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for c in cells:
        first = next((s for s in c.samples if not s.warmup), None)
        if first is not None:
            out.append({"label": labels[c.key], "key": c.key, "tokens": str(first.output_tokens),
                        "text": _truncate(first.output_text, OUTPUT_CHARS)})
    return out


def _scenario_tables(res: RunResults) -> list[dict[str, object]]:
    """One table per scenario kind, with the kind's columns (reports/rows.py), like the Markdown report's."""
    return [{"kind": kind, "title": kind_spec(kind).report.title, "note": kind_spec(kind).report.note,
             "columns": kind_spec(kind).report.columns, "rows": [(cell_row(c), c) for c in cells]}
            for kind, cells in by_kind(res.cells).items()]


def _summary(res: RunResults) -> dict[str, object]:
    checks = [ch for c in res.cells for ch in c.checks] + list(res.run_checks)
    status: defaultdict[str, int] = defaultdict(int)
    for c in res.cells:
        status[c.status] += 1
    return {
        "ok": status["ok"], "skipped": status["skipped"], "total": len(res.cells),
        "not_ok": sum(n for s, n in status.items() if s not in ("ok", "skipped")),
        "checks_pass": sum(ch.status == "pass" for ch in checks),
        "checks_fail": sum(ch.status == "fail" for ch in checks),
        "checks_not_run": sum(ch.status == "not_run" for ch in checks),
        "problems": [c for c in res.cells if c.status in FAILED_STATUSES],
        "skipped_cells": [c for c in res.cells if c.status == "skipped"],
        "failed_checks": [(c.key, ch) for c in res.cells for ch in c.checks if ch.status == "fail"]
        + [("run", ch) for ch in res.run_checks if ch.status == "fail"],
    }


def _trend_unit(title: str) -> str:
    """The unit of the metric tag a trend title names (e.g. '<cell key> tpot_ms'), else ''."""
    for token in title.replace("·", " ").replace(":", " ").replace("/", " ").split():
        if token in METRICS:
            return METRICS[token].unit
    return ""


def render_html(results: RunResults, trends: dict[str, Trend] | None = None) -> str:
    """The HTML report of a run. `trends` maps a chart title (conventionally '<cell key> <metric
    tag>'; the tag gives the unit) to its history points and change points."""
    ok = [c for c in results.cells if c.status == "ok"]
    labels, series = _short_labels([c.key for c in ok]), _Series.of(ok)
    charts = {
        "performance": _performance_charts(ok, series),
        "latency": _latency_boxes(ok, labels, series),
        "memory": [c for c in (_memory_chart(ok, labels),) if c is not None],
        "acceptance": [c for c in (_acceptance_chart(ok, labels),) if c is not None],
        "curves": _sweep_curves(ok),
        "trends": [Markup(render_trend_svg(t.points, title, _trend_unit(title), t.marks))
                   for title, t in (trends or {}).items()],
    }
    loads = _load_sections(ok)
    return _env.get_template("run.html.j2").render(
        res=results, m=results.metadata, summary=_summary(results), tables=_scenario_tables(results),
        charts=charts, outputs=_sample_outputs(ok, labels), output_chars=OUTPUT_CHARS,
        spread=fmt_spread, value=fmt_value, column_text=column_text,
        any_speculative=any(kind_spec(c.spec.scenario.kind).drafts for c in ok),
        limits=sweep_limits(results.cells), precision_groups=precision_groups(results.cells), loads=loads,
        servers=server_rows(results.cells),
        repeated=[(c.key, figs) for c in ok if (figs := repeated_loads(c))],
        searches=[c for c in ok if c.slo_search is not None],
    )


# ---------------------------------------------------------------- comparison page


def _change_chart(comp: Comparison, tag: str, labels: dict[str, str]) -> Markup | None:
    """Change of one metric per cell in %, CI as whiskers, bars coloured by verdict."""
    found = [(c.key, m) for c in comp.cells for m in c.metrics if m.metric == tag]
    if not found:
        return None
    bars = {(labels[k], "change"): _change_bar(m) for k, m in found}
    meta = METRICS[tag]
    threshold = max(m.deciding_threshold for _, m in found) * 100
    legend = [(v, VERDICT_COLORS[v]) for v in ("regression", "improvement", "unchanged", "inconclusive")]
    better = "higher" if meta.higher_is_better else "lower"
    return bar_chart(f"{meta.title}: change candidate vs base (%)", "% change", [g for g, _ in bars], ["change"], bars,
                     subtitle=f"ratio of medians − 1; whiskers 95% bootstrap CI; band ±{threshold:.0f}% min effect; "
                              f"{better} is better", band=threshold, legend=legend)


def _change_bar(m: MetricComparison) -> Bar:
    from reports.comparison import change_text

    pct = (m.ratio - 1) * 100
    lo = (m.ci_low - 1) * 100 if m.ci_low is not None else None
    hi = (m.ci_high - 1) * 100 if m.ci_high is not None else None
    return Bar(pct, lo, hi, color=VERDICT_COLORS[m.verdict], label=f"{pct:+.1f}%",
               tip=f"{m.metric}: {change_text(m)} — {m.verdict}")


def _matrix(comp: Comparison, labels: dict[str, str]) -> dict[str, object]:
    """Cells × metrics: each entry the MetricComparison (or None)."""
    metrics = _unique(m.metric for c in comp.cells for m in c.metrics)
    rows = [(c, labels[c.key], [next((m for m in c.metrics if m.metric == t), None) for t in metrics])
            for c in comp.cells if c.metrics]
    return {"metrics": [(t, METRICS[t].title) for t in metrics], "rows": rows}


def _run_facts(res: RunResults | None) -> dict[str, str] | None:
    if res is None:
        return None
    m = res.metadata
    return {"run": m.run_id, "suite": m.suite_name, "started": m.started_at, "host": m.host.hostname,
            "cpu": f"{m.host.cpu_model or '?'} ({m.host.logical_cores} logical cores)",
            "openvino-genai": m.versions.get("openvino-genai") or "—", "harness commit": m.harness_commit or "—",
            "cells ok": f"{sum(c.status == 'ok' for c in res.cells)}/{len(res.cells)}"}


def render_comparison_html(comp: Comparison, base: RunResults | None = None,
                           candidate: RunResults | None = None) -> str:
    """The HTML page of a comparison; the runs themselves, when given, add their facts side by side."""
    from reports.comparison import change_text, p_text, sorted_rows

    labels = _short_labels([c.key for c in comp.cells if c.metrics])
    charts = [c for c in (_change_chart(comp, t, labels) for t in ("tpot_ms", "output_tps")) if c is not None]
    return _env.get_template("comparison.html.j2").render(
        comp=comp, counts=comp.counts(), charts=charts, matrix=_matrix(comp, labels), rows=sorted_rows(comp),
        change=change_text, p=p_text, facts=[(n, _run_facts(r)) for n, r in (("base", base), ("candidate", candidate))
                                     if r is not None],
        not_compared=[c for c in comp.cells if c.base_status != "ok" or c.candidate_status != "ok"],
    )
