"""Speculative decoding and prompt lookup against plain greedy (prints figures; not a test).

Does decoding with a draft (or a prompt-lookup table) beat plain greedy decoding on the suite's models?
Per precision, every round runs the bare reference loop (harness/execute/reference.py: the cell's IR, prompts,
generation settings and properties, nothing of the harness's measuring code) of the greedy, speculative
and prompt-lookup cells in fresh processes, in a random order, back to back. Per round and side it takes
the median output tok/s (tokens / generate() wall time) of the process's measured calls, the ratio to
greedy's in the same round, and over the rounds the geometric mean of those ratios with a 95% interval
(draft acceptance is in the suite run's own results). Ratios from interleaved rounds, not two absolute
numbers minutes apart: this machine's speed drifts by 7-50% between minutes.

Run: .venv/bin/python benchmarks/speculative_speedup.py [--suite suites/default.yaml] [--precision fp16
         --precision int8] [--rounds 5] [--seed 0] [--json OUT] [--cache-dir DIR (default: HARNESS_CACHE_DIR or
         the harness's cache)]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from harness.core.stats import geomean_ratio_ci
from harness.execute.bare_reference import reference_task, run_reference
from harness.kinds import kind_spec
from harness.models.cache import default_cache_dir
from harness.models.prepare import prepare_model
from harness.plan.suite import expand, load_suite, resolve_suite_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="suites/default.yaml")
    ap.add_argument("--precision", action="append")
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cache-dir", type=Path, default=os.environ.get("HARNESS_CACHE_DIR") or default_cache_dir())
    args = ap.parse_args()
    path = resolve_suite_path(args.suite)
    suite, _ = load_suite(path)
    precisions = args.precision or ["fp16", "int8"]
    cache = args.cache_dir
    cells = [c for c in expand(suite, path) if (kind_spec(c.scenario.kind).greedy_reference or kind_spec(c.scenario.kind).drafts) and c.device == args.device
             and c.precision in precisions]
    tasks = {}
    for c in cells:
        target = prepare_model(c.model.source, c.precision, c.compression, cache).path
        draft = prepare_model(c.model.draft, c.model.draft_precision or c.precision, c.compression, cache).path \
            if kind_spec(c.scenario.kind).uses_draft and c.model.draft else None
        tasks[c.key] = (c, reference_task(c, target, draft))
    rng = random.Random(args.seed)
    tps: dict[str, list[float]] = {k: [] for k in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(tasks)
            rng.shuffle(order)
            for key in order:
                cell, task = tasks[key]
                calls = [c for c in run_reference(task, Path(tmp) / str(r), cell.timeout_s) if not c.warmup]
                tps[key].append(statistics.median(c.output_tokens / (c.e2e_ms / 1000) for c in calls))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k.split('/')[3]}@{k.split('/')[1]} "
                                                              f"{tps[k][-1]:.1f}" for k in order), flush=True)
    report = []
    for precision in precisions:
        greedy = next((k for k, (c, _) in tasks.items() if c.precision == precision
                       and kind_spec(c.scenario.kind).greedy_reference),
                      None)
        if greedy is None:
            continue
        for key, (cell, _) in tasks.items():
            if cell.precision != precision or key == greedy:
                continue
            ratios = [a / b for a, b in zip(tps[key], tps[greedy], strict=True)]
            found = geomean_ratio_ci(ratios)
            row = {"precision": precision, "scenario": cell.scenario.name, "greedy_tps": statistics.median(tps[greedy]),
                   "tps": statistics.median(tps[key]), "ratios": ratios}
            if found:
                row.update(ratio=found[0], ci_low=found[1], ci_high=found[2])
            report.append(row)
            ci = f"{found[0]:.2f}x [{found[1]:.2f}, {found[2]:.2f}]" if found else "n/a"
            print(f"{precision} {cell.scenario.name}: {row['tps']:.1f} vs greedy {row['greedy_tps']:.1f} tok/s "
                  f"(medians); per-round ratio geomean {ci}, {sum(x > 1 for x in ratios)}/{len(ratios)} rounds faster")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
