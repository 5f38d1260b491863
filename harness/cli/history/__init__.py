"""Command line of the history database: `harness history [changes | record | triage | publish]` and `harness baseline set|list`,
a module per command.

`harness.analyze.history` (and with it SQLAlchemy) is imported inside the commands so other commands
start without it."""

from __future__ import annotations

import typer

from harness.cli.history.baseline import baseline_list, baseline_set
from harness.cli.history.changes import changes
from harness.cli.history.publish import publish
from harness.cli.history.record import record
from harness.cli.history.runs import history
from harness.cli.history.triage import triage


def register(app: typer.Typer) -> None:
    """Add `history` and `baseline` to the harness's command line."""
    history_app = typer.Typer(help="Runs recorded in the history database, and a metric's trend for a cell.")
    history_app.callback(invoke_without_command=True)(history)
    history_app.command("changes")(changes)
    history_app.command("record")(record)
    history_app.command("triage")(triage)
    history_app.command("publish")(publish)
    baseline_app = typer.Typer(no_args_is_help=True, help="Named baselines (e.g. last-good) in the history database.")
    baseline_app.command("set")(baseline_set)
    baseline_app.command("list")(baseline_list)
    app.add_typer(history_app, name="history")
    app.add_typer(baseline_app, name="baseline")
