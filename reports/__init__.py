"""Renderers of `results.json` (the harness's versioned result schema). They read nothing else."""

from __future__ import annotations

from collections.abc import Callable

from harness.core.schema import RunResults
from reports.csv_report import render_csv
from reports.html import render_html
from reports.json_report import render_json
from reports.markdown import render_markdown

RENDERERS: dict[str, Callable[[RunResults], str]] = {
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}
def render(results: RunResults, fmt: str) -> str:
    """Render results in one of RENDERERS' formats."""
    return RENDERERS[fmt](results)
