"""The site's HTML pages from the dashboard's views (harness/analyze/dashboard.py): the overview grid, a page
per series, the regressions, and the A/B and bisect records."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analyze.changes import ChangePoint, SeriesPoint
from harness.analyze.dashboard import SPARK_POINTS, RecordEntry, SeriesView
from harness.core.metrics import METRICS
from harness.core.schema import ChangeSettings
from reports.changes_report import magnitude, pvalue, versions
from reports.html.environment import env
from reports.site.charts import series_chart, sparkline
from reports.site.feeds import Regression, is_open


@dataclass(frozen=True)
class SiteContext:
    """What every page shows in its frame."""

    database: str
    limit: int


def _frame(ctx: SiteContext, root: str, section: str) -> dict[str, Any]:
    return {"database": ctx.database, "root": root, "section": section}


def value_text(v: float, unit: str) -> str:
    return "—" if not math.isfinite(v) else f"{v:.4g} {unit}".rstrip()


def _column_label(metric: str, reference: str | None) -> str:
    return metric + (f" ÷ {reference}" if reference else "")


def _metric_order(label_key: tuple[str, str | None]) -> tuple[int, str, str]:
    tags = list(METRICS)
    metric, reference = label_key
    return (tags.index(metric) if metric in tags else len(tags), reference or "", metric)


def render_overview(ctx: SiteContext, views: Sequence[tuple[SeriesView, list[ChangePoint]]], n_runs: int, newest: str,
                    n_ab: int, n_bisect: int) -> str:
    """The suites × hosts grid: a row per cell, a column per metric (and ratio), each series a sparkline."""
    grouped: dict[tuple[str, str | None], list[SeriesView]] = defaultdict(list)
    marked: dict[str, list[ChangePoint]] = {}
    for v, changes in views:
        grouped[(v.key.suite, v.key.host)].append(v)
        marked[v.page] = changes
    groups, open_total, triaged = [], 0, 0
    facet_values: dict[str, set[str]] = defaultdict(set)
    n_rows = 0
    for (suite, host), members in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        columns = sorted({(v.key.metric, v.key.reference) for v in members}, key=_metric_order)
        by_cell: dict[str, dict[tuple[str, str | None], SeriesView]] = defaultdict(dict)
        for v in members:
            by_cell[v.key.cell_key][(v.key.metric, v.key.reference)] = v
        rows, group_open = [], 0
        for cell in sorted(by_cell):
            cells = by_cell[cell]
            any_view = next(iter(cells.values()))
            f = any_view.facets
            row: dict[str, Any] = {"cell": cell, "device": f.device if f else "", "precision": f.precision if f else "",
                   "env": (f.environment or "—") if f else "", "model": f.model if f else "", "kind": f.scenario if f else "",
                   "stack": any_view.last_stack, "changed": "1" if any(marked[v.page] for v in cells.values()) else "0",
                   "sparks": []}
            for name, value in (("device", row["device"]), ("precision", row["precision"]), ("env", row["env"]),
                                ("model", row["model"]), ("kind", row["kind"]), ("stack", row["stack"])):
                if value:
                    facet_values[name].add(str(value))
            for col in columns:
                found = cells.get(col)
                if found is None:
                    row["sparks"].append(None)
                    continue
                v = found
                changes = marked[v.page]
                regressions = [c for c in changes if c.direction == "regression"]
                group_open += sum(is_open(c) for c in regressions)
                triaged += sum(c.triage is not None for c in regressions)
                last = changes[-1] if changes else None
                tip = f"{cell} {_column_label(v.key.metric, v.key.reference)}: {value_text(v.last_value, v.unit)}"
                if last:
                    tip += f"; {last.direction} {magnitude(last)} from {last.after_started[:10]}"
                    tip += f" ({last.triage.state})" if last.triage else ""
                row["sparks"].append({"page": v.page, "title": tip, "svg": sparkline(v.spark, changes)})
            rows.append(row)
        n_rows += len(rows)
        open_total += group_open
        latest = max(members, key=lambda v: v.last_started)  # the group's newest run, and its stack
        groups.append({"suite": suite, "host": host or "", "runs": max(v.runs for v in members),
                       "newest": latest.last_started, "stack": latest.last_stack, "open": group_open, "rows": rows,
                       "metrics": [{"label": _column_label(m, r),
                                    "title": f"{METRICS[m].title}: {METRICS[m].formula()}" if m in METRICS else m} for m, r in columns]})
        facet_values["suite"].add(suite)
        facet_values["host"].add(host or "")
    filters = [{"name": n, "label": label, "values": sorted(facet_values[n])}
               for n, label in (("suite", "suite"), ("host", "host"), ("device", "device"), ("precision", "precision"),
                                ("model", "model"), ("kind", "kind"), ("env", "environment"), ("stack", "stack version"))
               if facet_values[n]]
    return env.get_template("site/overview.html.j2").render(
        **_frame(ctx, "", "overview"), groups=groups, filters=filters, n_series=len(views), n_runs=n_runs,
        newest=newest, n_open=open_total, n_triaged=triaged, n_changes=sum(len(cs) for _, cs in views),
        n_ab=n_ab, n_bisect=n_bisect, n_rows=n_rows, spark_points=SPARK_POINTS)


def script_json(data: object) -> str:
    # inside <script>: no "</" can close it; the template's escaping must not apply (Markup via |safe is not used)
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _rounded(values: Sequence[float | None]) -> list[float | None]:
    """About six significant digits (of the series' largest value) for the page's script; None where there is
    no finite value. One numpy rounding for the series: formatting each value costs ~1 s a publish."""
    import numpy as np

    x = np.array(values, dtype=float)  # None reads as NaN
    finite = np.isfinite(x)
    if not finite.any():
        return [None] * len(x)
    top = float(np.abs(x[finite]).max()) or 1.0
    digits = min(15, max(0, 5 - math.floor(math.log10(top))))
    return [None if v != v else v for v in np.where(finite, np.round(x, digits), np.nan).tolist()]


def render_series(ctx: SiteContext, view: SeriesView, points: Sequence[SeriesPoint], changes: Sequence[ChangePoint],
                  run_numbers: dict[str, int], run_stack: dict[str, str], report_of: Callable[[str], str | None],
                  others: Sequence[tuple[str, str]], settings: ChangeSettings) -> str:
    """One series: its chart, its change points with their triage, and the data the page's run cursor reads."""
    from markupsafe import Markup

    metric = METRICS.get(view.key.metric)
    columns = list(zip(*points, strict=True))
    data = {"unit": view.unit, "root": "../", "run": [run_numbers.get(r, -1) for r in columns[0]],
            "v": _rounded(columns[2]), "lo": _rounded(columns[5]), "hi": _rounded(columns[6])}
    rows = []
    for c in changes:
        report = report_of(c.after_run)
        rows.append({"id": c.id, "direction": c.direction, "magnitude": magnitude(c), "p": pvalue(c.pvalue),
                     "before_run": c.before_run, "after_run": c.after_run, "after_started": c.after_started,
                     "report": f"../{report}" if report else None, "stack": versions(c),
                     "levels": f"{c.before_value:.4g} → {c.after_value:.4g}", "before_runs": c.before_runs,
                     "after_runs": c.after_runs, "runs_since": c.runs_since, "triage": c.triage})
    settings_text = (f"PELT on log values, {'the series noise' if settings.noise == 'series' else 'trimmed Welch'} "
                     f"p < {settings.max_pvalue:g}, |change| ≥ {settings.min_magnitude:.1%}, ≥ {settings.min_segment} "
                     "runs a side (as `harness history changes`)")
    return env.get_template("site/series.html.j2").render(
        **_frame(ctx, "../", "series"), v=view, limit=ctx.limit, changes=rows,
        metric_doc=f"{metric.title}: {metric.formula()}" if metric else "", latest=value_text(view.last_value, view.unit),
        settings_text=settings_text, others=[{"href": "../" + page, "label": label} for label, page in others],
        stacks=sorted({run_stack.get(p.run_id, "") for p in points} - {""}),
        chart=series_chart(points, changes, view.unit), data=Markup(script_json(data)))


def render_regressions(ctx: SiteContext, regressions: Sequence[Regression], report_of: Callable[[str], str | None],
                       ab_pages: dict[str, str], bisect_pages: dict[str, str]) -> str:
    rows_open: list[dict[str, Any]] = []
    rows_closed: list[dict[str, Any]] = []
    for r in regressions:
        c = r.change
        row = {"id": c.id, "page": r.page, "suite": c.suite, "host": c.host, "cell_key": c.cell_key, "metric": c.metric,
               "reference": c.reference, "magnitude": magnitude(c), "p": pvalue(c.pvalue), "after_run": c.after_run,
               "after_started": c.after_started, "runs_since": c.runs_since, "report": report_of(c.after_run),
               "stack": versions(c), "triage": c.triage,
               "ab": [{"href": ab_pages[a], "label": a} for a in r.followed_by.ab if a in ab_pages],
               "bisect": [{"href": bisect_pages[b], "label": b} for b in r.followed_by.bisect if b in bisect_pages]}
        (rows_open if is_open(c) else rows_closed).append(row)
    return env.get_template("site/regressions.html.j2").render(**_frame(ctx, "", "regressions"), open=rows_open,
                                                               closed=rows_closed)


def render_record_list(ctx: SiteContext, section: str, title: str, intro: str, headers: Sequence[str],
                       rows: Sequence[dict[str, Any]]) -> str:
    return env.get_template("site/records.html.j2").render(**_frame(ctx, "../", section), title=title, intro=intro,
                                                           headers=headers, rows=rows)


def ab_rows(entries: Sequence[RecordEntry], pages: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": e.record_id, "href": pages[e.record_id].removeprefix("ab/"),
             "cells": [e.started_at[:16].replace("T", " "), e.suite, f"{e.base_run} → {e.candidate_run}",
                       str(e.n_regressions), str(len(e.cells))]} for e in reversed(entries)]


def bisect_rows(entries: Sequence[RecordEntry], pages: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": e.record_id, "href": pages[e.record_id].removeprefix("bisect/"),
             "cells": [e.started_at[:16].replace("T", " "), e.suite, e.cell_key or "", e.metric or "", e.status or ""]}
            for e in reversed(entries)]


def render_bisect(ctx: SiteContext, record: Any) -> str:
    from reports.bisect_report import summary_lines

    return env.get_template("site/bisect.html.j2").render(**_frame(ctx, "../", "bisect"), r=record,
                                                          summary=summary_lines(record))
