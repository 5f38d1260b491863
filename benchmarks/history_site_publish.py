"""How long `harness history publish` takes on a lab-sized history, how big the site is, and how fast its
overview loads in headless Chromium.

The history (benchmarks/synthetic_history.py): RUNS runs of one suite alternating over two hosts, CELLS cells,
METRICS metrics each, with realistic noise and four real shifts. Prints:
- full publish (every series searched and every page drawn), best and median of REPEATS;
- publish after one new run (the incremental path), best and median of REPEATS new runs;
- publish with nothing new;
- the overview's load in Debian's chromium (navigation start to the load event's end), median of 5 loads;
- the site's size and file count;
- `harness history changes --format json` on the same database: its time, and that its change points are
  exactly the site's (changes.json), figure for figure;
- which of the generated shifts were found.

    .venv/bin/python -m benchmarks.history_site_publish [--db sqlite:///PATH] [--runs 1000] [--cells 50] [--metrics 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic_history import generate
from harness.analyze.history import HistoryStore
from reports.site.publish import publish


def _overview_load(index: Path, loads: int = 5) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        out = []
        for _ in range(loads):
            page.goto(index.as_uri(), wait_until="load")
            out.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--cells", type=int, default=50)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="site-bench-"))
    url = args.db or f"sqlite:///{work / 'history.sqlite'}"
    shifts = None
    if not args.db:
        t = time.perf_counter()
        shifts = generate(url, runs=args.runs, cells=args.cells, metrics=args.metrics)
        print(f"generated {args.runs} runs x {args.cells} cells x {args.metrics} metrics in "
              f"{time.perf_counter() - t:.0f} s")
    out = Path(args.out) if args.out else work / "site"
    with HistoryStore(url) as store:
        fulls = [publish(store, out, full=True) for _ in range(args.repeats)]
        print(f"full publish: {min(s.seconds for s in fulls):.1f} s best, "
              f"{statistics.median(s.seconds for s in fulls):.1f} s median of {len(fulls)} "
              f"({fulls[-1].series} series, {fulls[-1].changes} change points, {fulls[-1].written} files)")
        same = publish(store, out)
        print(f"publish with nothing new: {same.seconds:.2f} s (wrote {same.written} files)")
    recorded = _count(url)
    incs = []
    for i in range(args.repeats):  # the next run of the same series
        generate(url, runs=args.runs, cells=args.cells, metrics=args.metrics, first=recorded + i, count=1)
        with HistoryStore(url) as store:
            incs.append(publish(store, out))
    print(f"publish after one new run: {min(s.seconds for s in incs):.2f} s best, "
          f"{statistics.median(s.seconds for s in incs):.2f} s median of {len(incs)} "
          f"(searched {incs[-1].searched} series, wrote {incs[-1].written} files, {incs[-1].unchanged} unchanged)")
    files = [f for f in out.rglob("*") if f.is_file() and ".publish" not in f.relative_to(out).parts]
    print(f"site: {sum(f.stat().st_size for f in files) / 1e6:.1f} MB in {len(files)} files (overview "
          f"{(out / 'index.html').stat().st_size / 1e6:.2f} MB, a series page ~"
          f"{statistics.median(f.stat().st_size for f in (out / 's').glob('*.html')) / 1e3:.0f} KB); "
          f"what the next publish reads, .publish/: {incs[-1].state_bytes / 1e6:.1f} MB")
    loads = _overview_load(out / "index.html")
    print(f"overview load in headless chromium: {statistics.median(loads):.2f} s median of {len(loads)} "
          f"(min {min(loads):.2f}, max {max(loads):.2f})")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "history", "changes", "--db", url, "--format", "json"],
                          capture_output=True, text=True, check=True)
    took = time.perf_counter() - t
    cli = {c["id"]: c for c in json.loads(proc.stdout)["changes"]}
    site = {c["id"]: c for c in json.loads((out / "changes.json").read_text())["changes"]}
    print(f"history changes: {took:.1f} s, {len(cli)} change points; the site's are "
          f"{'the same, figure for figure' if cli == site else f'DIFFERENT ({len(set(cli) ^ set(site))} ids differ)'}")
    if shifts:
        for s in shifts:
            hits = [c for c in site.values() if c["metric"] == s.metric and (s.host is None or c["host"] == s.host)
                    and abs(int(c["after_run"].split("-")[1]) - s.at * args.runs) <= 6]
            print(f"  shift {s.metric} x{s.factor} on {s.host or 'every host'} at run {s.at * args.runs:.0f}: "
                  f"{len(hits)} change points within 6 runs of it")
    print(f"site at {out}")


def _count(url: str) -> int:
    with HistoryStore(url) as store:
        return len(store.run_ids_newest_first())


if __name__ == "__main__":
    main()
