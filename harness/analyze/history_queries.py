"""Reading the history database: runs, trends and series of a metric (its run medians, or its ratios to a
reference side), noise, baselines and recorded results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import Engine, Select, Table, and_, func, select
from sqlalchemy.engine import Connection

from harness.analyze.history_tables import ab_records, baselines, cell_metrics, cell_ratios, runs, triage
from harness.core.errors import HarnessInputError
from harness.core.schema import SCHEMA_VERSION, RunResults
from harness.core.stats import successive_sd

if TYPE_CHECKING:
    from harness.analyze.changes import SeriesKey, SeriesPoint
    from harness.analyze.triage import StoredMark

LAST_GOOD = "last-good"


@dataclass(frozen=True)
class RunRow:
    """One run as listed by `harness history`."""

    run_id: str
    suite_name: str
    started_at: str
    finished_at: str | None
    hostname: str | None
    cpu_model: str | None
    genai_version: str | None
    openvino_version: str | None
    n_cells: int
    n_ok: int
    n_failed: int
    harness_commit: str | None
    run_dir: str | None


@dataclass(frozen=True)
class TrendPoint:
    """One run's summary of one metric of one cell."""

    run_id: str
    started_at: str
    median: float
    mean: float
    stdev: float | None
    n: int
    p90: float
    genai_version: str | None
    ratio: float | None = None  # to the cell's reference side in that run (None: it had none)
    ratio_low: float | None = None
    ratio_high: float | None = None
    reference: str | None = None  # the reference side's label


def _ab_runs():
    """The run ids that are a side of a recorded A/B comparison (a subquery)."""
    return select(ab_records.c.base_run).union(select(ab_records.c.candidate_run))


class HistoryQueries:
    """The reading half of `HistoryStore` (harness.analyze.history), over its engine."""

    engine: Engine
    url: str

    def has_run(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is not None

    def list_runs(self, limit: int = 20, suite: str | None = None) -> list[RunRow]:
        """Most recent runs first."""
        cols = [runs.c[f] for f in RunRow.__dataclass_fields__]
        q = select(*cols).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
        if suite:
            q = q.where(runs.c.suite_name == suite)
        with self.engine.connect() as conn:
            return [RunRow(**r._asdict()) for r in conn.execute(q)]

    def trend(self, cell_key: str, metric: str, limit: int = 50) -> list[TrendPoint]:
        """The last `limit` runs' summaries of one metric of one cell, oldest first (A/B sides left out, as
        in `series`)."""
        m, v = cell_metrics.c, cell_ratios.c
        q = (select(m.run_id, runs.c.started_at, m.median, m.mean, m.stdev, m.n, m.p90, runs.c.genai_version,
                    v.ratio, v.ci_low.label("ratio_low"), v.ci_high.label("ratio_high"), v.reference)
             .join(runs, runs.c.run_id == m.run_id)
             .outerjoin(cell_ratios, and_(v.run_id == m.run_id, v.cell_key == m.cell_key, v.metric == m.metric))
             .where(m.cell_key == cell_key, m.metric == metric, m.run_id.not_in(_ab_runs()))
             .order_by(runs.c.started_at.desc(), m.run_id.desc()).limit(limit))
        with self.engine.connect() as conn:
            points = [TrendPoint(**r._asdict()) for r in conn.execute(q)]
        return points[::-1]

    def series(self, cells: Sequence[str] = (), metrics: Sequence[str] = (), suite: str | None = None,
               host: str | None = None, since: str | None = None,
               limit: int = 500) -> dict[SeriesKey, list[SeriesPoint]]:
        """Every (suite, host, cell, metric) series of run medians, oldest first, each its newest `limit`
        runs; filtered by cell keys, metric tags, suite name, hostname and first run time (ISO). The two
        sides of A/B comparisons (and so of bisect steps) are not in any series: they measure other
        settings under the suite's keys, interleaved in time with its nightly runs."""
        return self._series(cell_metrics, cells, metrics, suite, host, since, limit)

    def ratio_series(self, cells: Sequence[str] = (), metrics: Sequence[str] = (), suite: str | None = None,
                     host: str | None = None, since: str | None = None,
                     limit: int = 500) -> dict[SeriesKey, list[SeriesPoint]]:
        """As `series`, the cells' ratios to their reference side: one series per (suite, host, cell, metric,
        reference label), so a new pinned reference starts a series of its own."""
        return self._series(cell_ratios, cells, metrics, suite, host, since, limit)

    def points_in_runs(self, run_ids: Sequence[str]) -> dict[SeriesKey, list[SeriesPoint]]:
        """The points these runs add to any series (run medians and ratios; none for an A/B side)."""
        out: dict[SeriesKey, list[SeriesPoint]] = {}
        for start in range(0, len(run_ids), 500):  # bounded IN lists
            chunk = run_ids[start:start + 500]
            for table in (cell_metrics, cell_ratios):
                for key, points in self._series(table, (), (), None, None, None, 10**9, chunk).items():
                    out.setdefault(key, []).extend(points)
        return out

    def _series(self, table: Table, cells: Sequence[str], metrics: Sequence[str], suite: str | None,
                host: str | None, since: str | None, limit: int,
                run_ids: Sequence[str] = ()) -> dict[SeriesKey, list[SeriesPoint]]:
        from harness.analyze.changes import SeriesKey, SeriesPoint

        m, r = table.c, runs.c
        ratios = table is cell_ratios
        cell_host = func.coalesce(m.host, r.hostname)
        value = m.ratio if ratios else m.median
        q: Select = (select(r.suite_name, cell_host.label("hostname"), m.cell_key, m.metric, m.run_id, r.started_at,
                            value.label("value"), m.ci_low, m.ci_high, r.genai_version, r.openvino_version,
                            *([m.reference] if ratios else []))
                     .join(runs, r.run_id == m.run_id).where(m.run_id.not_in(_ab_runs()))
                     .order_by(r.started_at, m.run_id))
        if cells:
            q = q.where(m.cell_key.in_(list(cells)))
        if metrics:
            q = q.where(m.metric.in_(list(metrics)))
        if suite:
            q = q.where(r.suite_name == suite)
        if host:
            q = q.where(cell_host == host)
        if since:
            q = q.where(r.started_at >= since)
        if run_ids:
            q = q.where(m.run_id.in_(list(run_ids)))
        out: dict[tuple, list[SeriesPoint]] = {}
        with self.engine.connect() as conn:
            # positional unpacking into named tuples: a lab's history holds millions of rows
            for name, hostname, cell, tag, run_id, started, median, lo, hi, genai, ov, *reference in conn.execute(q):
                key = (name, hostname, cell, tag, reference[0] if ratios else None)
                points = out.get(key)
                if points is None:
                    points = out[key] = []
                points.append(SeriesPoint(run_id, started, median, genai, ov, lo, hi))
        return {SeriesKey(suite=k[0], host=k[1], cell_key=k[2], metric=k[3], reference=k[4]): v[-limit:]
                for k, v in out.items()}

    def triage_marks(self) -> list[StoredMark]:
        """Every triage mark (harness/analyze/triage.py)."""
        from harness.analyze.changes import TriageMark
        from harness.analyze.triage import StoredMark

        with self.engine.connect() as conn:
            rows = list(conn.execute(select(triage)))
        return [StoredMark(series=(r.suite_name, r.host, r.cell_key, r.metric, r.reference), before_run=r.before_run,
                           after_run=r.after_run, direction=r.direction,
                           mark=TriageMark(state=r.state, note=r.note, author=r.author, marked_at=r.marked_at,
                                           marked_run=r.after_run))
                for r in rows]

    def series_in_run(self, run_id: str) -> list[SeriesKey]:
        """The series (run medians and ratios) a run has a value in."""
        from harness.analyze.changes import SeriesKey

        out = []
        with self.engine.connect() as conn:
            suite = conn.execute(select(runs.c.suite_name, runs.c.hostname).where(runs.c.run_id == run_id)).first()
            if suite is None:
                return []
            for table in (cell_metrics, cell_ratios):
                ratios = table is cell_ratios
                cols = [table.c.cell_key, table.c.metric, table.c.host, *([table.c.reference] if ratios else [])]
                for row in conn.execute(select(*cols).where(table.c.run_id == run_id)):
                    out.append(SeriesKey(suite=suite.suite_name, host=row.host or suite.hostname, cell_key=row.cell_key,
                                         metric=row.metric, reference=row.reference if ratios else None))
        return out

    def run_ids_newest_first(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(runs.c.run_id).order_by(runs.c.started_at.desc(),
                                                                    runs.c.run_id.desc())).scalars())

    def suite_files(self) -> dict[str, str | None]:
        """Each recorded suite's file, as its newest run recorded it (None: run without one)."""
        import json

        newest = (select(runs.c.suite_name, func.max(runs.c.started_at).label("started_at"))
                  .group_by(runs.c.suite_name).subquery())
        q = (select(runs.c.suite_name, runs.c.results_json)
             .join(newest, and_(runs.c.suite_name == newest.c.suite_name, runs.c.started_at == newest.c.started_at)))
        out: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            for name, text in conn.execute(q):
                try:
                    out[name] = json.loads(text).get("metadata", {}).get("suite_file")
                except (ValueError, AttributeError):
                    out[name] = None
        return out

    def suite_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(runs.c.suite_name).distinct().order_by(runs.c.suite_name)).scalars())

    def run_to_run_noise(self, cell_key: str, metric: str, exclude: frozenset[str] = frozenset(),
                         limit: int = 20, min_runs: int = 5, config: str | None = None) -> tuple[float, int] | None:
        """Run-to-run sd of the log median of one cell's metric over its last `limit` recorded runs of the
        same measurement configuration (`config`; None: any), not counting `exclude`, and how many runs that
        was; None below `min_runs` runs. The sd comes from successive differences (1.4826 × MAD of the
        differences / √2), so a real shift in the series (a new build, a faster setting) adds one large
        difference and barely moves it, where the spread around one median would count it as noise."""
        m = cell_metrics.c
        q = (select(m.run_id, m.median).join(runs, runs.c.run_id == m.run_id)
             .where(m.cell_key == cell_key, m.metric == metric)
             .order_by(runs.c.started_at.desc(), m.run_id.desc()).limit(limit + len(exclude)))
        if config is not None:
            q = q.where(m.config == config)
        with self.engine.connect() as conn:
            rows = list(conn.execute(q))[::-1]
        points = [r.median for r in rows if r.run_id not in exclude and r.median and r.median > 0][-limit:]
        if len(points) < min_runs:
            return None
        return successive_sd([math.log(v) for v in points]), len(points)

    def cell_keys(self, metric: str | None = None) -> list[str]:
        """Every recorded cell key (having `metric`, when given)."""
        q = select(cell_metrics.c.cell_key).distinct().order_by(cell_metrics.c.cell_key)
        if metric:
            q = q.where(cell_metrics.c.metric == metric)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def baselines(self) -> dict[str, str]:
        """Baseline name -> run id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(baselines.c.name, baselines.c.run_id).order_by(baselines.c.name))
            return {name: run_id for name, run_id in rows}

    def load(self, run_id: str) -> RunResults:
        """The full results of a recorded run."""
        with self.engine.connect() as conn:
            text = conn.execute(select(runs.c.results_json).where(runs.c.run_id == run_id)).scalar()
        if text is None:
            raise HarnessInputError(self.url, "run", run_id, "no run with this id in the history")
        try:
            return RunResults.model_validate_json(text)
        except ValidationError as e:
            # The history outlives schema changes: an old run may not read with this harness.
            raise HarnessInputError(self.url, "run", run_id, f"stored results do not match this harness's "
                                    f"result schema {SCHEMA_VERSION}: {e.errors()[0]['msg']}") from None

    def last_good(self, suite: str | None = None) -> str | None:
        """Most recent finished run with no failed, crashed or timed-out cell and at least one ok cell."""
        q = (select(runs.c.run_id).where(runs.c.n_failed == 0, runs.c.n_ok > 0, runs.c.finished_at.is_not(None))
             .order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(1))
        if suite:
            q = q.where(runs.c.suite_name == suite)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    def resolve(self, ref: str, suite: str | None = None) -> RunResults:
        """A run id, a baseline name, or `last-good` (its baseline if set, else the last all-ok run)."""
        if self.has_run(ref):
            return self.load(ref)
        named = self.baselines()
        if ref in named:
            return self.load(named[ref])
        if ref == LAST_GOOD:
            run_id = self.last_good(suite)
            if run_id is None:
                where = f" of suite {suite!r}" if suite else ""
                raise HarnessInputError(self.url, "baseline", ref, f"no baseline named {LAST_GOOD!r} and no "
                                        f"finished run{where} with every cell ok or skipped")
            return self.load(run_id)
        known = sorted({*named, LAST_GOOD})
        raise HarnessInputError(self.url, "run", ref, "not a run directory, run id or baseline name "
                                f"(baselines: {', '.join(known)})")

    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is None:
            raise HarnessInputError(self.url, "run", run_id, "no run with this id in the history "
                                    "(record it first: harness history record RUN_DIR)")

