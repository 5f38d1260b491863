"""A cell against its reference side (`CellSpec.reference_side`): the two measured interleaved, call by call, in
pairs of worker processes; each metric's ratio candidate / reference is the geometric mean of the paired calls'
ratios, with an interval that counts the process pairs' own offsets (`stats.clustered_geomean_ratio_ci`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.core.metrics import METRICS, unknown_tags
from harness.core.schema import RatioFigure, ReferenceRatios, ReferenceSide
from harness.core.stats import clustered_geomean_ratio_ci, summarize


@dataclass(frozen=True)
class ProcessPairValues:
    """One candidate and one reference worker process driven in lockstep: per metric tag, each side's value of
    every call pair, in call order (index i of both sides is one pair). A per-process figure (load time, peak
    memory) is one value a side."""

    candidate: Mapping[str, Sequence[float]]
    reference: Mapping[str, Sequence[float]]
    sliced: bool = False  # the call pairs ran in slices (harness/execute/paired.py)


def _usable(c: float, r: float) -> bool:
    return math.isfinite(c) and math.isfinite(r) and c > 0 and r > 0


def vs_reference(reference: ReferenceSide, runtime_versions: Mapping[str, str | None],
                 pairs: Sequence[ProcessPairValues]) -> ReferenceRatios:
    """The cell's ratios to its reference side from the paired values of its process pairs; a call pair with a
    value that is not positive and finite on either side is left out (a ratio needs both). ValueError for a tag the
    metric registry lacks, or a metric whose two sides hold different numbers of calls in a process pair."""
    tags = list(dict.fromkeys(t for p in pairs for t in (*p.candidate, *p.reference)))
    if unknown := unknown_tags(tags):
        raise ValueError(f"paired values under tags the metric registry lacks: {', '.join(unknown)}")
    ratios: list[RatioFigure] = []
    summaries = {}
    for tag in tags:
        groups: list[list[float]] = []
        for i, p in enumerate(pairs):
            if tag not in p.candidate or tag not in p.reference:
                continue
            cand, ref = p.candidate[tag], p.reference[tag]
            if len(cand) != len(ref):
                raise ValueError(f"{tag}: process pair {i} has {len(cand)} candidate and {len(ref)} reference calls")
            group = [c / r for c, r in zip(cand, ref, strict=True) if _usable(c, r)]
            if group:
                groups.append(group)
        if own := summarize([v for p in pairs for v in p.reference.get(tag, ())]):
            summaries[tag] = own
        if not groups:
            continue
        est = clustered_geomean_ratio_ci(groups)
        ratio = est[0] if est else groups[0][0]  # one call pair: its ratio, without an interval
        ratios.append(RatioFigure(metric=tag, ratio=ratio, ci_low=est[1] if est else None,
                                  ci_high=est[2] if est else None, call_pairs=sum(map(len, groups)),
                                  process_pairs=len(groups), higher_is_better=METRICS[tag].higher_is_better))
    return ReferenceRatios(label=reference.label, description=reference.side.label(),
                           runtime_versions=dict(runtime_versions), ratios=ratios, summaries=summaries,
                           sliced=bool(pairs) and all(p.sliced for p in pairs))
