"""A cell measured against the suite's pinned reference side in the same run: after the cell's own measuring
processes, `process_pairs` pairs of fresh processes (the reference side and the cell, both loaded) take their
calls in ABBA blocks (harness/execute/paired.py), and each metric's ratio cell / reference comes from the call
pairs (harness/analyze/vs_reference.py). The machine's drift over the night falls on both sides of a pair alike,
so the ratio series in the history is what the stack changed, not what the machine did."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from harness.analyze.aggregate import median_values
from harness.analyze.vs_reference import ProcessPairValues, vs_reference
from harness.core.events import Runtime
from harness.core.schema import CellSpec, ReferenceRatios
from harness.execute.paired import process_pair
from harness.plan.sides import apply_side

if TYPE_CHECKING:
    from harness.execute.run_options import RunOptions
    from harness.execute.runner import PreparedCell
    from harness.execute.worker_process import ProgressSink


def reference_cell(cell: CellSpec) -> CellSpec:
    """The cell as its reference side runs it (same key, so both sides' values line up)."""
    assert cell.reference_side is not None
    return apply_side(cell, cell.reference_side.side).model_copy(update={"reference_side": None})


def measure_vs_reference(prepared: PreparedCell, ref: PreparedCell | None, options: RunOptions,
                         progress: ProgressSink) -> tuple[ReferenceRatios | None, str | None]:
    """The cell's ratios to its reference side (`ref`, prepared by the runner from `reference_cell`; None when the
    kind cannot pair calls), and a note when they are missing or cut short (the reference side could not be
    prepared or failed, the two sides did not fit in memory together, the kind cannot pair calls). Never raises
    for the reference side's own failures: they cost the cell only its ratios."""
    cell = prepared.cell
    reference = cell.reference_side
    assert reference is not None
    label = f"reference side {reference.label}"
    if ref is None:
        return None, f"{label}: a {cell.scenario.kind} cell cannot pair its calls; no ratios"
    ref_cell = ref.cell
    if ref.status != "ok":
        return None, f"{label}: not prepared: {ref.error or ref.status}"
    rng = random.Random(cell.key)  # the order of sides and blocks: random, and the same in a rerun of the cell
    pairs: list[ProcessPairValues] = []
    versions: dict[str, str | None] = {}
    note = None
    blocks = reference.blocks
    for p in range(reference.process_pairs):
        pp = process_pair({"base": ref, "candidate": prepared}, p, blocks, cell.warmup + 2 * blocks * p, rng,
                          options, progress, reference.slice_ms)
        if pp.no_room is not None:
            note = f"{label}: {pp.no_room}"
            break
        versions = next((e.versions for e in pp.events.get("base", []) if isinstance(e, Runtime)), versions)
        if pp.errors:
            note = f"{label}, process pair {p + 1}: " + "; ".join(f"{s}: {e}" for s, e in pp.errors.items())
            break
        pairs.append(_values(pp.pairs, prepared.cell, ref_cell, pp.sliced))
    if not pairs:
        return None, note or f"{label}: no call pair measured"
    return vs_reference(reference, versions, pairs), note


def _values(call_pairs: list, cell: CellSpec, ref_cell: CellSpec, sliced: bool) -> ProcessPairValues:
    """Each side's value of every metric per call pair; a metric only where both sides have it in every pair."""
    cand = [median_values(p.events["candidate"], cell) for p in call_pairs]
    ref = [median_values(p.events["base"], ref_cell) for p in call_pairs]
    tags = [t for t in (cand[0] if cand else {}) if all(t in c and t in r for c, r in zip(cand, ref, strict=True))]
    return ProcessPairValues(candidate={t: [c[t] for c in cand] for t in tags},
                             reference={t: [r[t] for r in ref] for t in tags}, sliced=sliced)
