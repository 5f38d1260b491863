"""`harness baseline set | list`: named baselines (e.g. last-good) in the history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.common import err_console, wide_console
from harness.cli.history.common import DbOpt, open_store, run_dir_of
from harness.core.errors import HarnessInputError


def baseline_set(
    name: Annotated[str, typer.Argument(help="baseline name, e.g. last-good")],
    run: Annotated[str, typer.Argument(help="run id, baseline name, last-good, or a run directory / "
                                            "results.json (recorded first when missing)")],
    db: DbOpt = None,
) -> None:
    """Point a named baseline at a run."""
    from harness.records.store import load_results

    if not name.strip():
        raise HarnessInputError("command line", "NAME", name, "a baseline needs a name")
    with open_store(db) as store:
        path = Path(run)
        if path.exists():
            results = load_results(path)
            if not store.has_run(results.metadata.run_id):
                store.record_run(results, run_dir_of(path))
        else:
            results = store.resolve(run)
        store.set_baseline(name, results.metadata.run_id)
    err_console.print(f"baseline {name} -> run {results.metadata.run_id}", highlight=False)


def baseline_list(db: DbOpt = None) -> None:
    """Show the named baselines."""
    with open_store(db) as store:
        named = store.baselines()
        if not named:
            err_console.print(f"no baselines in {store.url}", highlight=False)
            return
        table = Table("baseline", "run", title=f"baselines in {store.url}")
        for name, run_id in named.items():
            table.add_row(name, run_id)
        wide_console().print(table)
