"""Self-contained HTML reports of a run and of a comparison: one file, no scripts, no network.

Charts are inline SVG drawn here in Python (no JavaScript, no external fonts or stylesheets); the
page is a jinja2 template (reports/templates/) with autoescaping, and every string that goes into
an SVG passes through `el` (reports/html/svg.py), which escapes it, so model output, keys and error
texts are shown as text and never interpreted. A Content-Security-Policy meta tag blocks scripts and
any load from the network even if something slipped through.

Charts of a run: grouped bars of output tok/s, TTFT and TPOT medians by precision · device
(whiskers min–max over the measured iterations), box plots of the raw per-iteration TTFT and TPOT
values (warm-up excluded), memory bars, speculative acceptance bars, and optional history trends.
"""

from reports.html.comparison_page import render_comparison_html
from reports.html.run_page import render_html
from reports.html.trend import Trend, TrendMark, render_trend_svg

__all__ = ["Trend", "TrendMark", "render_comparison_html", "render_html", "render_trend_svg"]
