"""The history as other commands use it, where it is optional: recording a run or an A/B comparison, and the
trend charts of a run's HTML report. A database problem is a warning here, never a failed command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import err_console
from harness.core.console import styled

if TYPE_CHECKING:
    from harness.core.schema import RunResults
    from harness.experiment.ab import ABResult
    from reports.html import Trend


def record_in_history(results: RunResults, run_dir: Path | str, url: str | None = None) -> bool:
    """Record a finished run; a database problem is a warning, not a failed run (results are on disk)."""
    from harness.analyze.history_access import HistoryUnavailable, recorded

    try:
        where = recorded(url, lambda store: store.record_run(results, str(Path(run_dir).resolve())))
    except HistoryUnavailable as e:
        err_console.print(styled("yellow", "warning:", f"run not recorded in the history: {e}"))
        return False
    err_console.print(f"recorded run {results.metadata.run_id} in the history {where}", highlight=False)
    return True


def record_ab_in_history(ab: ABResult, base: RunResults, candidate: RunResults, ab_dir: Path,
                         url: str | None = None) -> bool:
    """Record an A/B comparison with both its runs; a database problem is a warning (results are on disk)."""
    from harness.analyze.history_access import HistoryUnavailable, recorded

    try:
        where = recorded(url, lambda store: store.record_ab(ab, base, candidate, str(Path(ab_dir).resolve())))
    except HistoryUnavailable as e:
        err_console.print(styled("yellow", "warning:", f"A/B comparison not recorded in the history: {e}"))
        return False
    err_console.print(f"recorded A/B {ab.ab_id} (runs {base.metadata.run_id}, {candidate.metadata.run_id}) in the "
                      f"history {where}", highlight=False)
    return True


def history_trends(results: RunResults, url: str | None) -> dict[str, Trend]:
    """Per ok cell and headline metric, the history's medians of this run's suite and host up to this run
    (when there are two or more), with their change points."""
    try:
        from harness.analyze.history_changes import run_trends
        from reports.history_trends import trend_charts

        return trend_charts(run_trends(results, url))
    except Exception as e:  # a report must not fail because the history is unreachable
        err_console.print(styled("yellow", "no trend charts:", f"history unavailable ({type(e).__name__}: {e})"))
        return {}
