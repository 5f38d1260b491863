"""Change points over the history as the commands ask for them: the trends a run's report charts, the marks
of one cell's trend, and the search of `harness history changes` (over run medians and over ratios to a
reference side, each kind of series with its own settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

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


@dataclass(frozen=True)
class ChangeRules:
    """The settings each series is searched with: its suite's own `changes:` (and its reference side's), where
    that suite's file is known, else these defaults."""

    value: ChangeSettings = field(default_factory=ChangeSettings)
    ratio: RatioChangeSettings = field(default_factory=RatioChangeSettings)
    suites: Mapping[str, tuple[ChangeSettings, RatioChangeSettings]] = field(default_factory=dict)

    def of(self, key: SeriesKey) -> ChangeSettings:
        """A series' settings: a ratio series (its key names a reference side) has its own."""
        value, ratio = self.suites.get(key.suite, (self.value, self.ratio))
        return ratio if key.reference is not None else value

    def overridden(self, overrides: Mapping[str, object]) -> ChangeRules:
        """The same rules with the command line's settings on top of each (pydantic errors as raised)."""
        def over(s: ChangeSettings) -> ChangeSettings:
            return type(s).model_validate({**s.model_dump(), **overrides})

        return ChangeRules(over(self.value), cast(RatioChangeSettings, over(self.ratio)),
                           {k: (over(v), cast(RatioChangeSettings, over(r))) for k, (v, r) in self.suites.items()})

    def widest_segment(self, values: bool = True, ratios: bool = True) -> int:
        """The longest `min_segment` of the run medians' settings and/or the ratio series' (every suite's)."""
        pairs = [(self.value, self.ratio), *self.suites.values()]
        return max([v.min_segment for v, _ in pairs if values] + [r.min_segment for _, r in pairs if ratios])


def _file_settings(path: Path) -> tuple[ChangeSettings, RatioChangeSettings, str]:
    from harness.plan.suite import load_suite

    parsed, _ = load_suite(path)
    ratios = parsed.reference_side.changes if parsed.reference_side else RatioChangeSettings()
    return parsed.changes, ratios, parsed.name


def change_settings(suite: str | None) -> tuple[ChangeSettings, RatioChangeSettings, str | None]:
    """The suite's `changes:` settings (run medians), its reference side's (ratio series) and its name when
    `suite` names a suite file or shipped suite; else the defaults and `suite` taken as a recorded suite name."""
    from harness.plan.suite import resolve_suite_path

    if suite is None:
        return ChangeSettings(), RatioChangeSettings(), None
    path = resolve_suite_path(suite)
    if path.is_file():
        return _file_settings(path)
    return ChangeSettings(), RatioChangeSettings(), suite


def recorded_rules(store: HistoryStore) -> ChangeRules:
    """Each recorded suite's settings from the file its newest run came from, where that file is still there
    and reads (as `harness history changes --suite FILE` would use); the defaults for the others."""
    suites: dict[str, tuple[ChangeSettings, RatioChangeSettings]] = {}
    for name, suite_file in store.suite_files().items():
        if suite_file and Path(suite_file).is_file():
            try:
                value, ratio, _ = _file_settings(Path(suite_file))
            except HarnessInputError:
                continue
            suites[name] = (value, ratio)
    return ChangeRules(suites=suites)


def change_starts(store: HistoryStore, cell: str, metric: str, suite: str | None,
                  ratios: bool = False) -> dict[str, ChangePoint]:
    """The change points within each (suite, host) series of one cell's metric (with `ratios`, of its ratio
    series to a reference side), by their first run at the new level."""
    found = (store.ratio_series if ratios else store.series)(cells=[cell], metrics=[metric], suite=suite)
    rules = ChangeRules()
    return {c.after_run: c for key, series in found.items() for c in series_changes(key, series, rules.of(key))}


def changes_in(series: dict[SeriesKey, list[SeriesPoint]], rules: ChangeRules) -> list[ChangePoint]:
    """Every series' change points: regressions first, then the most recent, then by series."""
    found = [c for key, points in sorted(series.items(), key=lambda kv: tuple(str(v) for v in kv[0].model_dump().values()))
             for c in series_changes(key, points, rules.of(key))]
    found.sort(key=lambda c: (c.direction != "regression", c.runs_since, c.label()))
    return found


def too_short(series: dict[SeriesKey, list[SeriesPoint]], rules: ChangeRules) -> int:
    """How many series have fewer runs than two segments need (not analysed)."""
    return sum(len(p) < 2 * rules.of(k).min_segment for k, p in series.items())


def find_change(store: HistoryStore, wanted: str, limit: int = 500) -> ChangePoint | None:
    """The change point named `wanted` (ChangePoint.id) as a search over its series finds it now, with its mark;
    None when no series has one by that name. Its first run at the new level is named in the id's hash, so the
    runs are tried newest first and only the one series whose name matches is searched."""
    from harness.analyze.changes import change_id
    from harness.analyze.triage import with_triage

    for run_id in store.run_ids_newest_first():
        for key in store.series_in_run(run_id):
            if change_id(key.suite, key.host, key.cell_key, key.metric, key.reference, run_id) != wanted:
                continue
            query = store.ratio_series if key.reference is not None else store.series
            found = query(cells=[key.cell_key], metrics=[key.metric], suite=key.suite, host=key.host, limit=limit)
            points = found.get(key, [])
            changes = series_changes(key, points, recorded_rules(store).of(key))
            return next((c for c in with_triage(changes, store.triage_marks()) if c.id == wanted), None)
    return None
