"""JSON report: the same flat rows as the CSV, with the run's metadata."""

from __future__ import annotations

import json

from harness.core.schema import RunResults
from reports.csv_report import table


def render_json(res: RunResults) -> str:
    """The JSON report of a run (flat rows; results.json stays the full record)."""
    _, rows = table(res)
    return json.dumps({"schema_version": res.schema_version, "metadata": res.metadata.model_dump(mode="json"),
                       "cells": rows}, indent=1)
