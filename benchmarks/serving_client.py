"""Is the load generator the bottleneck? Prints figures.

Runs the harness's client against benchmarks/fast_endpoint.py (a separate process whose TTFT and
inter-token gap are known: 50 ms and 10 ms, 32 tokens) at a target concurrency and at twice it. The
endpoint logs when each request arrived and when it sent each chunk, on the same monotonic clock the
client reads, so the table separates:
- request delay: the client's send stamp -> the endpoint's handler (HTTP transfer and parsing);
- chunk delay: the endpoint's send -> the client's read of the chunk (transfer plus the client's own
  event-loop delay): the client-side error in every TTFT / inter-chunk reading;
- the measured TTFT and TPOT against the truth, and both processes' CPU use.
If the chunk delay stays small and flat from 1x to 2x, the client is not the bottleneck at 1x.

The chunk delay depends on how the streams' chunk times line up, which the client's connection handling
sets: each stream's 10 ms grid starts at its request's arrival, a client that opens a connection per request
spreads arrivals (and so the grids) by its connect times, one that reuses connections keeps whatever
alignment the previous requests had. --lockstep puts every stream on one shared grid (a continuous-batching
server's token steps): the chunks arrive in bursts of `concurrency` and the chunk delay measures how fast
the client works through a burst, whatever its connection handling; compare clients in both modes.

Run: .venv/bin/python benchmarks/serving_client.py [--concurrency 16] [--requests 320] [--lockstep]
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
import psutil

from harness.load.client import RequestInput
from harness.load.generator import LoadSpec, run_load

HERE = Path(__file__).resolve().parent
TTFT_MS, ITL_MS, TOKENS = 50.0, 10.0, 32


def _p(xs: list[float], q: float) -> float:
    return float(np.quantile(xs, q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=320)
    ap.add_argument("--lockstep", action="store_true", help="every stream's chunks on one shared 10 ms grid")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(HERE / "fast_endpoint.py"), str(port), str(TTFT_MS), str(ITL_MS),
                               str(TOKENS), "1" if args.lockstep else "0"])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        endpoint = psutil.Process(server.pid)
        print(f"fast endpoint: first chunk {TTFT_MS:g} ms after arrival, then {TOKENS} chunks {ITL_MS:g} ms apart"
              + (" (lockstep: all streams on one grid, the first chunk up to one gap later)" if args.lockstep else "")
              + "\n")
        print(f"{'concurrency':>11}{'req/s':>7}{'chunks/s':>9}{'client CPU%':>12}{'endpoint CPU%':>14}"
              f"{'request delay ms p50/p90':>26}{'chunk delay ms p50/p90/p99':>28}{'TTFT err ms p50':>16}"
              f"{'TPOT err % p50':>15}{'errors':>7}")
        for conc in (args.concurrency, 2 * args.concurrency):
            spec = LoadSpec(concurrency=conc, requests=args.requests, warmup=2, timeout_s=30)
            httpx.get(f"{base}/log", timeout=5)  # forget earlier loads
            ep0 = sum(endpoint.cpu_times()[:2])
            res = asyncio.run(run_load(f"{base}/v3", "m",
                                       lambda i: RequestInput("chat", f"request {i}", TOKENS, index=i), spec))
            wall = (res.end_ns - res.start_ns) / 1e9
            endpoint_cpu = 100 * (sum(endpoint.cpu_times()[:2]) - ep0) / wall  # includes warm-up: an upper bound
            log = httpx.get(f"{base}/log", timeout=5).json()
            ok = [o for o in res.measured if o.ok]
            req_delay, chunk_delay = [], []
            for o in ok:
                arrival, *sent = log[f"request {o.index}"]
                req_delay.append((arrival - o.start_ns) / 1e6)
                chunk_delay += [(o.start_ns + off * 1e6 - t) / 1e6 for off, t in zip(o.chunk_offsets_ms, sent, strict=True)]
            ttft = np.array([o.chunk_offsets_ms[0] for o in ok])
            tpot = np.array([((o.end_ns - o.start_ns) / 1e6 - o.chunk_offsets_ms[0]) / (o.completion_tokens - 1)
                             for o in ok])
            print(f"{conc:>11}{len(ok) / wall:>7.1f}{len(ok) * TOKENS / wall:>9.0f}{100 * res.client_cpu_s / wall:>12.1f}"
                  f"{endpoint_cpu:>14.1f}{_p(req_delay, .5):>18.2f} / {_p(req_delay, .9):<5.2f}"
                  f"{_p(chunk_delay, .5):>14.2f} / {_p(chunk_delay, .9):.2f} / {_p(chunk_delay, .99):<5.2f}"
                  f"{np.median(ttft) - TTFT_MS:>14.2f}{100 * (np.median(tpot) / ITL_MS - 1):>15.2f}"
                  f"{len(res.measured) - len(ok):>7}")
        print("\nrequest delay: client send -> endpoint handler; chunk delay: endpoint send -> client read (both on "
              "the host's monotonic clock); TTFT/TPOT err: measured − true; CPU: user+system CPU over the load's "
              "wall time, one core = 100% (the endpoint's includes the warm-up).")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
