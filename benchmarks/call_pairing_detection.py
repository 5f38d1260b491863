"""Can `harness ab`, pairing calls, tell a 1%, 2% or 4% slowdown from noise on this machine, and in what time?
And which way of taking a call pair does it better here: slices (both calls at once, one side let run at a time,
switching every `--slice-ms`) or calls one after the other? (prints figures)

The slowdowns are physical: `synthetic:small-wide1` / `-wide2` / `-wide4` are `synthetic:small-random` (the `small`
model's shape, random weights like theirs) with a wider MLP, so each generated token reads ~1% / ~2% / ~4% more
weight bytes and does as much more matrix work. Their true sizes are measured here (below), not assumed. (Against
the trained `small` they were all ~13% slower on an Intel Xeon host: random weights decode slower there, so the
baseline must have random weights too.)

1. Record (`--record FILE --minutes M`): what `harness ab` runs, round after round: a pair of fresh long-lived
   worker processes, A (small-random) and one other side X, both loaded and warmed up in a random order
   (harness/execute/call_worker.py), then `--blocks` ABBA / BAAB blocks (harness/execute/paired.py) on inputs
   numbered on; X rotates through `--rotation` (A2 = small-random again, an A/A pair; W1, W2, W4). Per call: TPOT,
   TTFT, wall time; per process: load time. Written after every set. With `--modes slices calls` the sets
   alternate between the two ways of taking a call pair (the sides rotate alike in both), so the two are measured
   interleaved, on the same host state, and analyzed apart. (Five sides loaded at once, calls in a
   palindrome, was tried first: pairs up to four calls apart on this VM, whose speed jumps between ~12 and ~21
   ms/token within seconds, measured a noise `harness ab` does not face.)
2. True sizes: the mean over X's sets of the set's mean call-pair log ratio X/A, with a 95% t-interval over sets.
3. Comparisons replayed (`--analyze FILE`): `harness ab`'s rule (experiment/ab.py judge(): a set is a round, its
   call pairs' mean log ratio the round's value, the confidence sequence over rounds at alpha 0.05, one metric,
   TPOT, minimum effect `--threshold`, at least 5 rounds) on rounds drawn from the recorded sets in a random order
   without replacement (subsampling: each comparison a random subset of the sets, so comparisons overlap and are
   correlated estimates), until settled or the budget's rounds are spent. A round's time is what a two-sided
   `harness ab` round takes at the recorded speeds: two loads (with warm-up) and 4 x blocks calls. Using the
   first b of the recorded blocks of each set gives the trade-off of calls per process pair.
   False alarms: any verdict but unchanged/inconclusive on A/A2; detection: a regression verdict on W1/W2/W4.

Run: .venv/bin/python benchmarks/call_pairing_detection.py --record /tmp/calls-rec.json --minutes 40
     .venv/bin/python benchmarks/call_pairing_detection.py --analyze /tmp/calls-rec.json [--threshold 0.01]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = {"A": "synthetic:small-random", "A2": "synthetic:small-random", "W1": "synthetic:small-wide1",
         "W2": "synthetic:small-wide2", "W4": "synthetic:small-wide4"}
SLOWER = ("W1", "W2", "W4")


def record(path: Path, minutes: float, blocks: int, seed: int, rotation: list[str], modes: list[str],
           slice_ms: float) -> None:
    from benchmarks.small_sides import prepare_sides
    from harness.analyze.aggregate import median_values
    from harness.execute.paired import process_pair
    from harness.execute.worker_process import ProgressSink

    prepared, options = prepare_sides(SIDES, Path("/tmp/call-pairing-work"), timeout_s=300)
    rng = random.Random(seed)
    sets: list[dict] = []
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        n = len(sets)
        mode = modes[n % len(modes)]
        other = rotation[(n // len(modes)) % len(rotation)]
        t0 = time.monotonic()
        pp = process_pair({"base": prepared["A"], "candidate": prepared[other]}, n, blocks, 1, rng, options,
                          ProgressSink(), slice_ms if mode == "slices" else None)
        assert not pp.errors and pp.no_room is None and pp.sliced == (mode == "slices"), (pp.errors, pp.no_room)
        entry: dict = {"t": time.time(), "mode": mode, "other": other, "wall_s": time.monotonic() - t0,
                       "blocks": pp.blocks, "calls": []}
        for p in pp.pairs:
            for role, side in (("base", "A"), ("candidate", other)):
                values = median_values(p.events[role], prepared[side].cell)
                entry["calls"].append({"side": side, "iteration": p.iteration, "tpot_ms": values.get("tpot_ms"),
                                       "ttft_ms": values.get("ttft_ms")})
        sets.append(entry)
        logs = set_logs(entry, other, "tpot_ms")
        print(f"set {n + 1} {mode}: {other}/A TPOT {100 * math.expm1(statistics.fmean(logs)):+.2f}% (sd of a pair "
              f"{100 * statistics.stdev(logs):.1f}%), {entry['wall_s']:.0f} s", flush=True)
        path.write_text(json.dumps({"sides": SIDES, "blocks": blocks, "slice_ms": slice_ms, "sets": sets}))


def set_logs(entry: dict, side: str, metric: str, blocks: int | None = None) -> list[float]:
    """The set's call pairs' log ratios side / A (the first `blocks` blocks: 2 pairs each)."""
    by: dict[tuple[str, int], float] = {(c["side"], c["iteration"]): c[metric] for c in entry["calls"]}
    iterations = sorted({c["iteration"] for c in entry["calls"]})
    if blocks is not None:
        iterations = iterations[:2 * blocks]
    return [math.log(by[(side, i)] / by[("A", i)]) for i in iterations
            if by.get((side, i)) and by.get(("A", i))]


def round_seconds(sets: list[dict], blocks: int) -> float:
    """What one `harness ab` round with `blocks` blocks takes at the recorded speeds: the recorded process pairs'
    wall time, less the calls of the blocks left out."""
    recorded = statistics.mean(s["wall_s"] for s in sets)
    per_call = recorded / (4 * len(sets[0]["blocks"]) + 2 * 3)  # 2 loads with warm-up ~ 3 calls each
    return recorded - 4 * (len(sets[0]["blocks"]) - blocks) * per_call


def replay(units: list[list[float]], budget_rounds: int, threshold: float, alpha: float = 0.05,
           min_rounds: int = 5) -> tuple[str, int]:
    """harness ab's sequential rule on rounds of call pairs: (verdict, rounds used)."""
    from harness.experiment.ab import judge

    for n in range(min_rounds, min(budget_rounds, len(units)) + 1):
        m = judge("tpot_ms", [1.0] * n, [1.0] * n, alpha, threshold, 20, min_rounds, call_logs=units[:n])
        if m.verdict != "inconclusive":
            return m.verdict, n
    return "inconclusive", min(budget_rounds, len(units))


def _rate(pool: list[list[float]], side: str, rounds: int, threshold: float, trials: int, rng: random.Random,
          shift: float = 0.0, replace: bool = False) -> tuple[float, float]:
    """(share of comparisons alarming, mean rounds used) over `trials` comparisons of `rounds` rounds drawn from
    `pool` (without replacement: a random order of it; with: resampled), each call pair's log ratio + `shift`."""
    hits, used = 0, []
    # resampled: the pool is centred first, so the resampled world's true ratio is exactly 1 + shift (an A/A pool's
    # own chance mean would otherwise be a real effect there, found more surely the longer the budget)
    centre = statistics.fmean(statistics.fmean(u) for u in pool) if replace else 0.0
    for _ in range(trials):
        units = [rng.choice(pool) for _ in range(rounds)] if replace else rng.sample(pool, rounds)
        verdict, n = replay([[x - centre + shift for x in u] for u in units], rounds, threshold)
        hits += verdict in ("regression", "improvement") if side == "A2" else verdict == "regression"
        used.append(n)
    return hits / trials, statistics.mean(used)


def analyze(path: Path, budgets_min: list[float], threshold: float, trials: int, seed: int,
            blocks_options: list[int]) -> None:
    data = json.loads(path.read_text())
    for mode in dict.fromkeys(s.get("mode", "calls") for s in data["sets"]):  # recordings before modes: calls
        print(f"\n=== call pairs taken as {mode}" + (f" of {data['slice_ms']:g} ms" if mode == "slices" else ""))
        _analyze_sets(data, [s for s in data["sets"] if s.get("mode", "calls") == mode], budgets_min, threshold,
                      trials, seed, blocks_options)


def _analyze_sets(data: dict, sets: list[dict], budgets_min: list[float], threshold: float, trials: int, seed: int,
                  blocks_options: list[int]) -> None:
    from harness.core.stats import mean_ci, two_level_sd

    by_side = {side: [s for s in sets if s["other"] == side] for side in ("A2", *SLOWER)}
    print(f"recording: {len(sets)} process pairs of {data['blocks']} ABBA blocks ("
          + ", ".join(f"{len(v)} A-{k}" for k, v in by_side.items()) + f"), {statistics.mean(s['wall_s'] for s in sets):.0f} s each")
    print("\ntrue sizes (mean over X's process pairs of the pair's mean call-pair log ratio X/A, 95% t-interval over "
          "process pairs) and the two noise levels:")
    true = {}
    for side, own in by_side.items():
        for metric in ("tpot_ms", "ttft_ms"):
            means = [statistics.fmean(x) for s in own if (x := set_logs(s, side, metric))]
            if len(means) < 2:
                continue
            m, lo, hi = mean_ci(means) or (float("nan"),) * 3
            if metric == "tpot_ms":
                true[side] = m
            levels = two_level_sd([set_logs(s, side, metric) for s in own])
            sd = f"one call pair {100 * levels[0]:.1f}%, process pair offset {100 * levels[1]:.2f}%" if levels else ""
            print(f"  {side:>3}/A {metric:<8} {100 * math.expm1(m):+.2f}% [{100 * math.expm1(lo):+.2f}, "
                  f"{100 * math.expm1(hi):+.2f}]  sd: {sd}")
    rng = random.Random(seed)
    print(f"\nharness ab's rule on TPOT alone (alpha 0.05, minimum effect {100 * threshold:g}%, >= 5 rounds), {trials} "
          "comparisons per cell of the table; budget -> rounds at the recorded round time.")
    print("(a) the real sides: rounds drawn without replacement from that side's recorded process pairs "
          "(overlapping subsets: correlated estimates; '-' where the budget needs more rounds than were recorded)")
    print("(b) A/A process pairs, centred on a ratio of exactly 1, every call pair's log ratio shifted by log(1 + d), "
          "resampled with replacement: the curve of detection against budget for d = 1%, 2%, 4% under the recorded "
          "A/A noise (call-pair noise and process-pair offsets as recorded)")
    for blocks in blocks_options:
        if blocks > data["blocks"]:
            continue
        per_round = round_seconds(sets, blocks)
        pools = {side: [set_logs(s, side, "tpot_ms", blocks) for s in own] for side, own in by_side.items()}
        print(f"\nblocks {blocks} per process pair: a round {per_round:.0f} s")
        print(f"{'budget':>7} {'rounds':>6} | (a) {'A/A alarms':>10} {'W1':>6} {'W2':>6} {'W4':>6} | "
              f"(b) {'A/A alarms':>10} {'+1%':>6} {'+2%':>6} {'+4%':>6} {'min used +2%':>13}")
        for budget in budgets_min:
            b = int(budget * 60 / per_round)
            if b < 5:
                continue
            real = []
            for side in ("A2", *SLOWER):
                ok = len(pools[side]) >= b
                real.append(f"{100 * _rate(pools[side], side, b, threshold, trials, rng)[0]:>5.0f}%" if ok else
                            f"{'-':>6}")
            shifted = [_rate(pools["A2"], "A2", b, threshold, trials, rng, replace=True)]
            shifted += [_rate(pools["A2"], "W", b, threshold, trials, rng, shift=math.log1p(d), replace=True)
                        for d in (0.01, 0.02, 0.04)]
            print(f"{budget:>5g} m {b:>6} | {real[0]:>14} {real[1]:>6} {real[2]:>6} {real[3]:>6} | "
                  f"{100 * shifted[0][0]:>13.1f}% " + " ".join(f"{100 * r:>5.0f}%" for r, _ in shifted[1:])
                  + f" {shifted[2][1] * per_round / 60:>13.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", type=Path)
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--blocks", type=int, default=8, help="blocks per process pair when recording")
    ap.add_argument("--rotation", nargs="+", default=["A2", "W2", "A2", "W2", "W1", "W4"],
                    help="the sides paired with A, set after set")
    ap.add_argument("--modes", nargs="+", choices=["slices", "calls"], default=["slices", "calls"],
                    help="ways of taking a call pair, alternating set after set")
    ap.add_argument("--slice-ms", type=float, default=25)
    ap.add_argument("--analyze", type=Path)
    ap.add_argument("--budget-min", type=float, nargs="+", default=[2, 4, 6, 8, 10, 15, 20])
    ap.add_argument("--use-blocks", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--threshold", type=float, default=0.01, help="minimum effect of the comparison")
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.record:
        record(a.record, a.minutes, a.blocks, a.seed, a.rotation, a.modes, a.slice_ms)
    if a.analyze or a.record:
        analyze(a.analyze or a.record, a.budget_min, a.threshold, a.trials, a.seed, a.use_blocks)


if __name__ == "__main__":
    main()
