"""Fidelity statistics: the harness's readings against the bare reference loop (harness/execute/reference.py) on the same
IR, prompts and settings, each in a fresh process, so a slowdown the harness itself causes shows as a
ratio above 1 (below 1 for tok/s).

The harness side is the cell's own metric values; the reference side is openvino-genai's PerfMetrics
(TTFT, TPOT, as llm_bench reads them) and the caller's wall clock (tok/s = tokens / generate() time).
Each worker process is paired with one reference process run right after it (before it, for odd
processes), and a pair's ratio is the ratio of their medians."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from harness.core.metrics import (
    METRICS,
    TPOT,
    TTFT,
    FidelityThroughput,
    FidelityTPOT,
    FidelityTTFT,
    OutputThroughput,
    ReferenceOutputThroughput,
    ReferenceTPOT,
    ReferenceTTFT,
)
from harness.core.schema import BatchRecord, CellSpec, ReferenceRecord, Sample
from harness.core.stats import bootstrap_ratio_ci, geomean_ratio_ci
from harness.kinds import kind_spec


@dataclass(frozen=True)
class Comparison:
    """One reading compared: the harness's metric, the reference's field, the cell values they give."""

    metric: str
    field: str
    reference_tag: str
    ratio_tag: str
    judged: bool  # the check judges decoding speed; TTFT is reported beside it


TPOT_PAIR = Comparison(TPOT.tag, TPOT.tag, ReferenceTPOT.tag, FidelityTPOT.tag, True)
TTFT_PAIR = Comparison(TTFT.tag, TTFT.tag, ReferenceTTFT.tag, FidelityTTFT.tag, False)
TPS_PAIR = Comparison(OutputThroughput.tag, OutputThroughput.tag, ReferenceOutputThroughput.tag, FidelityThroughput.tag, True)


def comparisons(cell: CellSpec) -> list[Comparison]:
    """What is compared: TPOT, TTFT and tok/s; for a kind whose tok/s is the whole batch's, batch tok/s, with
    TTFT and TPOT only at one request per call (the bare loop's PerfMetrics are the batch's)."""
    kind = kind_spec(cell.scenario.kind)
    metric = kind.throughput_metric
    if METRICS[metric].scope != "batch":
        return [TPOT_PAIR, TTFT_PAIR, TPS_PAIR]
    tps = Comparison(metric, OutputThroughput.tag, ReferenceOutputThroughput.tag, FidelityThroughput.tag, True)
    return [TPOT_PAIR, TTFT_PAIR, tps] if kind.params.of(cell).requests_per_call() == 1 else [tps]


def _reference_values(records: list[ReferenceRecord], c: Comparison) -> list[float]:
    return [getattr(r, c.field) for r in records if not r.warmup]


def _harness_values(samples: list[Sample], batches: list[BatchRecord], c: Comparison) -> list[float]:
    records = batches if METRICS[c.metric].scope == "batch" else samples
    return [v for s in records if not s.warmup for v in s.values.get(c.metric, [])]


def pair_ratios(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                reference: list[ReferenceRecord]) -> dict[Comparison, list[float]]:
    """harness / reference per worker process (one pair each): the ratio of their medians."""
    out: dict[Comparison, list[float]] = {c: [] for c in comparisons(cell)}
    for p in sorted({r.process for r in reference}):
        ref = [x for x in reference if x.process == p]
        for c in out:
            h = _harness_values([s for s in samples if s.process == p], [b for b in batches if b.process == p], c)
            r = _reference_values(ref, c)
            if h and r and statistics.median(r) > 0:
                out[c].append(statistics.median(h) / statistics.median(r))
    return out


def fidelity_values(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                    reference: list[ReferenceRecord]) -> dict[str, float]:
    """Cell values: the reference medians (its processes pooled) and the geometric mean pair ratios."""
    out = {}
    for c, ratios in pair_ratios(cell, samples, batches, reference).items():
        r = _reference_values(reference, c)
        if r:
            out[c.reference_tag] = statistics.median(r)
        if ratios:
            out[c.ratio_tag] = math.exp(statistics.mean(math.log(x) for x in ratios))
    return out


def ratio_interval(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                   reference: list[ReferenceRecord], c: Comparison) -> tuple[float, float, float] | None:
    """harness / reference for one comparison with its 95% interval: over the pairs when there are three or
    more (geometric mean, t-interval on log ratios), else over the iterations of all pairs pooled (ratio
    of medians, bootstrap; a t-interval from two pairs has one degree of freedom and says nothing).
    None when either side has no value."""
    ratios = pair_ratios(cell, samples, batches, reference)[c]
    if len(ratios) >= 3:
        return geomean_ratio_ci(ratios)
    h = np.asarray(_harness_values(samples, batches, c), dtype=float)
    r = np.asarray(_reference_values(reference, c), dtype=float)
    if h.size == 0 or r.size == 0 or not np.all(r > 0):
        return None
    lo, hi = bootstrap_ratio_ci(r, h, 2000, np.random.default_rng(0))
    return float(np.median(h) / np.median(r)), lo, hi
