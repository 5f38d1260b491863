"""The history database's tables, and the two engine-level steps every write needs: bringing an older
database's columns up to date and upserting a row."""

from __future__ import annotations

from typing import Any

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
    insert,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

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
    Column("ci_low", Double),  # the median's 95% interval (Summary.median_ci_low/high); added later, so older rows have none
    Column("ci_high", Double),
    Index("ix_cell_metrics_cell_metric", "cell_key", "metric"),
)

# A cell's ratios to its reference side (CellResult.vs_reference), beside its absolute values in cell_metrics.
# Added after the first databases: create_all adds it to an older one when it is opened.
cell_ratios = Table(
    "cell_ratios", metadata,
    Column("run_id", String, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("cell_key", String, primary_key=True),
    Column("metric", String, primary_key=True),
    Column("reference", String, nullable=False),  # the reference side's label: it names the ratio series
    Column("side", Text, nullable=False),  # what the reference side changes (SideSpec.label())
    Column("ratio", Double, nullable=False),  # candidate / reference
    Column("ci_low", Double),
    Column("ci_high", Double),
    Column("call_pairs", Integer, nullable=False),
    Column("process_pairs", Integer, nullable=False),
    Column("reference_median", Double),  # the reference side's own median
    Column("host", String),  # as cell_metrics.host
    Index("ix_cell_ratios_cell_metric", "cell_key", "metric"),
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

# A team's verdict on a change point (harness/analyze/triage.py): one row per series and first run at the new
# level. reference and host are '' where the series has none, so they can be part of the key.
triage = Table(
    "triage", metadata,
    Column("suite_name", String, primary_key=True),
    Column("host", String, primary_key=True),
    Column("cell_key", String, primary_key=True),
    Column("metric", String, primary_key=True),
    Column("reference", String, primary_key=True),
    Column("after_run", String, primary_key=True),
    Column("before_run", String, nullable=False),  # a later search that moves the point by one run still matches
    Column("direction", String),
    Column("state", String, nullable=False),
    Column("note", Text, nullable=False),
    Column("author", String),
    Column("marked_at", String, nullable=False),
)

baselines = Table(
    "baselines", metadata,
    Column("name", String, primary_key=True),
    Column("run_id", String, ForeignKey("runs.run_id"), nullable=False),
    Column("set_at", String, nullable=False),
)


def migrate(engine: Engine) -> None:
    """Columns added after a database was created (create_all adds tables, never columns)."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(engine).get_columns("cell_metrics")}
    for column, sql_type in (("config", "VARCHAR"), ("host", "VARCHAR"), ("ci_low", "DOUBLE PRECISION"),
                             ("ci_high", "DOUBLE PRECISION")):
        if column not in have:  # runs recorded before have no value there (the median's interval is then unknown)
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE cell_metrics ADD COLUMN {column} {sql_type}"))


def upsert(conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
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

