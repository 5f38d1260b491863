"""`harness report`: a run's results rendered again, or its qualification or release verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import write_out
from harness.core.errors import HarnessInputError
from harness.core.escaping import json_of


def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory or results.json")],
    format: Annotated[str, typer.Option("--format", "-f", help="md | csv | json | html")] = "md",
    kind: Annotated[str, typer.Option(help="run | qualification | release")] = "run",
    out: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
    db: Annotated[str | None, typer.Option(help="history database for the HTML trend charts (env HARNESS_HISTORY_URL; "
                                              "default: history.sqlite beside the run directory)")] = None,
) -> None:
    """Re-render a run's results (a run report, or a qualification / release verdict)."""
    from harness.records.store import load_results
    from reports import RENDERERS, render
    from reports.verdicts import render_qualification, render_release

    kinds = {"qualification": render_qualification, "release": render_release}
    if kind != "run" and kind not in kinds:
        raise HarnessInputError("command line", "--kind", kind, "choose from run, qualification, release")
    if format not in RENDERERS:
        raise HarnessInputError("command line", "--format", format, f"unknown format; choose from {', '.join(RENDERERS)}")
    if kind == "release":
        from harness.experiment.ab_session import find_ab

        record = find_ab(run_dir, db)
        if record is not None:
            from reports.ab_report import render_ab_html, render_ab_md

            _write(render_ab_html(record) if format == "html" else (
                json_of(record, indent=1, ascii_only=True) if format == "json" else render_ab_md(record)), out)
            return
    results = load_results(run_dir)
    if kind in kinds:
        text = kinds[kind](results)
    elif format == "html":
        from harness.analyze.history import default_history_url
        from harness.cli.history.recording import history_trends
        from reports.html import render_html

        folder = run_dir if run_dir.is_dir() else run_dir.parent  # the history the run was recorded in
        text = render_html(results, trends=history_trends(results, db or default_history_url(beside=folder)))
    else:
        text = render(results, format)
    _write(text, out)


def _write(text: str, out: Path | None) -> None:
    if out:
        write_out(out, text)
    else:
        typer.echo(text)
