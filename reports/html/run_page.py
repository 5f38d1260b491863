"""The HTML page of a run: its summary, per-kind tables, charts, load sections and sample outputs."""

from __future__ import annotations

from collections import defaultdict

from markupsafe import Markup

from harness.core.host_state import summary
from harness.core.schema import FAILED_STATUSES, CellResult, RunResults
from harness.kinds import kind_spec
from reports.goodput import sweep_limits
from reports.host_states import BUSY_NOTE, busy_cells
from reports.html.environment import env
from reports.html.labels import short_labels
from reports.html.loads import load_sections, sweep_curves
from reports.html.run_charts import (
    Series,
    acceptance_chart,
    latency_boxes,
    memory_chart,
    pareto_charts,
    performance_charts,
)
from reports.html.svg import truncate
from reports.html.trend import Trend, render_trend_svg, trend_unit
from reports.precision_table import precision_groups
from reports.quality_table import HEADERS as QUALITY_HEADERS
from reports.quality_table import quality_groups, row_cells
from reports.repeated_loads import repeated_loads
from reports.rows import by_kind, cell_row, column_text, fmt_spread, fmt_value, server_rows

OUTPUT_CHARS = 400  # sample outputs are cut here


def _sample_outputs(cells: list[CellResult], labels: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for c in cells:
        first = next((s for s in c.samples if not s.warmup), None)
        if first is not None:
            out.append({"label": labels[c.key], "key": c.key, "tokens": str(first.output_tokens),
                        "text": truncate(first.output_text, OUTPUT_CHARS)})
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


def render_html(results: RunResults, trends: dict[str, Trend] | None = None) -> str:
    """The HTML report of a run. `trends` maps a chart title (conventionally '<cell key> <metric
    tag>'; the tag gives the unit) to its history points and change points."""
    ok = [c for c in results.cells if c.status == "ok"]
    labels, series = short_labels([c.key for c in ok]), Series.of(ok)
    charts = {
        "performance": performance_charts(ok, series),
        "latency": latency_boxes(ok, labels, series),
        "memory": [c for c in (memory_chart(ok, labels),) if c is not None],
        "acceptance": [c for c in (acceptance_chart(ok, labels),) if c is not None],
        "quality": pareto_charts(ok),
        "curves": sweep_curves(ok),
        "trends": [Markup(render_trend_svg(t.points, title, trend_unit(title), t.marks))
                   for title, t in (trends or {}).items()],
    }
    loads = load_sections(ok)
    return env.get_template("run.html.j2").render(
        res=results, m=results.metadata, summary=_summary(results), tables=_scenario_tables(results),
        charts=charts, outputs=_sample_outputs(ok, labels), output_chars=OUTPUT_CHARS,
        spread=fmt_spread, value=fmt_value, column_text=column_text,
        any_speculative=any(kind_spec(c.spec.scenario.kind).drafts for c in ok),
        limits=sweep_limits(results.cells), precision_groups=precision_groups(results.cells), loads=loads,
        quality=quality_groups(results.cells), quality_headers=QUALITY_HEADERS, quality_cells=row_cells,
        servers=server_rows(results.cells),
        repeated=[(c.key, figs) for c in ok if (figs := repeated_loads(c))],
        searches=[c for c in ok if c.slo_search is not None],
        references=[(c.key, c.vs_reference) for c in ok if c.vs_reference is not None and c.vs_reference.ratios],
        busy={c.key: found for c, found in busy_cells(results.cells)}, busy_note=BUSY_NOTE,
        host_before=results.metadata.host_state_before, host_summary=summary,
    )
