"""Benchmark of `harness run --cluster` itself (prints figures; not a test): the time a Ray cluster adds to each
cell against the local runner, on the same cells, interleaved.

Per cell, overhead = (the submitter's time from starting the cell to recording its result) − (the cell's own
wall time, `wall_s`, measured around `run_cell` wherever it ran). Locally that is the runner's bookkeeping;
on the cluster it adds placement, the Ray task's start and the result's trip back. The cluster is a loopback
one (`harness.execute.cluster.local`): a head and one worker node holding both CPUs, so the cells run one at a time in
both modes. Rounds alternate which mode goes first. Joining the cluster and probing its nodes is a one-off
per run, printed apart.

Run: .venv/bin/python benchmarks/cluster_overhead.py [--rounds 3] [--cells 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import openvino as ov

from harness.core.schema import CellResult, CellSpec
from harness.execute.cluster.executor import ClusterOptions, connect, run_cells_on_cluster
from harness.execute.cluster.local import LocalCluster
from harness.execute.run_options import RunOptions
from harness.execute.run_record import new_run_metadata
from harness.execute.runner import run_cells
from harness.execute.worker_process import ProgressSink
from harness.models.cache import default_cache_dir
from harness.plan.suite import expand
from harness.plan.suite_model import Suite


class Clock(ProgressSink):
    """Per cell: submitter-side seconds from start to recorded result."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.took: dict[str, float] = {}

    def cell_started(self, index: int, total: int, cell: CellSpec) -> None:
        self.start[cell.key] = time.monotonic()

    def cell_finished(self, result: CellResult) -> None:
        self.took[result.key] = time.monotonic() - self.start[result.key]


def overheads(clock: Clock, cells: list[CellResult]) -> list[float]:
    return [clock.took[c.key] - (c.wall_s or 0.0) for c in cells]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cells", type=int, default=6, help="cells per run (input lengths 16, 24, ...)")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = ap.parse_args()

    suite = Suite.model_validate({
        "name": "cluster-overhead", "models": [{"name": "tiny", "source": "synthetic:tiny"}], "precisions": ["fp16"],
        "devices": ["CPU"], "prompts": {"input_tokens": [16 + 8 * i for i in range(args.cells)]},
        "generation": {"max_new_tokens": 8, "ignore_eos": True}, "warmup": 1, "iterations": 2,
        "load_twice": False, "validation_prompts": 0, "scenarios": [{"name": "greedy", "kind": "generate"}]})
    cells = expand(suite, Path("cluster-overhead.yaml"))
    core = ov.Core()
    local = LocalCluster(cache=args.cache_dir)
    os.environ.update({k: local.env[k] for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")})
    try:
        local.start_head()
        local.start_worker("bench", {"host": "bench"}, cpus=os.cpu_count() or 1)
        t0 = time.monotonic()
        cluster = connect(ClusterOptions(address=local.address), log=lambda m: None)
        joined = time.monotonic() - t0
        per_mode: dict[str, list[float]] = {"local": [], "cluster": []}
        for r in range(args.rounds):
            for mode in (("local", "cluster") if r % 2 == 0 else ("cluster", "local")):
                with tempfile.TemporaryDirectory() as tmp:
                    meta = new_run_metadata(f"bench-{mode}-{r}", core, suite.name, Path("cluster-overhead.yaml"),
                                            compare_thresholds=suite.compare_thresholds)
                    clock = Clock()
                    if mode == "local":
                        res = run_cells(cells, Path(tmp), meta, RunOptions(cache_dir=args.cache_dir,
                                        available_devices=list(core.available_devices)), clock)
                    else:
                        res = run_cells_on_cluster(cells, Path(tmp), meta, cluster, {}, clock)
                bad = [c.key for c in res.cells if c.status != "ok"]
                assert not bad, f"{mode} round {r}: cells not ok: {bad}"
                got = overheads(clock, res.cells)
                per_mode[mode] += got
                print(f"round {r + 1} {mode:>7}: per-cell overhead median {statistics.median(got) * 1000:7.1f} ms "
                      f"(first cell {got[0] * 1000:.0f} ms), cell wall median "
                      f"{statistics.median(c.wall_s or 0 for c in res.cells):.2f} s", flush=True)
        lo, cl = statistics.median(per_mode["local"]), statistics.median(per_mode["cluster"])
        print(f"\njoin + probe the cluster (once per run): {joined:.2f} s")
        print(f"per-cell overhead, median over {len(per_mode['local'])} cells each: local {lo * 1000:.1f} ms, "
              f"cluster {cl * 1000:.1f} ms; the cluster adds {(cl - lo) * 1000:.1f} ms per cell")
    finally:
        local.stop()


if __name__ == "__main__":
    main()
