"""Serving cells measured as several loads (the suite's `processes`: one fresh load each): each load's own
figures, and their mean with a Student-t 95% confidence interval, so a load-to-load difference can be told
from noise. Read from the result schema only: a load is the samples and batch record of one process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.core.metrics import TPOT, TTFT, BatchOutputThroughput, E2ELatency, Goodput, RequestThroughput
from harness.core.schema import BatchRecord, CellResult, Sample
from harness.core.stats import mean_ci
from harness.kinds import kind_spec


@dataclass(frozen=True)
class RepeatedFigure:
    label: str
    per_load: list[float]
    mean: float
    low: float
    high: float


def _batch_value(tag: str) -> Callable[[list[Sample], list[BatchRecord]], float | None]:
    def get(_samples: list[Sample], batches: list[BatchRecord]) -> float | None:
        values = [v for b in batches for v in b.values.get(tag, [])]
        return values[0] if len(values) == 1 else None
    return get


def _sample_stat(tag: str, q: float) -> Callable[[list[Sample], list[BatchRecord]], float | None]:
    def get(samples: list[Sample], _batches: list[BatchRecord]) -> float | None:
        values = [v for s in samples for v in s.values.get(tag, [])]
        return float(np.percentile(values, q)) if values else None
    return get


FIGURES: tuple[tuple[str, Callable[[list[Sample], list[BatchRecord]], float | None]], ...] = (
    ("req/s", _batch_value(RequestThroughput.tag)),
    ("load out tok/s", _batch_value(BatchOutputThroughput.tag)),
    ("goodput req/s", _batch_value(Goodput.tag)),
    ("TTFT p90 ms", _sample_stat(TTFT.tag, 90)),
    ("TPOT p50 ms", _sample_stat(TPOT.tag, 50)),
    ("e2e p90 ms", _sample_stat(E2ELatency.tag, 90)),
)


def repeated_loads(cell: CellResult) -> list[RepeatedFigure]:
    """The cell's per-load figures with their CI; [] unless it is a serving cell with two or more loads."""
    if not kind_spec(cell.spec.scenario.kind).served:
        return []
    loads = sorted({b.process for b in cell.batches if not b.warmup})
    if len(loads) < 2:
        return []
    out = []
    for label, figure in FIGURES:
        per_load = []
        for p in loads:
            value = figure([s for s in cell.samples if s.process == p and not s.warmup],
                           [b for b in cell.batches if b.process == p and not b.warmup])
            if value is not None:
                per_load.append(value)
        ci = mean_ci(per_load) if len(per_load) == len(loads) else None
        if ci is not None:
            out.append(RepeatedFigure(label, per_load, *ci))
    return out
