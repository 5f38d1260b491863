"""Change-point detection (`harness history changes`) on this machine's noise (prints figures; not a test).

`record`: a real nightly-style series. N runs of suites/bisect-tiny.yaml's one cell on a model folder
(`harness run`, each recorded in a history database); from run N/2 + 1 on, the folder holds a re-export of
the same IR whose rt_info runtime_options turn dynamic quantization off, a real decoding slowdown (the kind
a new export brings). Prints the change points `harness history changes` finds in that history.

`simulate`: synthetic series with this machine's run-to-run noise: the log residuals of a recorded series
(each value less its segment's median, segments split at --split) are resampled into series of --runs runs
(in blocks of --block runs, so the
drift between neighbouring runs stays) with a shift of 3, 5, 10 and 20% at the middle run, --series of each; a change point within +-1 run of the
true one is a hit, any other a false change point. Precision = hits / change points reported, recall = hits
/ series. Unchanged series of 100 runs give the false change points per 100 runs, beside the naive rule
"flag a run more than 5% off the previous one".

Run: .venv/bin/python benchmarks/change_detection.py record --out /tmp/cd [--runs 40]
     .venv/bin/python benchmarks/change_detection.py simulate --history sqlite:////tmp/cd/history.sqlite
         [--metric tpot_ms] [--split 20] [--series 200] [--runs 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.analyze.changes import find_shifts
from harness.core.schema import ChangeSettings

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "bisect-tiny.yaml"
SHIFTS = (0.03, 0.05, 0.10, 0.20)


def record(out: Path, runs: int) -> None:
    import openvino as ov

    from harness.models.cache import default_cache_dir
    from harness.models.prepare import prepare_model
    from harness.plan.suite import expand, load_suite

    suite, _ = load_suite(SUITE)
    (cell,) = expand(suite, SUITE)
    ir = prepare_model(cell.model.source, cell.precision, cell.compression, default_cache_dir()).path
    out.mkdir(parents=True, exist_ok=True)
    first, second = out / "export-1", out / "export-2"
    for d in (first, second):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(ir, d)
    model = ov.Core().read_model(second / "openvino_model.xml")
    model.set_rt_info("0", ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
    ov.save_model(model, second / "openvino_model.new.xml", compress_to_fp16=False)
    for ext in ("xml", "bin"):
        os.replace(second / f"openvino_model.new.{ext}", second / f"openvino_model.{ext}")
    suite_file = out / "nightly.yaml"
    suite_file.write_text(SUITE.read_text().replace("source: synthetic:tiny", f"source: {out / 'model'}")
                          .replace("name: bisect-tiny", "name: nightly-series"))
    env = {**os.environ, "HARNESS_HISTORY_URL": f"sqlite:///{out / 'history.sqlite'}"}
    link = out / "model"
    for i in range(1, runs + 1):
        target = first if i <= runs // 2 else second
        tmp = out / "model.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(suite_file), "--out", str(out / f"run-{i:02d}")],
                              env=env, capture_output=True, text=True)
        print(f"run {i:2d} on {target.name}: exit {proc.returncode}", flush=True)
    print(f"\nchange points (history sqlite:///{out / 'history.sqlite'}):")
    subprocess.run([sys.executable, "-m", "harness", "history", "changes", "--metric", "tpot_ms", "--metric", "ttft_ms",
                    "--metric", "output_tps", "--metric", "e2e_ms", "--metric", "itl_ms"], env={**env, "COLUMNS": "250"})


def residuals(history: str, metric: str, split: int) -> np.ndarray:
    from harness.analyze.history import HistoryStore

    with HistoryStore(history) as store:
        series = [v for k, v in store.series(metrics=[metric]).items()]
    if len(series) != 1:
        sys.exit(f"expected one {metric} series in {history}, found {len(series)}")
    y = np.log([p.median for p in series[0]])
    parts = [y[:split], y[split:]] if split else [y]
    return np.concatenate([p - np.median(p) for p in parts if p.size])


def resample(noise: np.ndarray, n: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """A circular block bootstrap of the residuals: runs next to each other stay together, so the drift a
    shared machine shows over minutes (positive autocorrelation) is in the synthetic series too."""
    starts = rng.integers(0, noise.size, math.ceil(n / block))
    idx = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n] % noise.size
    return noise[idx]


def simulate(noise: np.ndarray, n_series: int, runs: int, seed: int, block: int, settings: ChangeSettings) -> None:
    rng = np.random.default_rng(seed)
    lag1 = float(np.corrcoef(noise[:-1], noise[1:])[0, 1])
    sd = float(np.std(noise, ddof=1))
    print(f"settings: {settings.model_dump()}; residuals resampled in blocks of {block} runs")
    print(f"noise: {noise.size} real log residuals, sd {sd:.3f} ({math.expm1(sd) * 100:.1f}%), robust sd "
          f"{1.4826 * np.median(np.abs(noise - np.median(noise))):.3f}, lag-1 autocorrelation {lag1:+.2f}, "
          f"largest {np.expm1(np.abs(noise).max()) * 100:.0f}%\n")
    print("| shift | series | recall (within ±1 run) | precision | change points reported | mean |error| of the magnitude |")
    print("|---|---|---|---|---|---|")
    true_at = runs // 2
    for shift in SHIFTS:
        hits = reported = 0
        errors = []
        for _ in range(n_series):
            y = resample(noise, runs, block, rng) + np.where(np.arange(runs) >= true_at, math.log1p(shift), 0.0)
            found = find_shifts(np.exp(y), settings)
            reported += len(found)
            near = [s for s in found if abs(s.index - true_at) <= 1]
            hits += bool(near)
            errors += [abs(near[0].change - shift)] if near else []
        precision = f"{hits / reported:.0%}" if reported else "—"
        err = f"{np.mean(errors) * 100:.1f} pp" if errors else "—"
        print(f"| +{shift:.0%} | {n_series} × {runs} runs | {hits / n_series:.0%} | {precision} | {reported} | {err} |")
    false = naive = 0
    for _ in range(n_series):
        y = resample(noise, 100, block, rng)
        false += len(find_shifts(np.exp(y), settings))
        naive += int((np.abs(np.diff(y)) > math.log(1.05)).sum())
    print(f"\nunchanged series, {n_series} × 100 runs: {false / n_series:.2f} false change points per 100 runs "
          f"(naive 'more than 5% off the previous run': {naive / n_series:.1f} per 100 runs)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--runs", type=int, default=40)
    s = sub.add_parser("simulate")
    s.add_argument("--history", required=True)
    s.add_argument("--metric", default="tpot_ms")
    s.add_argument("--split", type=int, default=20, help="index of the first run after the real change (0: none)")
    s.add_argument("--series", type=int, default=200)
    s.add_argument("--runs", type=int, default=40)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--block", type=int, default=5, help="block length of the bootstrap (1: independent runs)")
    s.add_argument("--max-pvalue", type=float, default=ChangeSettings().max_pvalue)
    args = ap.parse_args()
    if args.cmd == "record":
        record(args.out, args.runs)
    else:
        simulate(residuals(args.history, args.metric, args.split), args.series, args.runs, args.seed, args.block,
                 ChangeSettings(max_pvalue=args.max_pvalue))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
