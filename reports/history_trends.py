"""The history's trends of a run (harness/analyze/history_changes.py) as the charts of its HTML report."""

from __future__ import annotations

from harness.analyze.history_changes import Trends
from reports.changes_report import magnitude, pvalue
from reports.html import Trend, TrendMark


def trend_charts(trends: Trends) -> dict[str, Trend]:
    """'<cell key> <metric>' -> its chart, each change point marked on its first run at the new level."""
    return {f"{key} {tag}": Trend([(p.run_id, p.median) for p in points],
                                  [TrendMark(len(points) - c.runs_since, f"{magnitude(c)} {c.direction}, "
                                             f"p={pvalue(c.pvalue)}", c.direction == "regression") for c in found])
            for (key, tag), (points, found) in trends.items()}
