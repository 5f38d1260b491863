"""The history database: every run, its per-cell metric summaries, and named baselines.

SQLite by default (`results/history.sqlite`), PostgreSQL through a URL (`postgresql+psycopg://...`)
so many machines can write to one place. The full `results.json` of each run is kept in the
database, so a run can be re-read and compared after its directory is gone. Timestamps are kept
as the ISO strings of the result schema, so both engines store and order them the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

from harness.core.errors import HarnessInputError
from harness.core.schema import FAILED_STATUSES, SCHEMA_VERSION, RunResults
from harness.core.stats import successive_sd

if TYPE_CHECKING:
    from harness.analyze.changes import SeriesKey, SeriesPoint

LAST_GOOD = "last-good"

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String, primary_key=True),
    Column("suite_name", String, nullable=False),
    Column("started_at", String, nullable=False),
    Column("finished_at", String),
    Column("hostname", String),
    Column("cpu_model", String),
    Column("genai_version", String),
    Column("openvino_version", String),
    Column("n_cells", Integer, nullable=False),
    Column("n_ok", Integer, nullable=False),
    Column("n_failed", Integer, nullable=False),
    Column("harness_commit", String),
    Column("run_dir", Text),
    Column("recorded_at", String, nullable=False),
    Column("results_json", Text, nullable=False),
    Index("ix_runs_suite_started", "suite_name", "started_at"),
)

cell_metrics = Table(
    "cell_metrics", metadata,
    Column("run_id", String, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("cell_key", String, primary_key=True),
    Column("metric", String, primary_key=True),
    Column("median", Double, nullable=False),
    Column("mean", Double, nullable=False),
    Column("stdev", Double),
    Column("p90", Double, nullable=False),
    Column("p99", Double, nullable=False),
    Column("n", Integer, nullable=False),
    # what the cell measured with (harness.analyze.compare.measurement_config): the noise floor groups by it
    Column("config", String),
    # the host the cell ran on: its cluster node's name, else the run's hostname (history series follow it)
    Column("host", String),
    Index("ix_cell_metrics_cell_metric", "cell_key", "metric"),
)

ab_records = Table(
    "ab_records", metadata,
    Column("ab_id", String, primary_key=True),
    Column("suite_name", String, nullable=False),
    Column("started_at", String, nullable=False),
    Column("base_run", String, ForeignKey("runs.run_id"), nullable=False),
    Column("candidate_run", String, ForeignKey("runs.run_id"), nullable=False),
    Column("base_side", Text, nullable=False),
    Column("candidate_side", Text, nullable=False),
    Column("n_regressions", Integer, nullable=False),
    Column("n_cells", Integer, nullable=False),
    Column("ab_dir", Text),
    Column("ab_json", Text, nullable=False),
)

bisects = Table(
    "bisects", metadata,
    Column("bisect_id", String, primary_key=True),
    Column("suite_name", String, nullable=False),
    Column("cell_key", String, nullable=False),
    Column("metric", String, nullable=False),
    Column("status", String, nullable=False),
    Column("started_at", String, nullable=False),
    Column("updated_at", String, nullable=False),
    Column("record_json", Text, nullable=False),
)

baselines = Table(
    "baselines", metadata,
    Column("name", String, primary_key=True),
    Column("run_id", String, ForeignKey("runs.run_id"), nullable=False),
    Column("set_at", String, nullable=False),
)


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


def default_history_url(beside: Path | None = None) -> str:
    """HARNESS_HISTORY_URL, else a SQLite file history.sqlite in the folder that holds the run directory
    `beside` (results/ for a default run dir, the --out folder's parent otherwise), else results/history.sqlite
    under the working directory."""
    env = os.environ.get("HARNESS_HISTORY_URL", "").strip()
    folder = beside.resolve().parent if beside is not None else Path.cwd() / "results"
    return env or f"sqlite:///{folder / 'history.sqlite'}"


def _normalise_url(url: str) -> str:
    # A plain postgresql:// URL would make SQLAlchemy look for psycopg2; psycopg 3 is what we ship.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _row_values(results: RunResults, run_dir: str | None) -> dict[str, Any]:
    meta = results.metadata
    statuses = [c.status for c in results.cells]
    return {
        "suite_name": meta.suite_name, "started_at": meta.started_at, "finished_at": meta.finished_at,
        "hostname": meta.host.hostname, "cpu_model": meta.host.cpu_model,
        "genai_version": meta.versions.get("openvino-genai"), "openvino_version": meta.versions.get("openvino"),
        "n_cells": len(statuses), "n_ok": statuses.count("ok"),
        "n_failed": sum(s in FAILED_STATUSES for s in statuses), "harness_commit": meta.harness_commit,
        "run_dir": run_dir, "recorded_at": _now(), "results_json": results.model_dump_json(),
    }


def _metric_rows(results: RunResults) -> list[dict[str, Any]]:
    from harness.analyze.compare import measurement_config

    run_id = results.metadata.run_id
    rows = []
    for cell in results.cells:
        config = measurement_config(cell, results.metadata)
        host = cell.node.name if cell.node is not None else results.metadata.host.hostname
        rows += [{"run_id": run_id, "cell_key": cell.key, "metric": tag, "median": s.median, "mean": s.mean,
                  "stdev": s.stdev, "p90": s.p90, "p99": s.p99, "n": s.n, "config": config, "host": host}
                 for tag, s in cell.summaries.items()]
    return rows


def _migrate(engine: Engine) -> None:
    """Columns added after a database was created (create_all adds tables, never columns)."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(engine).get_columns("cell_metrics")}
    for column in ("config", "host"):
        if column not in have:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE cell_metrics ADD COLUMN {column} VARCHAR"))


def _upsert(conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update one row by primary key, atomically where the engine supports it."""
    dialects = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    make = dialects.get(conn.dialect.name)
    if make is not None:
        # ON CONFLICT: two machines recording the same run at once cannot both insert.
        stmt = make(table).values(**key, **values)
        # both dialects' insert() has on_conflict_do_update; the dict's value type is their common base
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))  # type: ignore[attr-defined]
        return
    where = [table.c[k] == v for k, v in key.items()]
    if not conn.execute(update(table).where(*where).values(**values)).rowcount:
        conn.execute(insert(table).values(**key, **values))


def _ab_runs():
    """The run ids that are a side of a recorded A/B comparison (a subquery)."""
    return select(ab_records.c.base_run).union(select(ab_records.c.candidate_run))


class HistoryStore:
    """The history database at one SQLAlchemy URL; creates its tables when missing."""

    def __init__(self, url: str | None = None):
        url = _normalise_url(url or default_history_url())
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise HarnessInputError(None, "history URL", url, "not a database URL (e.g. sqlite:///path or "
                                    "postgresql+psycopg://user@host/db)") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.url = parsed.render_as_string(hide_password=True)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            connect_args["timeout"] = 30  # wait for a concurrent writer instead of failing at once
        elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 15  # an unreachable host would otherwise hang the run
        try:
            self.engine: Engine = create_engine(parsed, connect_args=connect_args)
        except ModuleNotFoundError as e:
            raise HarnessInputError(None, "history URL", self.url, f"database driver not installed: {e.name}") from None
        except NoSuchModuleError:
            raise HarnessInputError(None, "history URL", self.url, "unsupported database; use sqlite:///PATH or "
                                    "postgresql+psycopg://USER@HOST/DB") from None
        try:
            metadata.create_all(self.engine)
            _migrate(self.engine)
        except DatabaseError as e:  # unreachable server, or a file that is not a database
            reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e).splitlines()[0]
            raise HarnessInputError(None, "history URL", self.url, f"cannot open the history database: {reason}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def record_run(self, results: RunResults, run_dir: str | None) -> None:
        """Insert or replace a run (a resumed run updates its row) and its per-cell summaries."""
        run_id = results.metadata.run_id
        values = _row_values(results, run_dir)
        with self.engine.begin() as conn:
            # An upsert, not delete-then-insert: baselines keep pointing at the row.
            _upsert(conn, runs, {"run_id": run_id}, values)
            conn.execute(delete(cell_metrics).where(cell_metrics.c.run_id == run_id))
            rows = _metric_rows(results)
            if rows:
                conn.execute(insert(cell_metrics), rows)

    def record_ab(self, ab: Any, base: RunResults, candidate: RunResults, ab_dir: str | None) -> None:
        """One A/B comparison (harness/experiment/ab.py's ABResult) linking the two runs it measured."""
        self.record_run(base, str(Path(ab_dir) / "base") if ab_dir else None)
        self.record_run(candidate, str(Path(ab_dir) / "candidate") if ab_dir else None)
        values = {"suite_name": ab.suite_name, "started_at": ab.started_at, "base_run": ab.base_run,
                  "candidate_run": ab.candidate_run, "base_side": ab.base.label(),
                  "candidate_side": ab.candidate.label(), "n_regressions": ab.counts()["regression"],
                  "n_cells": len(ab.cells), "ab_dir": ab_dir, "ab_json": ab.model_dump_json()}
        with self.engine.begin() as conn:
            _upsert(conn, ab_records, {"ab_id": ab.ab_id}, values)

    def ab_json(self, ab_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ab_records.c.ab_json).where(ab_records.c.ab_id == ab_id)).first()
        return row[0] if row else None

    def save_bisect(self, record: Any) -> None:
        """Insert or update a bisect's record (harness/experiment/bisect.py's BisectRecord) after each of its steps."""
        values = {"suite_name": record.suite_name, "cell_key": record.cell_key, "metric": record.metric,
                  "status": record.status, "started_at": record.started_at, "updated_at": _now(),
                  "record_json": record.model_dump_json()}
        with self.engine.begin() as conn:
            _upsert(conn, bisects, {"bisect_id": record.bisect_id}, values)

    def bisect_json(self, bisect_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(bisects.c.record_json).where(bisects.c.bisect_id == bisect_id)).scalar()

    def delete_bisect(self, bisect_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(bisects).where(bisects.c.bisect_id == bisect_id))

    def set_baseline(self, name: str, run_id: str) -> None:
        """Point baseline NAME at a recorded run (replacing what it pointed at)."""
        with self.engine.begin() as conn:
            self._require_run(conn, run_id)
            _upsert(conn, baselines, {"name": name}, {"run_id": run_id, "set_at": _now()})

    # ------------------------------------------------------------ reading

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
        m = cell_metrics.c
        q = (select(m.run_id, runs.c.started_at, m.median, m.mean, m.stdev, m.n, m.p90, runs.c.genai_version)
             .join(runs, runs.c.run_id == m.run_id)
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
        from harness.analyze.changes import SeriesKey, SeriesPoint

        m, r = cell_metrics.c, runs.c
        cell_host = func.coalesce(m.host, r.hostname)
        q = (select(r.suite_name, cell_host.label("hostname"), m.cell_key, m.metric, m.run_id, r.started_at, m.median,
                    r.genai_version, r.openvino_version)
             .join(runs, r.run_id == m.run_id).where(m.run_id.not_in(_ab_runs())).order_by(r.started_at, m.run_id))
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
        out: dict[SeriesKey, list[SeriesPoint]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                key = SeriesKey(suite=row.suite_name, host=row.hostname, cell_key=row.cell_key, metric=row.metric)
                out.setdefault(key, []).append(SeriesPoint(
                    run_id=row.run_id, started_at=row.started_at, median=row.median,
                    genai_version=row.genai_version, openvino_version=row.openvino_version))
        return {k: v[-limit:] for k, v in out.items()}

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


def load_run(ref: str, url: str | None) -> RunResults:
    """A run directory, a results.json, or a run id / baseline name / last-good from the history."""
    from harness.core.store import load_results

    p = Path(ref)
    if p.exists():
        return load_results(p)
    return HistoryStore(url or default_history_url()).resolve(ref)
