"""What the published history site shows, read from the history database: every series with its change points,
the runs, and the A/B and bisect records; and which of them changed since the site was last published.

Change points are the same search as `harness history changes` (history_changes.changes_in's per-series step,
each suite with its recorded settings), so the site and the command agree figure for figure. A series is
searched again only when a run it has a value in was recorded, re-recorded, or became an A/B side since the
last publish (`Snapshot` remembers each run's recorded_at); the rest come from the previous publish's state."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from harness.analyze.changes import ChangePoint, SeriesKey, SeriesPoint, series_changes
from harness.analyze.history_tables import ab_records, bisects, runs
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
    text = "\x1f".join((key.suite, key.host or "", key.cell_key, key.metric, key.reference or ""))
    return "s/" + hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:12] + ".html"


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
                                   digest=_digest(row.ab_json), base_run=row.base_run, candidate_run=row.candidate_run,
                                   n_regressions=row.n_regressions, cells=[c for c in cells if c]))
    return out


def bisect_entries(store: HistoryStore) -> list[RecordEntry]:
    b = bisects.c
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(b.bisect_id, b.suite_name, b.started_at, b.cell_key, b.metric, b.status,
                                        b.record_json).order_by(b.started_at)))
    return [RecordEntry(record_id=row.bisect_id, suite=row.suite_name, started_at=row.started_at,
                        digest=_digest(row.record_json), cell_key=row.cell_key, metric=row.metric, status=row.status)
            for row in rows]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def changed_series(store: HistoryStore, before: Snapshot | None, now: Snapshot) -> set[SeriesKey] | None:
    """The series a run recorded, re-recorded or turned A/B side since `before` has a value in; None when
    everything must be searched again (no earlier publish, or a run is gone)."""
    if before is None or set(before.runs) - set(now.runs):
        return None
    touched = {run for run, at in now.runs.items() if before.runs.get(run) != at}
    touched |= set(before.ab_runs) ^ set(now.ab_runs)
    return {key for run in sorted(touched) for key in store.series_in_run(run)}


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
