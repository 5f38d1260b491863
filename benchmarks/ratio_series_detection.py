"""Nightly ratio series (candidate / reference side): is a 3% shift found within 3 runs? (prints figures; not a test)

A suite's `reference_side` is measured interleaved with every cell, so the history holds each cell's ratio to it
beside the cell's own medians, and `harness history changes` looks for change points in both. The machine's drift
moves both sides alike and cancels in the ratio, so the ratio series is far quieter than the absolute one. This
simulates both kinds of series through the code path `harness history changes` takes (SeriesPoints of a
SeriesKey into `history_changes.changes_in`, each kind of series with its own settings) and prints:

- recall: series of --history runs, then the shift (+3% TPOT, a regression) and --within runs at the new level;
  a hit is a regression change point within ±1 run of the shift. Also how often the nightly gate
  (`--recent WITHIN`) fires on them;
- false change points per 100 runs: unshifted series of 100 runs, every change point counted;
- with --nightly N (first row only: ~95 detections a series): N unshifted series evaluated as a nightly gate
  does, once after every run (`--recent WITHIN` on the series so far): alarms per 100 nights;

for the ratio series at --noise-sd, for the same series under the run medians' settings (what the detector did
before ratio series had their own), for the absolute series at --abs-noise-sd, and with --sweep for other ratio
noise levels. Noise is normal on the log scale, or Student-t with --df degrees of freedom (heavy tails) scaled to
the same sd.

--noise-sd: the sd of a nightly run's log ratio. The figure to use is the one measured on this machine (the paired
engine's nightly ratios, or --from-history on a history holding ratio series: the series' robust noise, as the
detector estimates it). The default 1.5% is the upper end of what is plausible here: the fresh-process A/B rounds
measured an A/A log-ratio sd of 6.5% per pair of processes (README, "Comparing versions"), which includes the drift
between the two processes that calls interleaved in lockstep cancel; a nightly of 19 process pairs would average
that to 6.5% / sqrt(19) = 1.5% even without the call-level pairing. --abs-noise-sd 8%: one run's median moves 8%
run to run here (issue 28).

Run: .venv/bin/python benchmarks/ratio_series_detection.py [--noise-sd 0.015] [--series 1000] [--sweep]
         [--nightly 30] [--df 4] [--from-history sqlite:///results/history.sqlite]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np

from harness.analyze.changes import SeriesKey, SeriesPoint
from harness.analyze.history_changes import ChangeRules, changes_in
from harness.core.metrics import TPOT
from harness.core.schema import ChangeSettings, RatioChangeSettings
from harness.core.stats import successive_sd

RATIO = SeriesKey(suite="nightly", host="h", cell_key="tiny/int8/CPU/greedy/in32-out64", metric=TPOT.tag,
                  reference="r2026.3")
ABSOLUTE = RATIO.model_copy(update={"reference": None})
SWEEP = (0.0075, 0.01, 0.0125, 0.015, 0.02)

Noise = Callable[[int], np.ndarray]


def noise_of(sd: float, df: int, rng: np.random.Generator) -> Noise:
    """Log-scale run noise of sd `sd`: normal, or Student-t with `df` degrees of freedom scaled to that sd."""
    if df:
        scale = sd / math.sqrt(df / (df - 2))
        return lambda n: scale * rng.standard_t(df, n)
    return lambda n: rng.normal(0.0, sd, n)


def points(log_values: np.ndarray) -> list[SeriesPoint]:
    return [SeriesPoint(run_id=f"r{i:04d}", started_at=f"2026-01-01T00:00:00+00:00#{i:04d}", median=float(math.exp(v)))
            for i, v in enumerate(log_values)]


def changes(key: SeriesKey, log_values: np.ndarray, values: ChangeSettings, ratios: RatioChangeSettings) -> list:
    return changes_in({key: points(log_values)}, ChangeRules(values, ratios))


def recall(key: SeriesKey, noise: Noise, n: int, history: int, within: int, shift: float,
           values: ChangeSettings, ratios: RatioChangeSettings) -> tuple[float, float]:
    """(share of series with a regression change point within ±1 run of the shift, share the nightly gate
    `--recent within` flags), `within` runs after it."""
    hits = gate = 0
    for _ in range(n):
        y = noise(history + within) + np.where(np.arange(history + within) >= history, math.log1p(shift), 0.0)
        found = [c for c in changes(key, y, values, ratios) if c.direction == "regression"]
        hits += any(abs(int(c.after_run[1:]) - history) <= 1 for c in found)
        gate += any(c.runs_since <= within for c in found)
    return hits / n, gate / n


def false_per_100(key: SeriesKey, noise: Noise, n: int, values: ChangeSettings, ratios: RatioChangeSettings) -> float:
    return sum(len(changes(key, noise(100), values, ratios)) for _ in range(n)) / n


def nightly_alarms(key: SeriesKey, noise: Noise, n: int, within: int, values: ChangeSettings,
                   ratios: RatioChangeSettings) -> float:
    """Alarms per 100 nights of a gate run after every night on an unshifted series of 100 runs."""
    alarms = nights = 0
    for _ in range(n):
        y = noise(100)
        for end in range(2 * ratios.min_segment, 101):
            nights += 1
            alarms += any(c.direction == "regression" and c.runs_since <= within
                          for c in changes(key, y[:end], values, ratios))
    return 100 * alarms / nights


def measured_noise(url: str) -> float:
    """The median over a history's ratio series of each series' robust noise sd (successive differences)."""
    from harness.analyze.history import HistoryStore

    with HistoryStore(url) as store:
        series = store.ratio_series()
    sds = [successive_sd(np.log([p.median for p in s])) for s in series.values() if len(s) >= 5]
    if not sds:
        sys.exit(f"no ratio series of 5+ runs in {url}")
    print(f"measured ratio noise: {len(sds)} series in {url}, robust sd median {np.median(sds):.4f} "
          f"(range {min(sds):.4f}-{max(sds):.4f})\n")
    return float(np.median(sds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise-sd", type=float, default=0.015, help="sd of a nightly run's log ratio (see above)")
    ap.add_argument("--abs-noise-sd", type=float, default=0.08, help="sd of a nightly run's log median")
    ap.add_argument("--from-history", metavar="URL", help="take --noise-sd from the ratio series of this history")
    ap.add_argument("--shift", type=float, default=0.03)
    ap.add_argument("--within", type=int, default=3, help="runs at the new level when the shift must be found")
    ap.add_argument("--history", type=int, default=30, help="runs before the shift")
    ap.add_argument("--series", type=int, default=1000, help="simulated series per figure")
    ap.add_argument("--nightly", type=int, default=0, help="series evaluated night by night, for the first row "
                    "(slow: ~95 detections each)")
    ap.add_argument("--df", type=int, default=0, help="Student-t noise with this many degrees of freedom (> 2); "
                    "0: normal")
    ap.add_argument("--sweep", action="store_true", help=f"also ratio noise sd {', '.join(map(str, SWEEP))}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.df and args.df <= 2:
        ap.error("--df must be above 2 (the sd is finite only then)")
    sd = measured_noise(args.from_history) if args.from_history else args.noise_sd
    rng = np.random.default_rng(args.seed)
    values, ratios = ChangeSettings(), RatioChangeSettings()
    print(f"value-series settings: {values.model_dump()}\nratio-series settings: {ratios.model_dump()}")
    print(f"noise: {'Student-t, ' + str(args.df) + ' df' if args.df else 'normal'} on the log scale; "
          f"{args.history} runs, then +{args.shift:.0%} TPOT, found after {args.within} runs at the new level\n")
    print(f"| series | noise sd per run | settings | recall (±1 run) | `--recent {args.within}` fires | "
          "false change points / 100 runs" + (" | nightly alarms / 100 nights" if args.nightly else "") + " |")
    print("|---|---|---|---|---|---|" + ("---|" if args.nightly else ""))
    rows: list[tuple[str, SeriesKey, float, str, ChangeSettings, RatioChangeSettings]] = [
        ("ratio", RATIO, sd, "ratio series'", values, ratios),
        ("ratio", RATIO, sd, "run medians' (before)", values, RatioChangeSettings(**values.model_dump())),
        ("absolute", ABSOLUTE, args.abs_noise_sd, "run medians'", values, ratios),
    ]
    if args.sweep:
        rows += [("ratio", RATIO, s, "ratio series'", values, ratios) for s in SWEEP if s != sd]
    for i, (kind, key, noise_sd, named, v, r) in enumerate(rows):
        noise = noise_of(noise_sd, args.df, rng)
        hit, gate = recall(key, noise, args.series, args.history, args.within, args.shift, v, r)
        false = false_per_100(key, noise, args.series, v, r)
        nightly = ""
        if args.nightly:
            nightly = f" {nightly_alarms(key, noise, args.nightly, args.within, v, r):.2f} |" if i == 0 else " |"
        print(f"| {kind} | {noise_sd:.2%} | {named} | {hit:.1%} | {gate:.1%} | {false:.2f} |{nightly}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
