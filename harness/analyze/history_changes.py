"""Change points over the history as the commands ask for them: the trends a run's report charts, the marks
of one cell's trend, and the search of `harness history changes` (over run medians and over ratios to a
reference side, each kind of series with its own settings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.analyze.changes import ChangePoint, SeriesKey, SeriesPoint, series_changes
from harness.core.errors import HarnessInputError
from harness.core.metrics import TPOT, TTFT, OutputThroughput
from harness.core.schema import ChangeSettings, RatioChangeSettings

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


def change_settings(suite: str | None) -> tuple[ChangeSettings, RatioChangeSettings, str | None]:
    """The suite's `changes:` settings (run medians), its reference side's (ratio series) and its name when
    `suite` names a suite file or shipped suite; else the defaults and `suite` taken as a recorded suite name."""
    from harness.plan.suite import load_suite, resolve_suite_path

    if suite is None:
        return ChangeSettings(), RatioChangeSettings(), None
    path = resolve_suite_path(suite)
    if path.is_file():
        parsed, _ = load_suite(path)
        ratios = parsed.reference_side.changes if parsed.reference_side else RatioChangeSettings()
        return parsed.changes, ratios, parsed.name
    return ChangeSettings(), RatioChangeSettings(), suite


def settings_for(key: SeriesKey, settings: ChangeSettings, ratio_settings: RatioChangeSettings) -> ChangeSettings:
    """A series' settings: a ratio series (its key names a reference side) has its own."""
    return ratio_settings if key.reference is not None else settings


def change_starts(store: HistoryStore, cell: str, metric: str, suite: str | None,
                  ratios: bool = False) -> dict[str, ChangePoint]:
    """The change points within each (suite, host) series of one cell's metric (with `ratios`, of its ratio
    series to a reference side), by their first run at the new level."""
    found = (store.ratio_series if ratios else store.series)(cells=[cell], metrics=[metric], suite=suite)
    return {c.after_run: c for key, series in found.items()
            for c in series_changes(key, series, settings_for(key, ChangeSettings(), RatioChangeSettings()))}


def changes_in(series: dict[SeriesKey, list[SeriesPoint]], settings: ChangeSettings,
               ratio_settings: RatioChangeSettings) -> list[ChangePoint]:
    """Every series' change points: regressions first, then the most recent, then by series."""
    found = [c for key, points in sorted(series.items(), key=lambda kv: tuple(str(v) for v in kv[0].model_dump().values()))
             for c in series_changes(key, points, settings_for(key, settings, ratio_settings))]
    found.sort(key=lambda c: (c.direction != "regression", c.runs_since, c.label()))
    return found


def too_short(series: dict[SeriesKey, list[SeriesPoint]], settings: ChangeSettings,
              ratio_settings: RatioChangeSettings) -> int:
    """How many series have fewer runs than two segments need (not analysed)."""
    return sum(len(p) < 2 * settings_for(k, settings, ratio_settings).min_segment for k, p in series.items())

