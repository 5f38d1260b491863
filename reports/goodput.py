"""Goodput of a load sweep: the highest concurrency (or request rate) whose cell still meets every gate.

Cells of one sweep share everything but `concurrency` (closed loop, continuous batching or serving) or
`rate` (open loop serving); the suite's gates (e.g. ttft_ms p90 <= 1000, tpot_ms p90 <= 100) are the
service-level objectives."""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.schema import CellResult

SWEEP_AXES = ("concurrency", "rate")


@dataclass
class SweepLimit:
    sweep: str  # the cell key with the swept value left out
    axis: str  # concurrency or rate
    gates: list[str]  # the SLOs, as described by the gates
    tried: list[float]  # values measured (ok cells), ascending
    max_within: float | None  # highest value meeting every gate, None when none does
    first_failing: float | None  # lowest value that missed a gate
    failed_gates: list[str]  # what the first failing value missed


def sweep_axis(c: CellResult) -> str | None:
    """The load axis a cell belongs to a sweep over, if any."""
    return next((a for a in SWEEP_AXES if a in c.spec.scenario.params), None)


def sweep_value(c: CellResult) -> float:
    v = float(c.spec.scenario.params[sweep_axis(c) or "concurrency"])
    return int(v) if v.is_integer() else v


def sweep_key(c: CellResult) -> str:
    """The cell key with its concurrency (or rate) replaced by `*`: the same for every cell of one sweep."""
    axis = sweep_axis(c)
    if axis is None:
        return c.key
    return c.key.replace(f"{axis}={c.spec.scenario.params[axis]}", f"{axis}=*", 1)


def sweep_limits(cells: list[CellResult]) -> list[SweepLimit]:
    """One SweepLimit per concurrency or rate sweep whose cells carry gates."""
    sweeps: dict[str, list[CellResult]] = {}
    for c in cells:
        if c.status == "ok" and sweep_axis(c) and c.spec.gates:
            sweeps.setdefault(sweep_key(c), []).append(c)
    out = []
    for key, group in sweeps.items():
        group.sort(key=sweep_value)
        max_within = first_failing = None
        failed: list[str] = []
        for c in group:
            gates = [ch for ch in c.checks if ch.gate is not None]
            bad = [f"{ch.gate.describe()} ({ch.detail})" for ch in gates if ch.gate and ch.status != "pass"]
            if bad:
                if first_failing is None:
                    first_failing, failed = sweep_value(c), bad
            elif first_failing is None:
                max_within = sweep_value(c)
        out.append(SweepLimit(sweep=key, axis=sweep_axis(group[0]) or "concurrency",
                              gates=[g.describe() for g in group[0].spec.gates], tried=[sweep_value(c) for c in group],
                              max_within=max_within, first_failing=first_failing, failed_gates=failed))
    return out
