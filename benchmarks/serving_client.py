"""Is the load generator the bottleneck? Prints figures.

Runs the harness's client against benchmarks/fast_endpoint.py (a separate process whose TTFT and
inter-token gap are known: 50 ms and 10 ms, 32 tokens) at a target concurrency and at twice it, and
prints the client's own CPU share and how far its measured TTFT / TPOT medians and p90s are from the
truth. If the figures hold at 2x, they hold at the target.

Run: .venv/bin/python benchmarks/serving_client.py [--concurrency 16] [--requests 160]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from harness.serving.client import RequestInput
from harness.serving.load import LoadSpec, run_load

HERE = Path(__file__).resolve().parent
TTFT_MS, ITL_MS, TOKENS = 50.0, 10.0, 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=160)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(HERE / "fast_endpoint.py"), str(port), str(TTFT_MS), str(ITL_MS),
                               str(TOKENS)])
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"fast endpoint: TTFT {TTFT_MS:g} ms, then {TOKENS} tokens {ITL_MS:g} ms apart "
              f"(true TPOT {ITL_MS:g} ms)\n")
        print(f"{'concurrency':>12}{'req/s':>9}{'client CPU %':>14}{'TTFT p50 err ms':>17}{'TTFT p90 err ms':>17}"
              f"{'TPOT p50 err %':>16}{'TPOT p90 err %':>16}{'errors':>8}")
        for conc in (args.concurrency, 2 * args.concurrency):
            spec = LoadSpec(concurrency=conc, requests=args.requests, warmup=2, timeout_s=30)
            res = asyncio.run(run_load(f"http://127.0.0.1:{port}/v3", "m",
                                       lambda i: RequestInput("chat", "hello", TOKENS, index=i), spec))
            ok = [o for o in res.measured if o.ok]
            ttft = np.array([o.chunk_offsets_ms[0] for o in ok])
            tpot = np.array([((o.end_ns - o.start_ns) / 1e6 - o.chunk_offsets_ms[0]) / (o.completion_tokens - 1)
                             for o in ok])
            wall = (res.end_ns - res.start_ns) / 1e9
            print(f"{conc:>12}{len(ok) / wall:>9.1f}{100 * res.client_cpu_s / wall:>14.1f}"
                  f"{np.median(ttft) - TTFT_MS:>17.2f}{np.quantile(ttft, 0.9) - TTFT_MS:>17.2f}"
                  f"{100 * (np.median(tpot) / ITL_MS - 1):>16.2f}{100 * (np.quantile(tpot, 0.9) / ITL_MS - 1):>16.2f}"
                  f"{len(res.measured) - len(ok):>8}")
        print("\nerr = measured − true; client CPU = the generator's user+system CPU / wall time (one core = 100%).")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
