"""SVG primitives of the report charts: escaped elements, axes, legends, scales and labels."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from harness.core.escaping import html_text

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac")
WIDTH = 600  # every chart's viewBox width; the page scales it to its column
CHAR_W = 6.6  # rough width of one 12px character, for label columns


def _attr_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1f}".removesuffix(".0")
    return str(v)


def el(tag: str, *children: object, **attrs: object) -> Markup:
    """One SVG element. Text children and attribute values are escaped; Markup children are kept.
    `class_` -> class, `font_size` -> font-size; None attributes are left out."""
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{html_text(_attr_value(v))}"'
                   for k, v in attrs.items() if v is not None)
    if not children:
        return Markup(f"<{tag}{attr}/>")
    return Markup(f"<{tag}{attr}>{''.join(c if isinstance(c, Markup) else html_text(c) for c in children)}</{tag}>")


def text(x: float, y: float, s: str, *, anchor: str = "start", cls: str | None = None, tip: str | None = None,
         **attrs: object) -> Markup:
    """A text label; `tip` (e.g. the untruncated label) becomes its hover title."""
    children: list[object] = [el("title", tip)] if tip else []
    return el("text", *children, s, x=x, y=y, text_anchor=anchor, class_=cls, **attrs)


def truncate(s: str, chars: int) -> str:
    return s if len(s) <= chars else s[: chars - 1] + "…"


def num(v: float) -> str:
    """A value label: about three significant digits."""
    a = abs(v)
    if a >= 100 or v == 0:
        return f"{v:.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.2f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start, stop = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(start, stop + 1)]


def tick_label(v: float, ticks: Sequence[float]) -> str:
    """The value with as few decimals as every tick of the axis needs (0.25 steps: two)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = next(d for d in range(8) if all(abs(round(t, d) - t) < step * 1e-6 for t in ticks) or d == 7)
    return f"{v:.{digits}f}"


@dataclass(frozen=True)
class Scale:
    """Linear map from a value domain (the outer ticks) to pixels."""

    ticks: list[float]
    px0: float
    px1: float

    def __call__(self, v: float) -> float:
        d0, d1 = self.ticks[0], self.ticks[-1]
        return self.px0 + (v - d0) / (d1 - d0) * (self.px1 - self.px0)


def x_axis(scale: Scale, top: float, bottom: float, unit: str) -> list[Markup]:
    """Vertical grid lines with tick labels under the plot, and the unit at the right."""
    out = []
    for t in scale.ticks:
        x = scale(t)
        out.append(el("line", x1=x, x2=x, y1=top, y2=bottom, class_="zero" if t == 0 else "grid"))
        out.append(text(x, bottom + 14, tick_label(t, scale.ticks), anchor="middle", cls="tick"))
    out.append(text(scale.px1, bottom + 28, unit, anchor="end", cls="unit"))
    return out


def swatches(items: Sequence[tuple[str, str]], x0: float, y0: float, width: float) -> tuple[list[Markup], float]:
    """A legend: colour swatches with names, wrapped to `width`; returns the elements and the height used."""
    out: list[Markup] = []
    x, y = x0, y0
    for name, color in items:
        w = 18 + len(name) * CHAR_W + 14
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 18
        out.append(el("rect", x=x, y=y - 9, width=11, height=11, rx=2, fill=color))
        out.append(text(x + 16, y, name, cls="legend"))
        x += w
    return out, (y - y0 + 18) if items else 0


def chart_svg(title: str, subtitle: str, height: float, body: Iterable[Markup], cls: str = "chart") -> Markup:
    """The chart's <svg>: accessible <title>, visible title and subtitle, then the body."""
    head = [el("title", title), text(0, 16, title, cls="title")]
    if subtitle:
        head.append(text(0, 33, subtitle, cls="subtitle"))
    return el("svg", *head, *body, class_=cls, role="img", viewBox=f"0 0 {WIDTH} {math.ceil(height)}",
              width=WIDTH, height=math.ceil(height), xmlns="http://www.w3.org/2000/svg")


def header_height(subtitle: str) -> float:
    return 48 if subtitle else 30


def palette(names: Iterable[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(unique(names))}


def unique(xs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def label_width(labels: Iterable[str], limit: int = 34) -> float:
    return min(max((len(s) for s in labels), default=4), limit) * CHAR_W + 12
