"""Load generation against an endpoint: closed loop at a fixed concurrency, or open loop at a request
rate (Poisson arrivals, optional burstiness as a gamma shape; a linear ramp between two rates; or given send
times, from a trace), for a request count or a duration.
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

from harness.load.client import RequestInput, RequestOutput, send


class Connections:
    """A free list of one-connection clients, one per request in flight, each reused while it lasts (last in,
    first out). One shared httpx pool would cost CPU per request that grows with the connections it holds:
    httpcore rescans every connection (quadratically, when some are idle) each time a request starts or ends."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.ssl = httpx.create_ssl_context()  # made once: each client would load the CA bundle again
        self.free: list[httpx.AsyncClient] = []
        self.made: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self.made:
            await c.aclose()

    async def send(self, base_url: str, inp: RequestInput, model: str,
                   headers: dict[str, str] | None) -> RequestOutput:
        if self.free:
            client = self.free.pop()
        else:
            client = httpx.AsyncClient(timeout=self.timeout, limits=self.limits, verify=self.ssl)
            self.made.append(client)
        try:
            return await send(client, base_url, inp, model, headers)
        finally:
            self.free.append(client)


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
    rate_end: float | None = None  # open loop ramp: the rate goes linearly from `rate` to this over the load
    # open loop at given times: each request's send time, seconds after the load's start (trace or replay)
    arrivals: tuple[float, ...] | None = None

    @property
    def open_loop(self) -> bool:
        return bool(self.rate) or self.arrivals is not None


def ramp_length_s(spec: LoadSpec) -> float:
    """How long a ramp lasts: `duration_s`, or the time in which the ramp expects `requests` arrivals
    ((rate + rate_end) / 2 · T = requests)."""
    assert spec.rate and spec.rate_end
    return spec.duration_s or 2.0 * spec.requests / (spec.rate + spec.rate_end)


def arrival_offsets(spec: LoadSpec) -> list[float]:
    """Send times of the open loop's requests, seconds after its start (the first at 0), at most `requests`
    and none after `duration_s`.

    rate: gaps drawn from gamma(k, 1/(k·rate)) (k = burstiness; k = 1 is a Poisson process). Ramp (rate_end):
    unit-rate gamma gaps give cumulative u_n, mapped through the inverse of Λ(t) = r0·t + (r1 − r0)·t²/(2T),
    the integrated rate of λ(t) = r0 + (r1 − r0)·t/T (an inhomogeneous Poisson process for k = 1); past T
    the rate stays r1. Given arrivals (trace, replay) are used as they are."""
    if spec.arrivals is not None:
        times = list(spec.arrivals[:spec.requests])
    else:
        assert spec.rate
        rng = np.random.default_rng(spec.seed)
        k = spec.burstiness
        u = np.concatenate([[0.0], np.cumsum(rng.gamma(k, 1.0 / k, size=max(0, spec.requests - 1)))])
        if not spec.rate_end:
            times = list(u / spec.rate)
        else:
            r0, r1, T = spec.rate, spec.rate_end, ramp_length_s(spec)
            a, total = (r1 - r0) / T, (r0 + r1) / 2 * T
            inside = 2 * u / (r0 + np.sqrt(np.maximum(r0 * r0 + 2 * a * u, 0.0)))
            times = list(np.where(u <= total, inside, T + (u - total) / r1))
    if spec.duration_s:
        times = [t for t in times if t <= spec.duration_s]
    return [float(t) for t in times]


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
    async with Connections(spec.timeout_s) as conns:
        warm = await _warm_up(conns, base_url, model, inputs, spec, headers)
        cpu0, start = os.times(), time.perf_counter_ns()
        measured: list[RequestOutput] = []
        interrupted = False
        try:
            report = on_result or (lambda _o: None)
            if spec.open_loop:
                measured = await _open_loop(conns, base_url, model, inputs, spec, headers, report)
            else:
                measured = await _closed_loop(conns, base_url, model, inputs, spec, headers, report)
        except asyncio.CancelledError:
            interrupted = True
        cpu1, end = os.times(), time.perf_counter_ns()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return LoadResult(warm, sorted(measured, key=lambda o: o.index), start, end, cpu, interrupted)


async def _warm_up(conns: Connections, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                   spec: LoadSpec, headers: dict[str, str] | None) -> list[RequestOutput]:
    """The warm-up requests, as many in flight as the load will have (all at once for an open loop), so the
    connections the load uses are open and the server has batched that many before the clock starts."""
    width = spec.warmup if spec.open_loop else max(1, spec.concurrency or 1)
    gate = asyncio.Semaphore(max(1, width))

    async def one(k: int) -> RequestOutput:
        async with gate:
            return await conns.send(base_url, inputs(-1 - k), model, headers)

    return list(await asyncio.gather(*(one(k) for k in range(spec.warmup))))


async def _closed_loop(conns: Connections, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                       spec: LoadSpec, headers: dict[str, str] | None,
                       report: Callable[[RequestOutput], None]) -> list[RequestOutput]:
    out: list[RequestOutput] = []
    # conversations (harness/load/content.py): a client takes a conversation's `turns` consecutive requests
    # and sends them in order, each made after `report` has seen the answer before it
    turns = max(1, int(getattr(inputs, "turns", 1)))
    counter = iter(range(0, spec.requests, turns))
    deadline = time.perf_counter() + spec.duration_s if spec.duration_s else None

    async def worker() -> None:
        for first in counter:
            for i in range(first, min(first + turns, spec.requests)):
                if deadline and time.perf_counter() > deadline:
                    return
                result = await conns.send(base_url, inputs(i), model, headers)
                out.append(result)
                report(result)

    await asyncio.gather(*(worker() for _ in range(max(1, spec.concurrency or 1))))
    return out


async def _open_loop(conns: Connections, base_url: str, model: str, inputs: Callable[[int], RequestInput],
                     spec: LoadSpec, headers: dict[str, str] | None,
                     report: Callable[[RequestOutput], None]) -> list[RequestOutput]:
    async def one(i: int, scheduled_ns: int) -> RequestOutput:
        result = await conns.send(base_url, inputs(i), model, headers)
        result.scheduled_ns = scheduled_ns
        report(result)
        return result

    tasks = []
    t0 = time.perf_counter_ns()
    for i, when in enumerate(arrival_offsets(spec)):
        at = t0 + round(when * 1e9)
        delay = (at - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    return list(await asyncio.gather(*tasks))
