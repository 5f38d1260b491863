"""Can `harness ab` tell a real 5% slowdown from noise on this machine, and in what time? (prints figures)

The slowdowns are physical: `synthetic:small-wide5` / `small-wide10` are the `small` model with a wider
MLP, so every generated token reads ~5% / ~10% more weight bytes and does as much more matrix work.

1. Record (`--record FILE`): the four sides A (small), A' (small again: independent worker processes on
   the same model), W5 and W10 run in rounds, each round one fresh measuring worker process per side in
   a random order, back to back, exactly as `harness ab` runs a round (runner.prepare_cell /
   measure_process). Each process gives its TPOT (median of its iterations) and its wall time.
2. True sizes: the geometric mean of W5/A and W10/A over every round, with a 95% t-interval — a long
   interleaved calibration, not an assumption.
3. Comparisons replayed on the recording (`--analyze FILE`), for every start round of the series:
   - `harness ab`: the sequential rule of harness/experiment/ab.py (judge(): confidence sequence at alpha 0.05, one
     cell, one metric, at least 5 rounds) on the pairs (A, X) from the start round on, until settled or
     the budget's rounds are spent;
   - `harness compare`, two runs: the same number of processes, base first then candidate (the base's
     processes from the start round, the candidate's from the rounds after them: two runs one after
     the other, with the machine's drift between them), judged by compare.decide (Welch t-test on
     log values, bootstrap CI, 5% minimum effect, no history floor);
   - pytest-benchmark's `--benchmark-compare-fail=mean:5%`: the candidate's mean above the base's by 5%.
   False alarms are any verdict but unchanged/inconclusive on A/A' (for ab: regression or improvement);
   detection is a regression verdict on W5 / W10. Windows overlap, so the figures are correlated
   estimates from one recording, not independent trials; `--ab-runs N` adds N real `harness ab` runs
   per condition as an end-to-end check of the replay.
4. The curve: detection of W5 by budget (rounds, and minutes at the recording's mean round time).

Run: .venv/bin/python benchmarks/ab_detection.py --record /tmp/ab-rec.json --minutes 25
     .venv/bin/python benchmarks/ab_detection.py --analyze /tmp/ab-rec.json [--budget-min 10]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = {"A": "synthetic:small", "A2": "synthetic:small", "W5": "synthetic:small-wide5", "W10": "synthetic:small-wide10"}


def record(path: Path, minutes: float, seed: int) -> None:
    from benchmarks.small_sides import prepare_sides
    from harness.analyze.aggregate import median_values
    from harness.execute.runner import measure_process
    from harness.execute.worker_process import ProgressSink

    prepared, options = prepare_sides(SIDES, Path("/tmp/ab-detection-work"))
    rng = random.Random(seed)
    rounds = []
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        order = list(SIDES)
        rng.shuffle(order)
        entry = {"order": order, "tpot_ms": {}, "wall_s": {}, "t": time.time()}
        for side in order:
            t0 = time.monotonic()
            events, status, error = measure_process(prepared[side], len(rounds), options, ProgressSink())
            assert status == "ok", error
            entry["wall_s"][side] = time.monotonic() - t0
            entry["tpot_ms"][side] = median_values(events, prepared[side].cell)["tpot_ms"]
        rounds.append(entry)
        r = entry["tpot_ms"]
        print(f"round {len(rounds)}: " + " ".join(f"{s} {r[s]:.2f}" for s in SIDES), flush=True)
        path.write_text(json.dumps({"sides": SIDES, "rounds": rounds}, indent=0))


def _pairs(rounds, side):
    return [(r["tpot_ms"]["A"], r["tpot_ms"][side]) for r in rounds]


def true_size(rounds, side) -> tuple[float, float, float]:
    from harness.core.stats import geomean_ratio_ci

    return geomean_ratio_ci([x / a for a, x in _pairs(rounds, side)])


def ab_replay(pairs, budget_rounds: int, alpha: float = 0.05, min_rounds: int = 5) -> tuple[str, int]:
    """The sequential rule of harness ab on pairs from one start: (verdict, rounds used)."""
    from harness.experiment.ab import judge

    for n in range(min_rounds, min(budget_rounds, len(pairs)) + 1):
        m = judge("tpot_ms", [a for a, _ in pairs[:n]], [x for _, x in pairs[:n]], alpha, 0.05, 20, min_rounds)
        if m.verdict != "inconclusive":
            return m.verdict, n
    return "inconclusive", min(budget_rounds, len(pairs))


def compare_replay(base: list[float], cand: list[float], rng: np.random.Generator) -> str:
    """`harness compare`'s verdict on two runs of per-process TPOT medians (no history floor)."""
    from harness.analyze.compare import MetricComparison, decide, welch_log_p
    from harness.core.stats import bootstrap_ratio_ci

    x, y = np.asarray(base), np.asarray(cand)
    lo, hi = bootstrap_ratio_ci(x, y, 2000, rng)
    m = MetricComparison(metric="tpot_ms", unit="ms", higher_is_better=False, basis="samples", n_base=len(x),
                         n_candidate=len(y), base_median=float(np.median(x)), candidate_median=float(np.median(y)),
                         ratio=float(np.median(y) / np.median(x)), ci_low=lo, ci_high=hi, p_value=welch_log_p(x, y),
                         threshold=0.05, verdict="inconclusive")
    m.p_adjusted = m.p_value
    return decide(m, 0.05)[0]


def rates(rounds, method: str, side: str, budget_rounds: int, pair_s: float,
          rng: np.random.Generator) -> tuple[float, int, float]:
    """(share of alarms, windows, mean minutes used) over every start with the whole budget in the recording.
    An alarm is a regression (or, for A/A, any change) verdict."""
    n = len(rounds)
    span = budget_rounds if method == "harness ab" else 2 * budget_rounds  # compare: two runs one after the other
    hits, minutes = [], []
    for start in range(n - span + 1):
        if method == "harness ab":
            verdict, used = ab_replay(_pairs(rounds[start:], side), budget_rounds)
            minutes.append(used * pair_s / 60)
        else:
            k = budget_rounds  # the same number of worker processes as ab's budget: k per run
            base = [r["tpot_ms"]["A"] for r in rounds[start:start + k]]
            cand = [r["tpot_ms"][side] for r in rounds[start + k:start + 2 * k]]
            minutes.append(k * pair_s / 60)
            if method.startswith("harness compare"):
                verdict = compare_replay(base, cand, rng)
            else:
                verdict = "regression" if statistics.mean(cand) > 1.05 * statistics.mean(base) else "unchanged"
        hits.append(verdict in ("regression", "improvement") if side == "A2" else verdict == "regression")
    if not hits:
        return float("nan"), 0, float("nan")
    return statistics.mean(hits), len(hits), statistics.mean(minutes)


METHODS = ("harness ab", "harness compare (2 runs)", "pytest-benchmark mean:5%")


def analyze(path: Path, budgets_min: list[float], seed: int) -> None:
    data = json.loads(path.read_text())
    rounds = data["rounds"]
    n = len(rounds)
    pair_s = statistics.mean(r["wall_s"]["A"] + r["wall_s"]["A2"] for r in rounds)  # one A/B round: 2 processes
    print(f"recording: {n} rounds, {statistics.mean(sum(r['wall_s'].values()) for r in rounds):.1f} s per 4-side round; "
          f"one A/B round (2 processes) {pair_s:.1f} s")
    print("\ntrue slowdowns (geometric mean of paired TPOT ratios over every round, 95% t-interval):")
    for side in ("A2", "W5", "W10"):
        g, lo, hi = true_size(rounds, side)
        print(f"  {side:>4}/A: {100 * (g - 1):+.2f}%  [{100 * (lo - 1):+.2f}, {100 * (hi - 1):+.2f}]")
    logs = [math.log(x / a) for a, x in _pairs(rounds, "A2")]
    print(f"  sd of one round's A'/A log ratio: {100 * statistics.stdev(logs):.1f}% (the per-round noise ab faces)")
    rng = np.random.default_rng(seed)
    print("\nBy budget (the same worker processes for every method: ab up to B rounds of 2, compare 2 runs of B "
          "processes one after the other); every start in the recording with the whole budget after it "
          "(overlapping windows: correlated estimates):")
    print(f"{'budget':>14} {'method':<26} {'A/A false alarm':>16} {'detect W5':>10} {'detect W10':>11} "
          f"{'mean min':>9} {'windows':>8}")
    for budget_min in budgets_min:
        b = max(5, int(budget_min * 60 / pair_s))
        for method in METHODS:
            if (b if method == "harness ab" else 2 * b) > n:
                continue
            out = {side: rates(rounds, method, side, b, pair_s, rng) for side in ("A2", "W5", "W10")}
            print(f"{budget_min:>5g} min/{b:>3} r {method:<26} {100 * out['A2'][0]:>15.1f}% {100 * out['W5'][0]:>9.1f}% "
                  f"{100 * out['W10'][0]:>10.1f}% {out['W5'][2]:>9.1f} {out['W5'][1]:>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", type=Path)
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--analyze", type=Path)
    ap.add_argument("--budget-min", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 8, 10])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.record:
        record(a.record, a.minutes, a.seed)
    if a.analyze or a.record:
        analyze(a.analyze or a.record, a.budget_min, a.seed)


if __name__ == "__main__":
    main()
