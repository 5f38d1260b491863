"""The load charts of a run page: each serving cell's load over time, and each load sweep's curve."""

from __future__ import annotations

from collections import defaultdict

from markupsafe import Markup

from harness.core.metrics import TTFT, BatchOutputThroughput
from harness.core.schema import CellResult
from reports.goodput import sweep_axis, sweep_key, sweep_value
from reports.html.lines import TimeLine, render_curve_svg, render_time_svg
from reports.html.svg import PALETTE, truncate
from reports.load_report import SLICE_HEADERS, figures, load_views, slice_cells


def load_sections(cells: list[CellResult]) -> list[dict[str, object]]:
    """Per serving cell: its load-level figures, charts over time (requests in flight, per-window throughput and
    latency, the server's /metrics series) and its time-slice table."""
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
                truncate(fam, 60), how[0], [TimeLine(fam, PALETTE[(3 + k) % len(PALETTE)], pts)],
                subtitle=f"server /metrics: {how[1]}, labels summed"))
        out.append({"key": view.cell.key, "figures": figures(view), "charts": [Markup(c) for c in charts],
                    "headers": SLICE_HEADERS, "slices": [slice_cells(x) for x in sl]})
    return out


def sweep_curves(cells: list[CellResult]) -> list[Markup]:
    """Per load sweep (serving or continuous batching, over concurrency or rate): output tok/s against TTFT
    p90, one point per concurrency or rate."""
    sweeps: dict[str, list[CellResult]] = defaultdict(list)
    for c in cells:
        if sweep_axis(c) and BatchOutputThroughput.tag in c.summaries and TTFT.tag in c.summaries:
            sweeps[sweep_key(c)].append(c)
    out = []
    for key, group in sweeps.items():
        if len(group) < 2:
            continue
        group.sort(key=sweep_value)
        label = {"concurrency": "c", "rate": "r"}
        points = [(f"{label[sweep_axis(c) or 'concurrency']}={sweep_value(c)}", c.summaries[BatchOutputThroughput.tag].median,
                   c.summaries[TTFT.tag].p90) for c in group]
        out.append(Markup(render_curve_svg(points, "Throughput vs latency", "total output tok/s (whole load)", "TTFT p90 ms",
                                           subtitle=truncate(key, 90))))
    return out
