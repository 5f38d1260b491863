"""Fidelity benchmark (prints figures; not a test): does the harness read a cell as fast as a bare script?

For each pair, in a random order, it runs (a) the harness exactly as a user does, `harness run` on a
one-cell suite in a fresh process (runner, worker, progress display, event writing, all of it), and
(b) the bare reference loop of harness/execute/reference.py in a fresh interpreter (the cell's IR, prompts,
generation settings and properties; PerfMetrics read as llm_bench reads them; the worker's modules
imported first, none of their code run: see that module). With --minimal a third side runs the same
loop in an interpreter that imported openvino_genai alone.
It prints harness / reference for TPOT, TTFT and output tok/s per pair, their median and range, and
the geometric mean with a 95% interval over the pairs. 1.00 means the harness reads what a bare
script reads; the goal is 1.00 ± 0.03 for TPOT and tok/s.

With --llm-bench DIR (OpenVINO GenAI's tools/llm_bench, which is not on PyPI: take it from the
openvino.genai repository; it needs matplotlib, librosa, opencv-python-headless and soundfile beside the
stack) a third side joins each round: llm_bench on the cell's first prompt (it permutes one token per
iteration), its own warm-up plus the cell's iterations, read from its JSON report ("2nd token latency"
as TPOT, "1st token latency" as TTFT, output tokens / generation time as tok/s); the ratios are then
also given against it.

Run: .venv/bin/python benchmarks/fidelity.py [--suite suites/default.yaml] [--precision int8]
         [--scenario greedy] [--token-timing streamer|genai] [--pairs 6] [--tty] [--json OUT]
         [--llm-bench DIR [--llm-bench-python PY]]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from harness.analyze.fidelity import comparisons
from harness.core.errors import HarnessInputError, ModelPreparationError
from harness.core.stats import geomean_ratio_ci
from harness.execute.bare_reference import reference_task, run_reference
from harness.kinds import kind_spec
from harness.models.cache import default_cache_dir
from harness.models.prepare import prepare_model
from harness.plan.overrides import SET_ENV, expand_overridden, set_overrides
from harness.plan.suite import expand, load_suite, resolve_suite_path

ROOT = Path(__file__).resolve().parent.parent


def one_cell_suite(args: argparse.Namespace, tmp: Path) -> Path:
    """The suite narrowed to one precision, device and scenario, with the options under test."""
    src = resolve_suite_path(args.suite)
    written, _ = load_suite(src)
    # HARNESS_SET, then --set, as harness run applies them (the one-cell suite's `harness run` then gets neither)
    suite = expand_overridden(written, set_overrides(args.set or []), src).suite
    data = suite.model_dump(exclude_defaults=True)
    data["name"] = "fidelity"
    data["precisions"] = [args.precision]
    data["devices"] = [args.device]
    data["scenarios"] = [s for s in data["scenarios"] if s["name"] == args.scenario]
    if not data["scenarios"]:
        sys.exit(f"{src}: no scenario named {args.scenario!r}")
    for item in args.param or []:
        key, _, value = item.partition("=")
        data["scenarios"][0][key] = yaml.safe_load(value)
    data.pop("gates", None)
    data.pop("exclude", None)
    for key in ("token_timing", "warmup", "iterations"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    for m in data["models"]:  # relative model paths and prompt files stay relative to the original suite
        for k in ("source", "draft"):
            if m.get(k) and not m[k].startswith("synthetic:") and (src.parent / m[k]).exists():
                m[k] = str((src.parent / m[k]).resolve())
    if data.get("prompts", {}).get("file"):
        data["prompts"]["file"] = str((src.parent / data["prompts"]["file"]).resolve())
    path = tmp / "fidelity.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_harness(suite: Path, out: Path, tty: bool, metrics: list[str]) -> dict[str, float]:
    """`harness run` as a user runs it (in a pseudo-terminal with --tty, so the live progress draws)."""
    cmd = [str(Path(sys.executable).parent / "harness"), "run", str(suite), "--out", str(out)]
    env = dict(os.environ, HARNESS_HISTORY_URL=f"sqlite:///{out.parent / 'history.sqlite'}")
    env.pop(SET_ENV, None)  # already applied to the one-cell suite
    if tty:
        import pty

        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(cmd[0], cmd, env)
        while True:
            try:
                if not os.read(fd, 65536):
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
    else:
        rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    results = json.loads((out / "results.json").read_text())
    cell = results["cells"][0]
    if cell["status"] != "ok":
        sys.exit(f"harness run failed (exit {rc}): {cell['error']}")
    got = {tag: cell["summaries"][tag]["median"] for tag in metrics}
    got["runner_cpu_pct"] = cell["cell_values"].get("runner_cpu_pct", float("nan"))
    return got


def run_llm_bench(args: argparse.Namespace, model_dir: Path, prompt: str, iterations: int, max_new_tokens: int,
                  out: Path) -> dict[str, float]:
    """One llm_bench run on the cell's IR; medians of its measured iterations (its iteration 0 is warm-up)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompts.jsonl").write_text(json.dumps({"prompt": prompt}) + "\n", encoding="utf-8")
    cmd = [args.llm_bench_python, "benchmark.py", "-m", str(model_dir), "-d", args.device, "-n", str(iterations),
           "-ic", str(max_new_tokens), "-pf", str(out / "prompts.jsonl"), "-rj", str(out / "report.json")]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(out / "mpl"))
    proc = subprocess.run(cmd, cwd=args.llm_bench, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"llm_bench failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    rows = [r for r in json.loads((out / "report.json").read_text())["perfdata"]["results"] if r["iteration"] > 0]
    return {"tpot_ms": statistics.median(r["second_avg_latency"] for r in rows),
            "ttft_ms": statistics.median(r["first_latency"] for r in rows),
            "output_tps": statistics.median(r["output_size"] / r["generation_time"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="default", help="suite file or shipped suite name")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--scenario", default="greedy", help="the suite's scenario name")
    ap.add_argument("--token-timing", choices=["streamer", "genai"], help="override the suite's token_timing")
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--set", action="append", metavar="KEY=YAML", help="change a suite field as harness run --set "
                    "does (repeatable; HARNESS_SET applies first), e.g. load_twice=false or "
                    "'properties={CACHE_DIR: /tmp/c}'")
    ap.add_argument("--param", action="append", metavar="NAME=YAML", help="override a parameter of the scenario "
                    "(repeatable), e.g. concurrency=1")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--tty", action="store_true", help="run the harness in a pseudo-terminal (live progress)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the per-pair order")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    ap.add_argument("--json", type=Path, help="also write the pairs and ratios here")
    ap.add_argument("--minimal", action="store_true", help="a third side per round: the reference loop without "
                    "the worker's module imports (a script that imports openvino_genai alone)")
    ap.add_argument("--llm-bench", type=Path, help="tools/llm_bench of openvino.genai: a third side per round")
    ap.add_argument("--llm-bench-python", default=sys.executable, help="interpreter that runs llm_bench")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fidelity-"))
    suite_path = one_cell_suite(args, tmp)
    suite, _ = load_suite(suite_path)
    (cell,) = expand(suite, suite_path)
    target = prepare_model(cell.model.source, cell.precision, cell.compression, args.cache_dir, log=print)
    draft = (prepare_model(cell.model.draft or "", cell.model.draft_precision or cell.precision, cell.compression, args.cache_dir, log=print)
             if kind_spec(cell.scenario.kind).uses_draft else None)
    task = reference_task(cell, target.path, draft.path if draft else None)
    minimal = reference_task(cell, target.path, draft.path if draft else None, preload=False)
    print(f"cell {cell.key}  token_timing={cell.token_timing}  warm-up {cell.warmup} + {cell.iterations} "
          f"iterations  {'tty' if args.tty else 'no tty'}  {args.pairs} pairs, order randomized per pair")

    compared = comparisons(cell)
    tags = [c.metric for c in compared]
    rng = random.Random(args.seed)
    pairs: list[dict[str, dict[str, float]]] = []
    t_start = time.monotonic()
    for p in range(args.pairs):
        order = ["harness", "reference"] + (["minimal"] if args.minimal else []) + (["llm_bench"] if args.llm_bench else [])
        rng.shuffle(order)
        got: dict[str, dict[str, float]] = {}
        for side in order:
            if side == "harness":
                got[side] = run_harness(suite_path, tmp / f"run-{p}", args.tty, tags)
            elif side == "llm_bench":
                got[side] = run_llm_bench(args, target.path, task.prompts[0], cell.iterations,
                                          cell.generation.max_new_tokens, tmp / f"llm-bench-{p}")
            else:
                records = [r for r in run_reference(task if side == "reference" else minimal, tmp / f"{side}-{p}",
                                                    cell.timeout_s) if not r.warmup]
                got[side] = {c.metric: statistics.median(getattr(r, c.field) for r in records) for c in compared}
        pairs.append(got)
        print(f"round {p + 1} ({' then '.join(order)}): " + "  ".join(
            f"{tag} {got['harness'][tag]:.2f}/{got['reference'][tag]:.2f} = "
            f"{got['harness'][tag] / got['reference'][tag]:.3f}" for tag in tags)
            + f"  runner CPU {got['harness']['runner_cpu_pct']:.2f}%"
            + ("  llm_bench " + " ".join(f"{k} {v:.2f}" for k, v in got["llm_bench"].items()) if "llm_bench" in got
               else ""), flush=True)

    ratios = {}
    for base in [side for side in ("reference", "minimal", "llm_bench") if side in pairs[0]]:
        ratios[base] = {tag: [x["harness"][tag] / x[base][tag] for x in pairs] for tag in tags if tag in pairs[0][base]}
        print(f"\nharness / {base} over {len(pairs)} pairs ({time.monotonic() - t_start:.0f} s):")
        print(f"{'metric':<16} {'median':>7} {'range':>15} {'geomean':>8} {'95% CI':>17}")
        for tag, r in ratios[base].items():
            ci = geomean_ratio_ci(r)
            ci_text = f"{ci[0]:8.3f} {ci[1]:8.3f}–{ci[2]:.3f}" if ci else ""
            print(f"{tag:<16} {statistics.median(r):7.3f} {min(r):7.3f}–{max(r):.3f} {ci_text}")
    print("\nmedians of the rounds:", "  ".join(
        f"{tag} " + " ".join(f"{side} {statistics.median(x[side][tag] for x in pairs):.2f}" for side in pairs[0]
                              if tag in pairs[0][side]) for tag in tags))
    print(f"runner CPU while the worker measured (the harness's own process, % of one core): median "
          f"{statistics.median(x['harness']['runner_cpu_pct'] for x in pairs):.2f}%")
    if args.json:
        args.json.write_text(json.dumps({"cell": cell.key, "token_timing": cell.token_timing, "tty": args.tty,
                                         "pairs": pairs, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    try:
        main()
    except (HarnessInputError, ModelPreparationError) as e:  # bad input: one line, exit 2, as harness run
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
