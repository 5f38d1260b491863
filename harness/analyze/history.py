"""The history database: every run, its per-cell metric summaries, its cells' ratios to a reference side, and
named baselines.

SQLite by default (`results/history.sqlite`), PostgreSQL through a URL (`postgresql+psycopg://...`)
so many machines can write to one place. The full `results.json` of each run is kept in the
database, so a run can be re-read and compared after its directory is gone. Timestamps are kept
as the ISO strings of the result schema, so both engines store and order them the same way.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

from harness.analyze.history_queries import HistoryQueries
from harness.analyze.history_tables import (
    ab_records,
    baselines,
    bisects,
    cell_metrics,
    cell_ratios,
    metadata,
    migrate,
    runs,
    triage,
    upsert,
)
from harness.core.errors import HarnessInputError, HistoryUnreadable
from harness.core.escaping import json_of, valid_tree
from harness.core.schema import FAILED_STATUSES, RunResults


def default_history_url(beside: Path | None = None) -> str:
    """HARNESS_HISTORY_URL, else a SQLite file history.sqlite in the folder that holds the run directory
    `beside` (results/ for a default run dir, the --out folder's parent otherwise), else results/history.sqlite
    under the working directory."""
    env = os.environ.get("HARNESS_HISTORY_URL", "").strip()
    folder = beside.resolve().parent if beside is not None else Path.cwd() / "results"
    return env or f"sqlite:///{folder / 'history.sqlite'}"


def normalise_url(url: str) -> str:
    # A plain postgresql:// URL would make SQLAlchemy look for psycopg2; psycopg 3 is what we ship.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _now() -> str:
    # microseconds: `history publish` tells a re-recorded run by this time, and a run may be re-recorded within a second
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _valid_parameters(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                      executemany: bool) -> tuple[str, Any]:
    # valid_tree turns tuples into lists; the driver wants a row's positional parameters back as a tuple
    if isinstance(parameters, tuple):
        return statement, tuple(valid_tree(parameters))
    if isinstance(parameters, list) and executemany:
        return statement, [tuple(valid_tree(p)) if isinstance(p, tuple) else valid_tree(p) for p in parameters]
    return statement, valid_tree(parameters)


def _row_values(results: RunResults, run_dir: str | None) -> dict[str, Any]:
    meta = results.metadata
    statuses = [c.status for c in results.cells]
    return {
        "suite_name": meta.suite_name, "started_at": meta.started_at, "finished_at": meta.finished_at,
        "hostname": meta.host.hostname, "cpu_model": meta.host.cpu_model,
        "genai_version": meta.versions.get("openvino-genai"), "openvino_version": meta.versions.get("openvino"),
        "n_cells": len(statuses), "n_ok": statuses.count("ok"),
        "n_failed": sum(s in FAILED_STATUSES for s in statuses), "harness_commit": meta.harness_commit,
        "run_dir": run_dir, "recorded_at": _now(), "results_json": json_of(results),
    }


def _metric_rows(results: RunResults) -> list[dict[str, Any]]:
    from harness.analyze.compare import measurement_config

    run_id = results.metadata.run_id
    rows = []
    for cell in results.cells:
        config = measurement_config(cell, results.metadata)
        host = cell.node.name if cell.node is not None else results.metadata.host.hostname
        rows += [{"run_id": run_id, "cell_key": cell.key, "metric": tag, "median": s.median, "mean": s.mean,
                  "stdev": s.stdev, "p90": s.p90, "p99": s.p99, "n": s.n, "config": config, "host": host,
                  "ci_low": s.median_ci_low, "ci_high": s.median_ci_high}
                 for tag, s in cell.summaries.items()]
    return rows


def _ratio_rows(results: RunResults) -> list[dict[str, Any]]:
    run_id = results.metadata.run_id
    rows = []
    for cell in results.cells:
        vs = cell.vs_reference
        if vs is None:
            continue
        host = cell.node.name if cell.node is not None else results.metadata.host.hostname
        for f in vs.ratios:
            own = vs.summaries.get(f.metric)
            rows.append({"run_id": run_id, "cell_key": cell.key, "metric": f.metric, "reference": vs.label,
                         "side": vs.description, "ratio": f.ratio, "ci_low": f.ci_low, "ci_high": f.ci_high,
                         "call_pairs": f.call_pairs, "process_pairs": f.process_pairs,
                         "reference_median": own.median if own else None, "host": host})
    return rows


def database_url(url: str | None) -> tuple[URL, dict[str, Any]]:
    """The history database's URL as SQLAlchemy reads it (HARNESS_HISTORY_URL or results/history.sqlite by default),
    a SQLite file's folder made, and the connection arguments every user of it connects with (the history, the tuning
    studies); one line (exit 2) for what is no database URL."""
    url = normalise_url(url or default_history_url())
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise HarnessInputError(None, "history URL", url, "not a database URL (e.g. sqlite:///path or "
                                "postgresql+psycopg://user@host/db)") from None
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise HarnessInputError(None, "history URL", url, "unsupported database; use sqlite:///PATH or "
                                "postgresql+psycopg://USER@HOST/DB") from None
    except ModuleNotFoundError as e:
        raise HarnessInputError(None, "history URL", parsed.render_as_string(hide_password=True),
                                f"database driver not installed: {e.name}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        connect_args["timeout"] = 30  # wait for a concurrent writer instead of failing at once
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = 15  # an unreachable host would otherwise hang the run
    return parsed, connect_args


class HistoryStore(HistoryQueries):
    """The history database at one SQLAlchemy URL; creates its tables when missing."""

    def __init__(self, url: str | None = None):
        parsed, connect_args = database_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.engine: Engine = create_engine(parsed, connect_args=connect_args)
        # every value written or looked up must encode: a path that is not UTF-8, or a --cell given in such bytes,
        # holds lone surrogates (os.fsdecode), which the drivers refuse with a traceback
        event.listen(self.engine, "before_cursor_execute", _valid_parameters, retval=True)
        try:
            metadata.create_all(self.engine)
            migrate(self.engine)
        except DatabaseError as e:  # unreachable server, or a file that is not a database
            reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e).splitlines()[0]
            raise HistoryUnreadable(None, "history URL", self.url, f"cannot open the history database: {reason}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def record_run(self, results: RunResults, run_dir: str | None) -> None:
        """Insert or replace a run (a resumed run updates its row), its per-cell summaries and its cells' ratios
        to their reference side."""
        run_id = results.metadata.run_id
        values = _row_values(results, run_dir)
        with self.engine.begin() as conn:
            # An upsert, not delete-then-insert: baselines keep pointing at the row.
            upsert(conn, runs, {"run_id": run_id}, values)
            for table, rows in ((cell_metrics, _metric_rows(results)), (cell_ratios, _ratio_rows(results))):
                conn.execute(delete(table).where(table.c.run_id == run_id))
                if rows:
                    conn.execute(insert(table), rows)

    def record_ab(self, ab: Any, base: RunResults, candidate: RunResults, ab_dir: str | None) -> None:
        """One A/B comparison (harness/experiment/ab.py's ABResult) linking the two runs it measured."""
        self.record_run(base, str(Path(ab_dir) / "base") if ab_dir else None)
        self.record_run(candidate, str(Path(ab_dir) / "candidate") if ab_dir else None)
        values = {"suite_name": ab.suite_name, "started_at": ab.started_at, "base_run": ab.base_run,
                  "candidate_run": ab.candidate_run, "base_side": ab.base.label(),
                  "candidate_side": ab.candidate.label(), "n_regressions": ab.counts()["regression"],
                  "n_cells": len(ab.cells), "ab_dir": ab_dir, "ab_json": json_of(ab)}
        with self.engine.begin() as conn:
            upsert(conn, ab_records, {"ab_id": ab.ab_id}, values)

    def ab_json(self, ab_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ab_records.c.ab_json).where(ab_records.c.ab_id == ab_id)).first()
        return row[0] if row else None

    def save_bisect(self, record: Any) -> None:
        """Insert or update a bisect's record (harness/experiment/bisect.py's BisectRecord) after each of its steps."""
        values = {"suite_name": record.suite_name, "cell_key": record.cell_key, "metric": record.metric,
                  "status": record.status, "started_at": record.started_at, "updated_at": _now(),
                  "record_json": json_of(record)}
        with self.engine.begin() as conn:
            upsert(conn, bisects, {"bisect_id": record.bisect_id}, values)

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
            upsert(conn, baselines, {"name": name}, {"run_id": run_id, "set_at": _now()})

    def set_triage(self, change: Any, mark: Any) -> None:
        """Record a TriageMark (harness/analyze/changes.py) on a ChangePoint, replacing an earlier one."""
        from harness.analyze.triage import series_ids

        suite, host, cell, metric, reference = series_ids(change)
        key = {"suite_name": suite, "host": host, "cell_key": cell, "metric": metric, "reference": reference,
               "after_run": change.after_run}
        values = {"before_run": change.before_run, "direction": change.direction, "state": mark.state,
                  "note": mark.note, "author": mark.author, "marked_at": mark.marked_at}
        with self.engine.begin() as conn:
            upsert(conn, triage, key, values)

    def clear_triage(self, change: Any) -> bool:
        """Remove the marks a ChangePoint carries (exact or moved by a run); whether there was one."""
        from harness.analyze.triage import series_ids

        suite, host, cell, metric, reference = series_ids(change)
        t = triage.c
        with self.engine.begin() as conn:
            gone = conn.execute(delete(triage).where(
                t.suite_name == suite, t.host == host, t.cell_key == cell, t.metric == metric,
                t.reference == reference, t.after_run.in_([change.after_run, change.before_run])
                | t.before_run.in_([change.after_run, change.before_run]))).rowcount
        return bool(gone)


def load_run(ref: str, url: str | None) -> RunResults:
    """A run directory, a results.json, or a run id / baseline name / last-good from the history."""
    from harness.records.store import load_results

    p = Path(ref)
    if p.exists():
        return load_results(p)
    return HistoryStore(url or default_history_url()).resolve(ref)
