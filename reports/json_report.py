"""JSON report: the same flat rows as the CSV, with the run's metadata."""

from __future__ import annotations

from harness.core.escaping import ascii_json
from harness.core.schema import RunResults
from reports.csv_report import table


def render_json(res: RunResults) -> str:
    """The JSON report of a run (flat rows; results.json stays the full record)."""
    _, rows = table(res)
    return ascii_json({"schema_version": res.schema_version, "metadata": res.metadata.model_dump(),
                       "cells": rows}, indent=1)
