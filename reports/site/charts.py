"""The site's two charts, inline SVG drawn here: an overview sparkline, and a series' run medians with their
95% intervals, segment levels and change points (the page's script adds the run cursor on top)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from markupsafe import Markup

from harness.analyze.changes import ChangePoint, SeriesPoint
from reports.changes_report import magnitude
from reports.html.svg import Scale, el, nice_ticks, text, tick_label

SPARK_W, SPARK_H = 72.0, 20.0
CHART_W, TOP, PLOT_H, LEFT, RIGHT = 960.0, 34.0, 260.0, 64.0, 16.0


def spark_class(changes: Sequence[ChangePoint]) -> str:
    """A sparkline's colour: by the newest change point (a triaged regression is muted)."""
    if not changes:
        return "sp-none"
    last = changes[-1]
    if last.direction == "regression" and last.triage is not None:
        return "sp-triaged"
    return {"regression": "sp-reg", "improvement": "sp-imp"}.get(last.direction, "sp-chg")


def sparkline(values: Sequence[float], changes: Sequence[ChangePoint]) -> Markup:
    """The newest values as a line; the newest change point within them as a tick."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Markup("")
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or abs(hi) or 1.0
    step = SPARK_W / max(len(values) - 1, 1)
    pts = " ".join(f"{i * step:.1f},{SPARK_H - 2 - (v - lo) / span * (SPARK_H - 4):.1f}"
                   for i, v in enumerate(values) if math.isfinite(v))
    body = [el("polyline", points=pts)]
    if changes:
        # the change point's position among the drawn values: runs_since counts from it to the newest run
        at = len(values) - changes[-1].runs_since
        if 0 < at < len(values):
            x = (at - 0.5) * step
            body.append(el("line", x1=x, x2=x, y1=0, y2=SPARK_H, class_="cp"))
    return el("svg", *body, viewBox=f"0 0 {SPARK_W:g} {SPARK_H:g}", width=SPARK_W, height=SPARK_H,
              class_=f"spark {spark_class(changes)}", aria_hidden="true", focusable="false")


def _value_range(medians: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[float, float]:
    finite = medians[np.isfinite(medians)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    span = (hi - lo) or abs(hi) * 0.05 or 1.0
    # intervals widen the axis, but one run's wild interval must not flatten the series
    bounds = np.concatenate([lows, highs])
    bounds = bounds[np.isfinite(bounds)]
    if bounds.size:
        lo = max(min(lo, float(bounds.min())), lo - span)
        hi = min(max(hi, float(bounds.max())), hi + span)
    pad = (hi - lo) * 0.06 or span * 0.1
    return lo - pad, hi + pad


def _ys(values: np.ndarray, y_of: Scale, bottom: float) -> np.ndarray:
    d0, d1 = y_of.ticks[0], y_of.ticks[-1]
    ys = y_of.px0 + (values - d0) / (d1 - d0) * (y_of.px1 - y_of.px0)
    return np.round(np.clip(np.nan_to_num(ys, nan=bottom), TOP - 6, bottom + 6), 1)


def series_chart(points: Sequence[SeriesPoint], changes: Sequence[ChangePoint], unit: str) -> Markup:
    """Run medians (a line), their 95% intervals (bars), each segment's level between change points, and the
    change points labelled with their shift and interval."""
    n = len(points)
    # the named tuples' columns at once; numpy reads None as NaN in a float array
    columns = list(zip(*points, strict=True))
    medians = np.array(columns[2], dtype=float)
    lows, highs = np.array(columns[5], dtype=float), np.array(columns[6], dtype=float)
    lo, hi = _value_range(medians, lows, highs)
    ticks = nice_ticks(lo, hi, 5)
    bottom = TOP + PLOT_H
    y_of = Scale(ticks, bottom, TOP)
    right = CHART_W - RIGHT
    step = (right - LEFT) / max(n - 1, 1)

    def x_of(i: float) -> float:
        return LEFT + i * step if n > 1 else (LEFT + right) / 2

    def y(v: float) -> float:
        return min(max(y_of(v), TOP - 6), bottom + 6)

    body: list[Markup] = []
    for t in ticks:
        body += [el("line", x1=LEFT, x2=right, y1=y_of(t), y2=y_of(t), class_="grid"),
                 text(LEFT - 6, y_of(t) + 4, tick_label(t, ticks), anchor="end", cls="tick")]
    body.append(text(LEFT - 6, TOP - 14, unit, anchor="end", cls="unit"))
    every = max(1, math.ceil(n / 6))
    for i in range(0, n, every):
        body.append(text(x_of(i), bottom + 18, points[i].started_at[:10], anchor="middle", cls="tick"))
    # numpy for the per-run coordinates: a publish after one run draws ~1000 pages of ~500 runs
    xs = np.round(LEFT + np.arange(n) * step if n > 1 else np.full(n, (LEFT + right) / 2), 1)
    has = np.isfinite(lows) & np.isfinite(highs)
    if has.any():
        y_lo, y_hi = _ys(lows[has], y_of, bottom), _ys(highs[has], y_of, bottom)
        # one %-format over all runs: a format per run costs ~0.3 s a publish
        bars = np.column_stack([xs[has], y_lo, y_hi]).ravel().tolist()
        body.append(el("path", d="M%.1f %.1fV%.1f" * int(has.sum()) % tuple(bars), class_="ci"))
    y_med = _ys(medians, y_of, bottom)
    line = np.column_stack([xs, y_med]).ravel().tolist()
    body.append(el("polyline", points=" ".join(["%.1f,%.1f"] * n) % tuple(line), class_="medians"))
    starts = [n - c.runs_since for c in changes]
    edges = [0, *starts, n]
    levels = [changes[0].before_value, *(c.after_value for c in changes)] if changes else []
    for (a, b), level in zip(zip(edges, edges[1:], strict=False), levels, strict=False):
        body.append(el("line", x1=x_of(a), x2=x_of(b - 1), y1=y(level), y2=y(level), class_="level"))
    for c, at in zip(changes, starts, strict=True):
        if not 0 < at < n:
            continue
        x = x_of(at - 0.5)
        cls = f"cp {c.direction}" + (" triaged" if c.triage else "")
        label = magnitude(c) + (f" · {c.triage.state}" if c.triage else "")
        body += [el("line", el("title", f"{c.id}: {label}, p={c.pvalue:.1e}, from run {c.after_run}"),
                    x1=x, x2=x, y1=TOP - 8, y2=bottom, class_=cls),
                 # a label near the right edge runs leftwards from its line
                 text(x - 4 if x > LEFT + 0.6 * (right - LEFT) else x + 4, TOP - 10 + 12 * (starts.index(at) % 2),
                      label, anchor="end" if x > LEFT + 0.6 * (right - LEFT) else "start", cls=cls)]
    body.append(el("g", el("line", x1=0, x2=0, y1=TOP, y2=bottom), el("circle", cx=0, cy=0, r=4.5),
                   id="cursor", class_="cursor", visibility="hidden"))
    body.append(el("g", id="marks"))
    return el("svg", *body, viewBox=f"0 0 {CHART_W:g} {bottom + 28:g}", class_="series", role="img",
              aria_label=f"{n} run medians" + (f", {len(changes)} change points" if changes else ""),
              data_left=f"{LEFT:g}", data_step=f"{step:.4f}", data_n=n, data_t0=f"{ticks[0]:.6g}",
              data_t1=f"{ticks[-1]:.6g}", data_top=f"{TOP:g}", data_bottom=f"{bottom:g}")
