"""Backends run one cell inside a worker process.

Each backend is a function `run(cell, models, emit)` (harness/core/backend.py), named by its kind's registry
entry (harness.kinds), that reports through `emit` as typed events (harness/core/events.py)."""

from __future__ import annotations

from collections.abc import Callable

from harness.core.backend import CellModels, Emit
from harness.core.schema import CellSpec
from harness.kinds import kind_spec


def backend_for(kind: str) -> Callable[[CellSpec, CellModels, Emit], None]:
    return kind_spec(kind).run()
