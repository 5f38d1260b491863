"""Goodput of a concurrency sweep: the highest concurrency whose cell still meets every gate (SLO).

Cells of one sweep share everything but `concurrency`; the suite's gates (e.g. ttft_ms p90 <= 1000,
tpot_ms p90 <= 100) are the service-level objectives."""

from __future__ import annotations

from dataclasses import dataclass

from harness.schema import CellResult


@dataclass
class SweepLimit:
    sweep: str  # the cell key with the concurrency left out
    gates: list[str]  # the SLOs, as described by the gates
    tried: list[int]  # concurrencies measured (ok cells), ascending
    max_within: int | None  # highest concurrency meeting every gate, None when none does
    first_failing: int | None  # lowest concurrency that missed a gate
    failed_gates: list[str]  # what the first failing concurrency missed


def sweep_key(c: CellResult) -> str:
    """The cell key with its concurrency replaced by `*`: the same for every cell of one sweep."""
    conc = c.spec.scenario.params.get("concurrency")
    return c.key.replace(f"concurrency={conc}", "concurrency=*", 1)


def sweep_limits(cells: list[CellResult]) -> list[SweepLimit]:
    """One SweepLimit per continuous-batching sweep whose cells carry gates."""
    sweeps: dict[str, list[CellResult]] = {}
    for c in cells:
        if c.status == "ok" and "concurrency" in c.spec.scenario.params and c.spec.gates:
            sweeps.setdefault(sweep_key(c), []).append(c)
    out = []
    for key, group in sweeps.items():
        group.sort(key=lambda c: int(c.spec.scenario.params["concurrency"]))
        max_within = first_failing = None
        failed: list[str] = []
        for c in group:
            gates = [ch for ch in c.checks if ch.name.startswith("gate: ")]
            bad = [f"{ch.name.removeprefix('gate: ')} ({ch.detail})" for ch in gates if ch.status != "pass"]
            conc = int(c.spec.scenario.params["concurrency"])
            if bad:
                if first_failing is None:
                    first_failing, failed = conc, bad
            elif first_failing is None:
                max_within = conc
        out.append(SweepLimit(sweep=key, gates=[g.describe() for g in group[0].spec.gates],
                              tried=[int(c.spec.scenario.params["concurrency"]) for c in group],
                              max_within=max_within, first_failing=first_failing, failed_gates=failed))
    return out
