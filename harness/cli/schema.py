"""`harness schema`: the JSON Schema of results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import write_out


def schema(out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None) -> None:
    """Print the JSON Schema of results.json."""
    import json

    from harness.records.result_schema import json_schema

    text = json.dumps(json_schema(), indent=1) + "\n"
    if out:
        write_out(out, text)
    else:
        typer.echo(text, nl=False)
