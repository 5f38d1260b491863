"""`harness history triage`: a team's verdict on a change point (acknowledged / expected / fixed), kept in the
history, shown by `history changes` and `history publish`, and honoured by the `--recent` gate."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.common import err_console, wide_console
from harness.cli.history.common import DbOpt, open_store
from harness.core.errors import HarnessInputError


def triage(
    change: Annotated[str | None, typer.Argument(help="the change point's id (cp-…, as `history changes` and the "
                                                       "published site show it)", show_default=False)] = None,
    state: Annotated[str | None, typer.Option(help="acknowledged | expected | fixed", show_default=False)] = None,
    note: Annotated[str, typer.Option(help="why: a bug link, the change that explains it, ...")] = "",
    author: Annotated[str | None, typer.Option(help="who (default: $USER)", show_default=False)] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove the change point's mark")] = False,
    db: DbOpt = None,
) -> None:
    """Mark a change point acknowledged, expected or fixed with a note (stored in the history database); without
    an id, list the marks. A marked regression no longer fails `history changes --recent`."""
    from harness.analyze.changes import TRIAGE_STATES, TriageMark
    from harness.analyze.history_changes import find_change

    if change is None:
        if state is not None or clear:
            raise HarnessInputError("command line", "CHANGE", "", "name the change point to mark (its cp-… id)")
        _list(db)
        return
    if clear == (state is not None):
        raise HarnessInputError("command line", "--state", state or "", "give either --state "
                                f"{'|'.join(TRIAGE_STATES)} or --clear")
    if state is not None and state not in TRIAGE_STATES:
        raise HarnessInputError("command line", "--state", state, f"choose from {', '.join(TRIAGE_STATES)}")
    with open_store(db) as store:
        found = find_change(store, change.strip())
        if found is None:
            raise HarnessInputError(store.url, "CHANGE", change, "no change point with this id in the history's "
                                    "series now (see `harness history changes`)")
        if clear:
            if not store.clear_triage(found):
                raise HarnessInputError(store.url, "CHANGE", change, "has no triage mark")
            err_console.print(f"cleared the mark of {found.id}: {found.label()}", highlight=False)
            return
        mark = TriageMark(state=state, note=note.strip(), author=author or os.environ.get("USER") or None,
                          marked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          marked_run=found.after_run)
        store.set_triage(found, mark)
    err_console.print(f"{found.id} {state}: {found.label()} {found.direction} from run {found.after_run}",
                      highlight=False)


def _list(db: str | None) -> None:
    from harness.analyze.changes import series_label

    with open_store(db) as store:
        marks = store.triage_marks()
    if not marks:
        err_console.print("no triage marks", highlight=False)
        return
    table = Table("series", "first run at the new level", "state", "note", "by", "at")
    for m in sorted(marks, key=lambda m: m.mark.marked_at, reverse=True):
        table.add_row(series_label(*m.series), m.after_run, m.mark.state, m.mark.note, m.mark.author or "", m.mark.marked_at)
    wide_console().print(table)
