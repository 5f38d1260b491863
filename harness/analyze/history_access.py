"""The history where a command can do without it: recording whose failure is a warning (the results are on
disk), and the run-to-run noise `harness compare` adds to its minimum effects. `harness.analyze.history`, and
with it SQLAlchemy, is imported on use so commands that never touch the history start without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore


class HistoryUnavailable(Exception):
    """The history database could not be opened or written; the message is the cause's."""


def recorded(url: str | None, write: Callable[[HistoryStore], None]) -> str:
    """Apply `write` to the history at `url`; the database's URL, or HistoryUnavailable."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from harness.analyze.history import HistoryStore

        with HistoryStore(url) as store:
            write(store)
    except (ImportError, HarnessInputError, SQLAlchemyError, OSError) as e:
        raise HistoryUnavailable(str(e)) from e
    return store.url


def noise_lookup(url: str | None, exclude: set[str]) -> Callable[..., tuple[float, int] | None]:
    """A (cell key, metric[, config]) -> (sd, runs) lookup over the history, leaving out the runs in `exclude`
    (those being compared); raises whatever keeps the database from opening."""
    from harness.analyze.history import HistoryStore

    store = HistoryStore(url)
    frozen = frozenset(exclude)
    return lambda key, metric, config=None: store.run_to_run_noise(key, metric, exclude=frozen, config=config)
