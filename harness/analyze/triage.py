"""Triage marks on change points: the history's verdicts (acknowledged / expected / fixed) found again on the
change points of a later search.

A mark names its series and the two runs around its change point. PELT may move a point by one run as runs
arrive; the mark stays with it while the point keeps one of those two runs and its direction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.analyze.changes import ChangePoint, TriageMark

SeriesIds = tuple[str, str, str, str, str]  # suite, host, cell key, metric, reference ('' where none)


@dataclass(frozen=True)
class StoredMark:
    """One row of the history's triage table."""

    series: SeriesIds
    before_run: str
    after_run: str
    direction: str | None
    mark: TriageMark


def series_ids(c: ChangePoint) -> SeriesIds:
    return (c.suite, c.host or "", c.cell_key, c.metric, c.reference or "")


def with_triage(changes: Iterable[ChangePoint], marks: Sequence[StoredMark]) -> list[ChangePoint]:
    """The change points with the mark each has (the exact one first, else one it moved by a run from)."""
    by_series: dict[SeriesIds, list[StoredMark]] = {}
    for m in marks:
        by_series.setdefault(m.series, []).append(m)
    out = []
    for c in changes:
        found = by_series.get(series_ids(c), [])
        exact = [m for m in found if m.after_run == c.after_run]
        near = [m for m in found if {m.before_run, m.after_run} & {c.before_run, c.after_run}
                and m.direction in (None, c.direction)]
        chosen = (exact or near)[:1]
        out.append(c.model_copy(update={"triage": chosen[0].mark}) if chosen else c)
    return out
