"""How often `harness compare` cries wolf, and how often it catches a real slowdown (prints figures).

1. A/A: the same build runs the suite K times; every ordered pair of runs is compared. A cell
   called a regression in any metric is a false alarm.
2. Detection: for every pair, the candidate's samples get a fixed delay per generated token equal
   to 5% and 10% of that cell's base TPOT (each token arrives d later than the previous delay,
   so TTFT += d, e2e += n·d, TPOT += d). The delay is added to copies of real runs, so the noise
   between base and candidate stays the machine's own. (A sleep in the streamer would not do: with
   the default paged-attention backend openvino-genai streams from its own thread, and a 5 ms sleep
   per token left generation speed unchanged.)
3. The same pairs under pytest-benchmark's `--benchmark-compare-fail=mean:5%` rule (candidate mean >
   base mean × 1.05), on TPOT and e2e, for comparison.
4. With --history-noise, a second harness column: the same comparisons with the run-to-run noise
   floor `harness compare` takes from the history, estimated for each pair from the *other* runs
   only (leave-pair-out, >= 5 runs needed, so --runs 7 or more).

Run: .venv/bin/python benchmarks/regression_detection.py [--suite suites/smoke.yaml] [--runs 4] [--iterations 10]
     [--processes 6] [--min-measure-s 3]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from harness.analyze.aggregate import summaries
from harness.analyze.compare import compare_runs
from harness.core.metrics import sample_values
from harness.core.schema import RunResults
from harness.records.store import load_results

ROOT = Path(__file__).resolve().parent.parent


def delayed(res: RunResults, delay_ms: dict[str, float]) -> RunResults:
    """A copy of `res` whose cells produce every token delay_ms[key] later (cumulatively)."""
    out = res.model_copy(deep=True)
    for cell in out.cells:
        d = delay_ms.get(cell.key, 0.0)
        for s in cell.samples:
            cum = np.cumsum(s.chunk_tokens) if s.chunk_tokens else np.array([])
            s.chunk_offsets_ms = [o + d * c for o, c in zip(s.chunk_offsets_ms, cum, strict=True)]
            s.end_ns += int(d * s.output_tokens * 1e6)
            s.values = sample_values(s)
        cell.summaries = summaries(cell.samples, cell.cell_values)
    return out


def median_tpot(res: RunResults) -> dict[str, float]:
    return {c.key: c.summaries["tpot_ms"].median for c in res.cells if "tpot_ms" in c.summaries}


def leave_out_noise(others: list[RunResults], key: str, metric: str, min_runs: int = 5) -> tuple[float, int] | None:
    """Robust sd of the log median of one cell's metric over `others` (as the history would give it)."""
    meds = [c.summaries[metric].median for r in others for c in r.cells
            if c.key == key and metric in c.summaries and c.summaries[metric].median > 0]
    if len(meds) < min_runs:
        return None
    logs = np.log(meds)
    return float(1.4826 * np.median(np.abs(logs - np.median(logs)))), len(meds)


def pytest_benchmark_rule(base: RunResults, cand: RunResults, metric: str, pct: float = 5.0) -> set[str]:
    """Cells pytest-benchmark's mean:5% rule would fail (it compares means of the time metric)."""
    flagged = set()
    bc = {c.key: c for c in base.cells}
    for c in cand.cells:
        b = bc.get(c.key)
        if b and metric in b.summaries and metric in c.summaries:
            if c.summaries[metric].mean > b.summaries[metric].mean * (1 + pct / 100):
                flagged.add(c.key)
    return flagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "smoke.yaml"))
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--processes", type=int, default=1, help="worker processes per cell (see CellSpec.processes)")
    ap.add_argument("--min-measure-s", type=float, default=0.0,
                    help="seconds of measured iterations per process (see CellSpec.min_measure_s)")
    ap.add_argument("--reuse", nargs="*", help="existing run directories instead of new runs")
    ap.add_argument("--history-noise", action="store_true",
                    help="also judge with a noise floor from the other runs (leave-pair-out)")
    args = ap.parse_args()

    if args.reuse:
        runs = [load_results(p) for p in args.reuse]
    else:
        tmp = Path(tempfile.mkdtemp(prefix="aa-"))
        data = yaml.safe_load(Path(args.suite).read_text())
        data["iterations"] = args.iterations
        data["processes"] = args.processes
        data["min_measure_s"] = args.min_measure_s
        suite = tmp / "suite.yaml"
        suite.write_text(yaml.safe_dump(data))
        runs = []
        for i in range(args.runs):
            out = tmp / f"run{i}"
            print(f"run {i + 1}/{args.runs} -> {out}", flush=True)
            subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            runs.append(load_results(out))

    pairs = list(itertools.permutations(range(len(runs)), 2))
    rows = []
    floors: list[float] = []
    for label, frac in (("A/A (no change)", 0.0), ("+5% of TPOT per token", 0.05), ("+10% of TPOT per token", 0.10)):
        ours_any = ours_tpot = pb_tpot = pb_e2e = total = noisy_any = 0
        for i, j in pairs:
            base = runs[i]
            cand = delayed(runs[j], {k: frac * v for k, v in median_tpot(base).items()}) if frac else runs[j]
            comp = compare_runs(base, cand)
            noisy = None
            if args.history_noise:
                others = [r for k, r in enumerate(runs) if k not in (i, j)]
                noisy = compare_runs(base, cand, noise=lambda key, metric, o=others: leave_out_noise(o, key, metric))
                for cell in noisy.cells:
                    noisy_any += any(m.verdict == "regression" for m in cell.metrics)
                    if frac == 0.0:
                        floors += [m.effective_threshold for m in cell.metrics
                                   if m.metric == "tpot_ms" and m.effective_threshold is not None]
            for cell in comp.cells:
                if not cell.metrics:
                    continue
                total += 1
                ours_any += any(m.verdict == "regression" for m in cell.metrics)
                ours_tpot += any(m.verdict == "regression" and m.metric == "tpot_ms" for m in cell.metrics)
            pb_tpot += len(pytest_benchmark_rule(base, cand, "tpot_ms"))
            pb_e2e += len(pytest_benchmark_rule(base, cand, "e2e_ms"))
        rows.append((label, total, ours_any / total, ours_tpot / total, pb_tpot / total, pb_e2e / total,
                     noisy_any / total if args.history_noise else None))

    spec0 = runs[0].cells[0].spec
    n_iter = [sum(not s.warmup for s in c.samples) / c.spec.processes for c in runs[0].cells if c.samples]
    print(f"\n{len(runs)} runs x {len(runs[0].cells)} cells, {spec0.processes} process(es) x {spec0.iterations}+ "
          f"measured iterations (min {spec0.min_measure_s:g} s; {np.mean(n_iter):.0f} per process on average); "
          f"{len(pairs)} ordered pairs compared")
    print(f"{'candidate':<26}{'cells':>6}{'harness: any metric':>22}{'harness: TPOT':>16}"
          f"{'pytest-bm mean:5% TPOT':>25}{'pytest-bm e2e':>16}" + (f"{'harness + noise floor':>24}" if args.history_noise else ""))
    for label, total, a, t, pt, pe, nf in rows:
        print(f"{label:<26}{total:>6}{a:>22.1%}{t:>16.1%}{pt:>25.1%}{pe:>16.1%}" + (f"{nf:>24.1%}" if nf is not None else ""))
    if floors:
        q = np.quantile(floors, [0.1, 0.5, 0.9]) * 100
        print(f"\nNoise floor on TPOT (smallest change the harness will call, from the other runs' medians): "
              f"median {q[1]:.0f}%, 10th–90th percentile {q[0]:.0f}–{q[2]:.0f}% over cells and pairs.")
    print("\nA/A row: share of cells wrongly called regressions (goal <= 5%). Other rows: share detected "
          "(goal >= 95% at 10%).")


if __name__ == "__main__":
    main()
