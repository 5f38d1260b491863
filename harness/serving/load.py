"""Load generation against an endpoint: closed loop at a fixed concurrency, or open loop at a request
rate (Poisson arrivals, optional burstiness as a gamma shape), for a request count or a duration.
Warm-up requests run first, at the load's concurrency, and are returned apart. The generator's own CPU time is measured so a
report can show it was not the bottleneck."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from harness.serving.client import RequestInput, RequestOutput, send


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int | None = 1  # closed loop: this many requests in flight
    rate: float | None = None  # open loop: mean requests per second (overrides concurrency)
    burstiness: float = 1.0  # gamma shape of inter-arrival times; 1 = Poisson
    requests: int = 16
    duration_s: float | None = None  # stop sending after this long (whichever comes first)
    warmup: int = 1
    timeout_s: float = 60.0
    seed: int = 0


@dataclass
class LoadResult:
    warmup: list[RequestOutput]
    measured: list[RequestOutput]
    start_ns: int
    end_ns: int
    client_cpu_s: float  # user + system CPU of this process while the load ran
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


async def run_load(base_url: str, model: str, inputs: Callable[[int], RequestInput], spec: LoadSpec,
                   headers: dict[str, str] | None = None,
                   on_result: Callable[[RequestOutput], None] | None = None) -> LoadResult:
    """Run warm-up then the measured load; `inputs(i)` makes request i; `on_result` sees each measured
    request as soon as it ends (so a load killed midway keeps what it measured)."""
    limits = httpx.Limits(max_connections=max(64, (spec.concurrency or 1) * 2), max_keepalive_connections=64)
    timeout = httpx.Timeout(spec.timeout_s, connect=min(10.0, spec.timeout_s))
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        warm = await _warm_up(client, base_url, model, inputs, spec, headers)
        cpu0, start = os.times(), time.perf_counter_ns()
        measured: list[RequestOutput] = []
        interrupted = False
        try:
            report = on_result or (lambda _o: None)
            if spec.rate:
                measured = await _open_loop(client, base_url, model, inputs, spec, headers, report)
            else:
                measured = await _closed_loop(client, base_url, model, inputs, spec, headers, report)
        except asyncio.CancelledError:
            interrupted = True
        cpu1, end = os.times(), time.perf_counter_ns()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return LoadResult(warm, sorted(measured, key=lambda o: o.index), start, end, cpu, interrupted)


async def _warm_up(client: httpx.AsyncClient, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                   spec: LoadSpec, headers: dict[str, str] | None) -> list[RequestOutput]:
    """The warm-up requests, as many in flight as the load will have (all at once for an open loop), so the
    connections the load uses are open and the server has batched that many before the clock starts."""
    width = spec.warmup if spec.rate else max(1, spec.concurrency or 1)
    gate = asyncio.Semaphore(max(1, width))

    async def one(k: int) -> RequestOutput:
        async with gate:
            return await send(client, base_url, inputs(-1 - k), model, headers)

    return list(await asyncio.gather(*(one(k) for k in range(spec.warmup))))


async def _closed_loop(client: httpx.AsyncClient, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                       spec: LoadSpec, headers: dict[str, str] | None,
                       report: Callable[[RequestOutput], None]) -> list[RequestOutput]:
    out: list[RequestOutput] = []
    counter = iter(range(spec.requests))
    deadline = time.perf_counter() + spec.duration_s if spec.duration_s else None

    async def worker() -> None:
        for i in counter:
            if deadline and time.perf_counter() > deadline:
                return
            result = await send(client, base_url, inputs(i), model, headers)
            out.append(result)
            report(result)

    await asyncio.gather(*(worker() for _ in range(max(1, spec.concurrency or 1))))
    return out


async def _open_loop(client: httpx.AsyncClient, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                     spec: LoadSpec, headers: dict[str, str] | None,
                     report: Callable[[RequestOutput], None]) -> list[RequestOutput]:
    async def one(i: int, scheduled_ns: int) -> RequestOutput:
        result = await send(client, base_url, inputs(i), model, headers)
        # when the schedule meant it to go (Sample.scheduled_ns): minimal fill until RequestOutput carries it
        result.scheduled_ns = scheduled_ns  # type: ignore[attr-defined]
        report(result)
        return result

    rng = np.random.default_rng(spec.seed)
    assert spec.rate
    # gamma(shape k, scale 1/(k·rate)) has mean 1/rate; k = 1 is exponential (Poisson arrivals)
    gaps = rng.gamma(spec.burstiness, 1.0 / (spec.burstiness * spec.rate), size=spec.requests)
    tasks = []
    t0_ns = time.perf_counter_ns()
    t0 = t0_ns / 1e9
    when = 0.0
    for i, gap in enumerate(gaps):
        if spec.duration_s and when > spec.duration_s:
            break
        delay = t0 + when - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, t0_ns + round(when * 1e9))))
        when += float(gap)
    return list(await asyncio.gather(*tasks))
