"""Command line: the one typer app, `harness run`, and the entry point; every other command has its module
here (harness/cli/<command>.py, harness/cli/history/)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import typer

from harness.cli.ab import ab
from harness.cli.bisect import bisect
from harness.cli.common import err_console
from harness.cli.compare import compare
from harness.cli.devices import devices
from harness.cli.history import register as register_history
from harness.cli.host import host
from harness.cli.metrics import metrics
from harness.cli.prepare import prepare
from harness.cli.report import report
from harness.cli.run import run
from harness.cli.schema import schema
from harness.cli.serve import serve
from harness.cli.tune import tune
from harness.core.console import styled
from harness.core.errors import EXIT_NOT_JUDGED, HarnessInputError, HistoryUnreadable, ModelPreparationError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark and validate the OpenVINO generative-AI stack.")
DEFAULT_RESULTS = Path("results")


# in the order --help lists them
for command in (run, report, compare, serve, devices, host, prepare, schema, metrics):
    app.command()(command)
register_history(app)
app.command()(ab)
app.command()(bisect)
app.command()(tune)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2, a history database that cannot be read or a full
    disk one line and exit code 3 (nothing could be judged); tracebacks only with --debug. README, "Exit codes"."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        rc = app(args=argv, prog_name="harness", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except HistoryUnreadable as e:
        if debug:
            raise
        err_console.print(styled("red", "error:", e))
        sys.exit(EXIT_NOT_JUDGED)
    except (HarnessInputError, ModelPreparationError) as e:
        if debug:
            raise
        err_console.print(styled("red", "error:", e))
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except OSError as e:  # a full disk, a read-only or missing folder, a name too long: one line
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        err_console.print(styled("red", "error:", f"{where}{e.strerror or e}"))
        # a path the user gave that cannot be used is bad input; a full or failing disk is not, and leaves
        # nothing that could be judged
        sys.exit(EXIT_NOT_JUDGED if e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT) else 2)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        if _history_failure(e) and not debug:  # a database that opened but cannot be read (a foreign schema)
            err_console.print(styled("red", "error:", f"history database: {_first_line(e)}"))
            sys.exit(EXIT_NOT_JUDGED)
        raise


def _history_failure(e: Exception) -> bool:
    """An error of the history database's driver (SQLAlchemy is imported only by commands that use it)."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(e, exc.DatabaseError)


def _first_line(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
