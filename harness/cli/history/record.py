"""`harness history record`: runs already on disk into the history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import err_console
from harness.cli.history.common import DbOpt, open_store, run_dir_of


def record(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories or results.json files")],
    db: DbOpt = None,
) -> None:
    """Import existing runs into the history (re-recording a run replaces it)."""
    from harness.records.store import load_results

    with open_store(db) as store:
        for path in run_dirs:
            results = load_results(path)
            store.record_run(results, run_dir_of(path))
            err_console.print(f"recorded {results.metadata.run_id} ({len(results.cells)} cells) from {path}",
                              highlight=False)
