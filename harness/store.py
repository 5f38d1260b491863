"""Reading and writing a run directory.

`cells.jsonl` is the append-only record: one finished cell a line, flushed and fsynced, so an
interrupted run keeps every finished cell. `metadata.json` is written at the start.
`results.json` (the versioned schema) is assembled from both and rewritten atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from harness.errors import HarnessInputError
from harness.schema import SCHEMA_VERSION, CellResult, RunMetadata, RunResults

CELLS = "cells.jsonl"
METADATA = "metadata.json"
RESULTS = "results.json"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def append_cell(run_dir: Path, result: CellResult) -> None:
    with open(run_dir / CELLS, "a", encoding="utf-8") as f:
        f.write(result.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_cells(run_dir: Path) -> list[CellResult]:
    """Finished cells; a torn last line (the process was killed mid-write) is ignored."""
    path = run_dir / CELLS
    if not path.exists():
        return []
    out: list[CellResult] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(CellResult.model_validate_json(line))
        except ValidationError:
            continue
    return out


def write_metadata(run_dir: Path, meta: RunMetadata) -> None:
    _atomic_write(run_dir / METADATA, meta.model_dump_json(indent=2))


def load_metadata(run_dir: Path) -> RunMetadata:
    path = run_dir / METADATA
    if not path.exists():
        raise HarnessInputError(str(run_dir), None, None, "not a run directory (no metadata.json)")
    return RunMetadata.model_validate_json(path.read_text(encoding="utf-8"))


def write_results(run_dir: Path, results: RunResults) -> Path:
    path = run_dir / RESULTS
    _atomic_write(path, results.model_dump_json(indent=1))
    return path


def load_results(path: str | Path) -> RunResults:
    """Read results.json (or a run directory holding one) and check its schema version."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS
    if not p.is_file():
        raise HarnessInputError(str(p), None, None, "results file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HarnessInputError(str(p), f"line {e.lineno}", None, f"not valid JSON: {e.msg}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is None or str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise HarnessInputError(str(p), "schema_version", version, f"unsupported result schema (this harness reads {SCHEMA_VERSION})")
    try:
        return RunResults.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise HarnessInputError(str(p), loc, None, err["msg"]) from None
