"""`harness metrics`: the metric definitions, as docs/metrics.md holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import write_out


def metrics(out: Annotated[Path | None, typer.Option(help="write the document here (docs/metrics.md)")] = None) -> None:
    """Print the metric definitions (docs/metrics.md)."""
    from reports.metric_docs import markdown_doc

    if out:
        write_out(out, markdown_doc())
    else:
        typer.echo(markdown_doc(), nl=False)
