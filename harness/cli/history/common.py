"""What the history commands share: the --db option, the database it names, and how they show runs."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore

DbOpt = Annotated[str | None, typer.Option(
    "--db", show_default=False,
    help="history database URL, e.g. postgresql+psycopg://user:pw@host/db "
         "(default: $HARNESS_HISTORY_URL, else sqlite:///results/history.sqlite)")]


def open_store(db: str | None) -> HistoryStore:
    from harness.analyze.history import HistoryStore

    return HistoryStore(db)


def when(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")


def run_dir_of(path: Path) -> str:
    path = path.resolve()
    return str(path if path.is_dir() else path.parent)


def similar_cells(key: str, known: Iterable[str]) -> str:
    """'; similar cells: ...' for a cell key the history does not hold, or ''."""
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.5)
    return f"; similar cells: {', '.join(close)}" if close else ""


def parse_since(text: str) -> str:
    """--since as the ISO time (UTC) the history stores."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HarnessInputError("command line", "--since", text, "expected a date such as 2026-11-01 or "
                                "2026-11-01T08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")
