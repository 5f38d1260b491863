"""What the published history site shows, read from the history database: every series with its change points,
the runs, and the A/B and bisect records; and which of them changed since the site was last published.

Change points are the same search as `harness history changes` (history_changes.changes_in's per-series step,
each suite with its recorded settings), so the site and the command agree figure for figure. A series is
searched again only when a run it has a value in was recorded, re-recorded, or became an A/B side since the
last publish (`Snapshot` remembers each run's recorded_at); the rest come from the previous publish's state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from harness.analyze.changes import ChangePoint, SeriesKey, SeriesPoint, series_changes
from harness.analyze.history_tables import ab_records, bisects, runs
from harness.core.digest import digest
from harness.core.metrics import METRICS

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore
    from harness.core.schema import ChangeSettings, RunResults

SPARK_POINTS = 40  # the newest runs a sparkline draws


class RunEntry(BaseModel):
    """One recorded run as the site names it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    suite: str
    host: str | None
    started_at: str
    genai_version: str | None
    openvino_version: str | None
    harness_commit: str | None
    run_dir: str | None
    n_cells: int
    n_ok: int
    n_failed: int
    recorded_at: str

    def stack(self) -> str:
        return f"genai {self.genai_version or '?'} / ov {self.openvino_version or '?'}"


class Facets(BaseModel):
    """What a series' cell measured, from its newest recorded run's CellSpec: what the site filters by."""

    model_config = ConfigDict(frozen=True)

    model: str
    precision: str
    device: str
    scenario: str
    kind: str
    runtime: str
    environment: str | None


class SeriesView(BaseModel):
    """One series as the site draws it, without its points (kept between publishes)."""

    key: SeriesKey
    page: str = Field(description="its page, relative to the site's root")
    unit: str
    higher_is_better: bool | None
    facets: Facets | None
    runs: int
    first_started: str
    last_started: str
    last_run: str
    last_value: float
    last_stack: str
    spark: list[float] = Field(description=f"the newest {SPARK_POINTS} values")
    changes: list[ChangePoint] = Field(description="change points, oldest first, without triage marks")


class RecordEntry(BaseModel):
    """An A/B or bisect record: its id, when, what it is about, and a digest of its stored JSON."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    suite: str
    started_at: str
    digest: str
    cell_key: str | None = None  # bisect: the cell and metric it bisects
    metric: str | None = None
    status: str | None = None
    base_run: str | None = None  # A/B: the two runs
    candidate_run: str | None = None
    n_regressions: int | None = None
    cells: list[str] = Field(default_factory=list, description="A/B: the cell keys it compared")


class Snapshot(BaseModel):
    """What a publish read: each run's recorded_at and the A/B sides, to tell the next publish what changed."""

    runs: dict[str, str] = Field(default_factory=dict)
    ab_runs: list[str] = Field(default_factory=list)


def page_of(key: SeriesKey) -> str:
    return f"s/{digest([key.suite, key.host, key.cell_key, key.metric, key.reference], 12)}.html"


def run_entries(store: HistoryStore) -> list[RunEntry]:
    """Every recorded run, oldest first."""
    r = runs.c
    q = select(r.run_id, r.suite_name, r.hostname, r.started_at, r.genai_version, r.openvino_version,
               r.harness_commit, r.run_dir, r.n_cells, r.n_ok, r.n_failed, r.recorded_at).order_by(r.started_at, r.run_id)
    with store.engine.connect() as conn:
        return [RunEntry(run_id=row.run_id, suite=row.suite_name, host=row.hostname, started_at=row.started_at,
                         genai_version=row.genai_version, openvino_version=row.openvino_version,
                         harness_commit=row.harness_commit, run_dir=row.run_dir, n_cells=row.n_cells, n_ok=row.n_ok,
                         n_failed=row.n_failed, recorded_at=row.recorded_at) for row in conn.execute(q)]


def ab_entries(store: HistoryStore) -> list[RecordEntry]:
    import json

    a = ab_records.c
    out = []
    with store.engine.connect() as conn:
        for row in conn.execute(select(a.ab_id, a.suite_name, a.started_at, a.base_run, a.candidate_run,
                                       a.n_regressions, a.ab_json).order_by(a.started_at)):
            try:
                cells = [c.get("key", "") for c in json.loads(row.ab_json).get("cells", [])]
            except (ValueError, AttributeError):
                cells = []
            out.append(RecordEntry(record_id=row.ab_id, suite=row.suite_name, started_at=row.started_at,
                                   digest=digest(row.ab_json), base_run=row.base_run, candidate_run=row.candidate_run,
                                   n_regressions=row.n_regressions, cells=[c for c in cells if c]))
    return out


def bisect_entries(store: HistoryStore) -> list[RecordEntry]:
    b = bisects.c
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(b.bisect_id, b.suite_name, b.started_at, b.cell_key, b.metric, b.status,
                                        b.record_json).order_by(b.started_at)))
    return [RecordEntry(record_id=row.bisect_id, suite=row.suite_name, started_at=row.started_at,
                        digest=digest(row.record_json), cell_key=row.cell_key, metric=row.metric, status=row.status)
            for row in rows]


class Touched(BaseModel):
    """What changed since the last publish: the runs recorded or re-recorded since, and the runs that became (or
    stopped being) an A/B side, whose series must be read again whole."""

    runs: list[str]
    ab_runs: list[str]


def touched_since(before: Snapshot | None, now: Snapshot) -> Touched | None:
    """None when everything must be searched again (no earlier publish, or a run is gone)."""
    if before is None or set(before.runs) - set(now.runs):
        return None
    return Touched(runs=sorted(run for run, at in now.runs.items() if before.runs.get(run) != at),
                   ab_runs=sorted(set(before.ab_runs) ^ set(now.ab_runs)))


def touched_series(store: HistoryStore, run_ids: Iterable[str]) -> set[SeriesKey]:
    """The series these runs have a value in."""
    return {key for run in run_ids for key in store.series_in_run(run)}


class PointCache:
    """Every series' points as the last publish read them (`.publish/points.npz`: run numbers and values), so a
    publish after one run reads that run's rows only and merges them in."""

    def __init__(self, series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None):
        self.series = series or {}

    @classmethod
    def load(cls, path: Path) -> PointCache:
        try:
            with np.load(path, allow_pickle=False) as z:
                pages, offsets = [str(p) for p in z["pages"]], z["offsets"]
                arrays = [z["runs"], z["v"], z["lo"].astype(float), z["hi"].astype(float)]
        except (OSError, KeyError, ValueError):
            return cls()
        return cls({page: tuple(a[offsets[i]:offsets[i + 1]] for a in arrays)  # type: ignore[misc]
                    for i, page in enumerate(pages)})

    def save(self, path: Path) -> None:
        pages = sorted(self.series)
        sizes = [len(self.series[p][0]) for p in pages]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        columns = [np.concatenate([self.series[p][i] for p in pages]) if pages else np.zeros(0) for i in range(4)]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("points.tmp.npz")
        # values at full precision (the search must see what the database holds); intervals are only drawn
        np.savez(tmp, pages=np.array(pages, dtype=str), offsets=offsets, runs=columns[0].astype(np.int32),
                 v=columns[1].astype(float), lo=columns[2].astype(np.float32), hi=columns[3].astype(np.float32))
        tmp.replace(path)

    def put(self, page: str, points: Sequence[SeriesPoint], numbers: dict[str, int]) -> None:
        columns = list(zip(*points, strict=True))  # numpy reads None as NaN in a float array
        self.series[page] = (np.array([numbers[r] for r in columns[0]], dtype=np.int64),
                             *(np.array(columns[i], dtype=float) for i in (2, 5, 6)))  # type: ignore[assignment]

    def points(self, page: str, by_number: Sequence[RunEntry | None]) -> list[SeriesPoint] | None:
        """The cached points, or None where the cache has none (or names a run it no longer knows)."""
        found = self.series.get(page)
        if found is None:
            return None
        numbers, v, lo, hi = found
        if len(numbers) and (numbers.min() < 0 or numbers.max() >= len(by_number)):
            return None
        runs = [by_number[n] for n in numbers.tolist()]
        if any(r is None for r in runs):
            return None
        # NaN (no interval) back to None; x != x is NaN's own test, cheaper than math.isnan a million times
        lows = [None if x != x else x for x in lo.tolist()]
        highs = [None if x != x else x for x in hi.tolist()]
        return [SeriesPoint(r.run_id, r.started_at, m, r.genai_version, r.openvino_version, a, b)  # type: ignore[union-attr]
                for r, m, a, b in zip(runs, v.tolist(), lows, highs, strict=True)]


def merged_points(store: HistoryStore, cache: PointCache, touched: Touched, keys: set[SeriesKey],
                  by_number: Sequence[RunEntry | None], since: str | None,
                  limit: int) -> dict[SeriesKey, list[SeriesPoint]]:
    """The `keys` series as `fetch_series` would read them: the cached points with the touched runs' rows merged
    in (a re-recorded run's replacing its old ones); read whole where the cache cannot tell (a new series, or a
    run that became or stopped being an A/B side)."""
    fresh = store.points_in_runs(touched.runs)
    whole = touched_series(store, touched.ab_runs)
    gone = set(touched.runs)
    out: dict[SeriesKey, list[SeriesPoint]] = {}
    for key in keys - whole:
        cached = cache.points(page_of(key), by_number)
        if cached is None:
            whole.add(key)
            continue
        merged = [p for p in cached if p.run_id not in gone] + [p for p in fresh.get(key, [])
                                                                if since is None or p.started_at >= since]
        merged.sort(key=lambda p: (p.started_at, p.run_id))
        out[key] = merged[-limit:]
    return out | fetch_series(store, whole & keys, since, limit)


def fetch_series(store: HistoryStore, wanted: set[SeriesKey] | None, since: str | None,
                 limit: int) -> dict[SeriesKey, list[SeriesPoint]]:
    """The points of the `wanted` series (None: all), as `harness history changes` reads them."""
    from harness.analyze.changes import default_metrics

    if wanted is None:
        metrics = default_metrics()
        return {**store.series(metrics=metrics, since=since, limit=limit),
                **store.ratio_series(metrics=metrics, since=since, limit=limit)}
    out: dict[SeriesKey, list[SeriesPoint]] = {}
    groups: dict[tuple[str, str | None, bool], set[SeriesKey]] = {}
    for key in wanted:
        if METRICS.get(key.metric) is not None or key.reference is not None:
            groups.setdefault((key.suite, key.host, key.reference is not None), set()).add(key)
    for (suite, host, ratio), keys in groups.items():
        query = store.ratio_series if ratio else store.series
        found = query(cells=sorted({k.cell_key for k in keys}), metrics=sorted({k.metric for k in keys}),
                      suite=suite, host=host, since=since, limit=limit)
        out |= {k: v for k, v in found.items() if k in keys}
    return out


def facets_of(store: HistoryStore, keys: Iterable[SeriesKey], run_list: Sequence[RunEntry]) -> dict[tuple[str, str], Facets]:
    """(suite, cell key) -> facets, from the newest runs of each suite holding the cell (up to 10 runs back)."""
    wanted: dict[str, set[str]] = {}
    for key in keys:
        wanted.setdefault(key.suite, set()).add(key.cell_key)
    out: dict[tuple[str, str], Facets] = {}
    for suite, cells in wanted.items():
        newest = [r.run_id for r in reversed(run_list) if r.suite == suite][:10]
        for run_id in newest:
            if not cells:  # every cell of the suite found
                break
            try:
                results = store.load(run_id)
            except Exception:  # noqa: BLE001 - a run this harness cannot read: its facets stay unknown
                continue
            for cell_key, facets in _cell_facets(results).items():
                if cell_key in cells:
                    out[(suite, cell_key)] = facets
                    cells.discard(cell_key)
    return out


def _cell_facets(results: RunResults) -> dict[str, Facets]:
    return {c.key: Facets(model=c.spec.model.name, precision=c.spec.precision, device=c.spec.device,
                          scenario=c.spec.scenario.name, kind=c.spec.scenario.kind, runtime=c.spec.runtime, environment=c.spec.environment)
            for c in results.cells}


def view_of(key: SeriesKey, points: list[SeriesPoint], settings: ChangeSettings, facets: Facets | None,
            run_stack: dict[str, str]) -> SeriesView:
    """The series' change points (the search `history changes` runs) and what the overview draws of it."""
    from harness.analyze.changes import RATIO_UNIT

    metric = METRICS.get(key.metric)
    last = points[-1]
    return SeriesView(key=key, page=page_of(key), unit=RATIO_UNIT if key.reference else metric.unit if metric else "",
                      higher_is_better=metric.higher_is_better if metric else None,
                      facets=facets, runs=len(points), first_started=points[0].started_at,
                      last_started=last.started_at, last_run=last.run_id, last_value=last.median,
                      last_stack=run_stack.get(last.run_id, ""), spark=[p.median for p in points[-SPARK_POINTS:]],
                      changes=series_changes(key, points, settings))
