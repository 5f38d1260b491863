"""Backends run one cell inside a worker process.

A kind's registry entry (harness.kinds) names its backend: a `Backend` or `LoadBackend` that the one driver
(driver.py) runs, or a plain function `run(cell, models, emit)`; every one reports through `emit` as typed events
(harness/core/events.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from harness.core.backend import CellModels, Emit
from harness.core.schema import CellSpec
from harness.execute.backends.driver import Backend, LoadBackend, measure_cell, measure_loads
from harness.kinds import kind_spec


def backend_for(cell: CellSpec) -> Callable[[CellSpec, CellModels, Emit], None]:
    """The function that runs the cell in a worker: its kind's backend on the cell's runtime."""
    named = kind_spec(cell.scenario.kind).named_backend(cell.runtime)
    if isinstance(named, Backend):
        return partial(measure_cell, backend=named)
    if isinstance(named, LoadBackend):
        return partial(measure_loads, backend=named)
    return named  # type: ignore[no-any-return]


def call_backend(cell: CellSpec) -> Backend | None:
    """The kind's `Backend` when its calls can be made one at a time on order (a loaded pipeline, one call per
    measured unit: what the paired A/B engine needs); None for kinds measured only as whole processes (a load
    against a server, a plain run function)."""
    named = kind_spec(cell.scenario.kind).named_backend(cell.runtime)
    return named if isinstance(named, Backend) else None
