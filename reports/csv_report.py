"""CSV report: one row per cell, every parameter and every metric's summary as columns."""

from __future__ import annotations

import csv
import io

from harness.core.escaping import csv_cell
from harness.core.metrics import METRICS
from harness.core.schema import RunResults
from reports.rows import cell_row

STATS = ("median", "mean", "p90", "p99", "stdev", "min", "max", "cv", "n", "median_ci_low", "median_ci_high")


def table(res: RunResults) -> tuple[list[str], list[dict[str, object]]]:
    """Column names and rows shared by the CSV and JSON renderers."""
    tags = [t for t in METRICS if any(t in c.summaries for c in res.cells)]
    cols = ["key", "model", "precision", "device", "scenario", "params", "status", "error", "checks"]
    cols += [f"{t}.{s}" for t in tags for s in STATS]
    rows = []
    for c in res.cells:
        r = cell_row(c)
        row: dict[str, object] = {
            "key": r.key, "model": r.model, "precision": r.precision, "device": r.device,
            "scenario": r.scenario, "params": r.params, "status": r.status, "error": r.error or "",
            "checks": ";".join(f"{k}={v}" for k, v in r.checks.items()),
        }
        for t in tags:
            summ = r.summaries.get(t)
            for s in STATS:
                row[f"{t}.{s}"] = getattr(summ, s) if summ is not None else None
        rows.append(row)
    return cols, rows


def render_csv(res: RunResults) -> str:
    """The CSV report of a run."""
    cols, rows = table(res)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()
