"""Change points over the history as the commands ask for them: the trends a run's report charts, the marks
of one cell's trend, and the search of `harness history changes`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.analyze.changes import ChangePoint, SeriesKey, SeriesPoint, series_changes
from harness.core.errors import HarnessInputError
from harness.core.metrics import TPOT, TTFT, OutputThroughput
from harness.core.schema import ChangeSettings

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore
    from harness.core.schema import RunResults

TREND_METRICS = (OutputThroughput.tag, TTFT.tag, TPOT.tag)
Trends = dict[tuple[str, str], tuple[list[SeriesPoint], list[ChangePoint]]]


def run_trends(results: RunResults, url: str | None) -> Trends:
    """Per ok cell and headline metric, (cell key, metric) -> the history's points of this run's suite and
    host up to this run (the last 50, when there are two or more), with their change points."""
    from harness.analyze.history import HistoryStore

    meta = results.metadata
    keys = [c.key for c in results.cells if c.status == "ok"]
    settings = suite_change_settings(meta.suite_file)
    hosts = {c.key: c.node.name if c.node else meta.host.hostname for c in results.cells}
    with HistoryStore(url) as store:
        series = store.series(cells=keys, metrics=TREND_METRICS, suite=meta.suite_name,
                              host=None if meta.cluster else meta.host.hostname, limit=10_000)
    # each cell's own host (a cluster node): one series per cell and metric
    by_cell = {(k.cell_key, k.metric): (k, v) for k, v in series.items() if k.host == hosts.get(k.cell_key)}
    trends: Trends = {}
    for key in keys:
        for tag in TREND_METRICS:
            if (key, tag) not in by_cell:
                continue
            series_key, recorded = by_cell[(key, tag)]
            points = [p for p in recorded if p.started_at <= meta.started_at][-50:]
            if len(points) >= 2:
                trends[(key, tag)] = points, series_changes(series_key, points, settings)
    return trends


def suite_change_settings(suite_file: str | None) -> ChangeSettings:
    """The `changes:` settings of the suite file a run came from, when it is still there and reads."""
    from harness.plan.suite import load_suite

    if suite_file and Path(suite_file).is_file():
        try:
            return load_suite(Path(suite_file))[0].changes
        except HarnessInputError:
            pass
    return ChangeSettings()


def change_settings(suite: str | None) -> tuple[ChangeSettings, str | None]:
    """The suite's `changes:` settings and its name when `suite` names a suite file or shipped suite; else
    the defaults and `suite` taken as a recorded suite name."""
    from harness.plan.suite import load_suite, resolve_suite_path

    if suite is None:
        return ChangeSettings(), None
    path = resolve_suite_path(suite)
    if path.is_file():
        parsed, _ = load_suite(path)
        return parsed.changes, parsed.name
    return ChangeSettings(), suite


def change_starts(store: HistoryStore, cell: str, metric: str, suite: str | None) -> dict[str, ChangePoint]:
    """The change points within each (suite, host) series of one cell's metric, by their first run at the new
    level."""
    return {c.after_run: c for key, series in store.series(cells=[cell], metrics=[metric], suite=suite).items()
            for c in series_changes(key, series, ChangeSettings())}


def changes_in(series: dict[SeriesKey, list[SeriesPoint]], settings: ChangeSettings) -> list[ChangePoint]:
    """Every series' change points: regressions first, then the most recent, then by series."""
    found = [c for key, points in sorted(series.items(), key=lambda kv: tuple(str(v) for v in kv[0].model_dump().values()))
             for c in series_changes(key, points, settings)]
    found.sort(key=lambda c: (c.direction != "regression", c.runs_since, c.label()))
    return found


def too_short(series: dict[SeriesKey, list[SeriesPoint]], settings: ChangeSettings) -> int:
    """How many series have fewer runs than two segments need (not analysed)."""
    return sum(len(p) < 2 * settings.min_segment for p in series.values())

