"""Reading and writing a run directory.

`cells.jsonl` is the append-only record: one finished cell a line, flushed and fsynced, so an
interrupted run keeps every finished cell. `metadata.json` is written at the start.
`results.json` (the versioned schema) is assembled from both and rewritten atomically."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from harness.core.errors import HarnessInputError
from harness.core.escaping import json_of
from harness.core.input_files import MAX_METADATA_BYTES, MAX_RECORDS_BYTES, invalid, load_json, read_bytes
from harness.core.schema import SCHEMA_VERSION, CellResult, RunMetadata, RunResults
from harness.records.result_schema import read_cell, unknown_kind, upgraded
from harness.records.run_files import checked_path, open_for_append, write_whole

CELLS = "cells.jsonl"
METADATA = "metadata.json"
RESULTS = "results.json"
LOCK = ".lock"


def append_cell(run_dir: Path, result: CellResult) -> None:
    """Append one record. A torn last line (the disk filled, or the process died mid-write) is closed with a
    newline first, so the new record stands on a line of its own instead of being glued to the fragment."""
    with open_for_append(run_dir, CELLS) as f:
        if f.tell() > 0:
            with open(run_dir / CELLS, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write(json_of(result).encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())


def scan_cells(run_dir: Path) -> tuple[list[CellResult], list[int]]:
    """Finished cells, and the line numbers of records that cannot be read (torn or damaged lines)."""
    path = run_dir / CELLS
    if not path.exists():
        return [], []
    out: list[CellResult] = []
    bad: list[int] = []
    for n, line in enumerate(read_bytes(path, "cell records file", MAX_RECORDS_BYTES).split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(read_cell(line))
        except ValueError:  # pydantic's ValidationError too
            bad.append(n)
    return out, bad


def load_cells(run_dir: Path) -> list[CellResult]:
    """Finished cells; unreadable records are left out (scan_cells says which)."""
    return scan_cells(run_dir)[0]


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Hold the run directory for this process (released when the returned file closes or the process dies,
    so a crashed run leaves no stale lock). A second harness on the same directory gets one clear line."""
    f = open(checked_path(run_dir, LOCK), "a+", encoding="utf-8")  # noqa: SIM115 - held for the caller's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise HarnessInputError(str(run_dir), None, None, f"in use by another harness run (pid {holder}); "
                                "wait for it to finish") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def write_metadata(run_dir: Path, meta: RunMetadata) -> None:
    write_whole(run_dir, METADATA, json_of(meta, indent=2))


def load_metadata(run_dir: Path) -> RunMetadata:
    path = run_dir / METADATA
    if not path.exists():
        raise HarnessInputError(str(run_dir), None, None, "not a run directory (no metadata.json)")
    data = load_json(path, "run metadata file", MAX_METADATA_BYTES)
    try:
        return RunMetadata.model_validate(data)
    except ValidationError as e:
        raise invalid(e, str(path), "damaged run metadata") from None


def write_results(run_dir: Path, results: RunResults) -> Path:
    return write_whole(run_dir, RESULTS, json_of(results, indent=1))


def load_results(path: str | Path) -> RunResults:
    """Read results.json (or a run directory holding one) and check its schema version."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS
    if not p.is_file():
        raise HarnessInputError(str(p), None, None, "results file not found")
    data = load_json(p, "results file", MAX_RECORDS_BYTES, expect=None)
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is None or str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise HarnessInputError(str(p), "schema_version", None if version is None else str(version)[:40],
                                f"unsupported result schema (this harness reads {SCHEMA_VERSION})")
    try:
        results = RunResults.model_validate(data)
    except ValidationError as e:
        raise invalid(e, str(p), "not a results file") from None
    for i, cell in enumerate(results.cells):
        why = unknown_kind(cell)
        if why:
            raise HarnessInputError(str(p), f"cells.{i}.spec.scenario.kind", cell.spec.scenario.kind, why)
        upgraded(cell)
    return results
