"""What a serving load did over time, from the cell's stored records only (Samples, the BatchRecord of the load and
the LoadTimeline): requests in flight as a step function, prefill and decode throughput while those phases ran,
time-sliced figures, and the server's /metrics series as rates. Pure functions over the result schema, so results
written before these figures existed are analysed the same way when a report is rendered again.

Clock: every time is the load process's perf_counter_ns (Sample.start_ns, .end_ns, .scheduled_ns,
BatchRecord.start_ns, MetricsScrape.t_ns), so they share one axis."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.schema import BatchRecord, CellResult, LoadTimeline, Sample

Interval = tuple[int, int]  # [start_ns, end_ns)


def _measured(samples: Iterable[Sample]) -> list[Sample]:
    return [s for s in samples if not s.warmup and s.end_ns > s.start_ns]


def request_intervals(samples: Iterable[Sample], timeline: LoadTimeline | None = None) -> list[Interval]:
    """[send, end) of every measured request: the completed ones (Samples) and, when recorded, the failed ones
    (a request that hung before failing held a slot too, as aiperf counts it)."""
    out = [(s.start_ns, s.end_ns) for s in _measured(samples)]
    if timeline is not None:
        out += [(a, b) for a, b in zip(timeline.failed_start_ns, timeline.failed_end_ns, strict=False) if b > a]
    return out


def in_flight_steps(intervals: Sequence[Interval]) -> list[tuple[int, int]]:
    """Requests in flight as a step function: (t_ns, n) from t_ns until the next point. A request ending at the
    instant another starts is not counted twice (ends are applied before starts at equal times)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    steps: list[tuple[int, int]] = []
    n = 0
    for t, d in events:
        n += d
        if steps and steps[-1][0] == t:
            steps[-1] = (t, n)
        else:
            steps.append((t, n))
    return steps


def step_mean_max(steps: Sequence[tuple[int, int | float]], t0: int, t1: int) -> tuple[float, float] | None:
    """Time-weighted mean and the maximum of a step function over [t0, t1) (0 before its first point)."""
    if t1 <= t0:
        return None
    total, peak, value, last = 0.0, 0.0, 0.0, t0
    for t, v in steps:
        if t >= t1:
            break
        if t > last:  # the segment [last, t) at `value` lies in the window
            total += value * (t - last)
            peak = max(peak, value)
            last = t
        value = float(v)
    total += value * (t1 - last)
    peak = max(peak, value)
    return total / (t1 - t0), peak


def union_ns(intervals: Iterable[Interval]) -> int:
    """Length of the union of intervals: the time at least one of them was open."""
    total, end = 0, None
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _first_chunk_ns(s: Sample) -> int | None:
    return s.start_ns + round(s.chunk_offsets_ms[0] * 1e6) if s.chunk_offsets_ms else None


def load_values(samples: Sequence[Sample], batch: BatchRecord | None,
                timeline: LoadTimeline | None = None) -> dict[str, float]:
    """Per-load figures of one serving cell (cell values): effective concurrency (time-weighted mean and peak of
    requests in flight over the load), and prefill / decode tokens per second while at least one request was in
    that phase (aiperf's active prefill / decode throughput)."""
    if batch is None:
        return {}
    out: dict[str, float] = {}
    mm = step_mean_max(in_flight_steps(request_intervals(samples, timeline)), batch.start_ns, batch.end_ns)
    if mm is not None:
        out["concurrency_mean"], out["concurrency_max"] = mm
    streamed = [(s, f) for s in _measured(samples) if (f := _first_chunk_ns(s)) is not None]
    prefill = [(s.start_ns, f) for s, f in streamed if s.input_tokens > 0]
    if prefill and (t := union_ns(prefill)) > 0:
        out["load_prefill_tps"] = sum(s.input_tokens for s, _ in streamed if s.input_tokens > 0) / (t / 1e9)
    decode = [(f, s.end_ns) for s, f in streamed if s.output_tokens > 1]
    if decode and (t := union_ns(decode)) > 0:
        out["load_decode_tps"] = sum(s.output_tokens - 1 for s, _ in streamed if s.output_tokens > 1) / (t / 1e9)
    return out


# ---------------------------------------------------------------- time slices


@dataclass(frozen=True)
class TimeSlice:
    """One window of the load: [start_s, end_s) after its start."""

    start_s: float
    end_s: float
    completed: int  # requests that completed in the window
    errors: int  # requests that failed in the window (None-free: 0 when no failure was recorded)
    output_tps: float  # output tokens delivered in the window / its length
    ttft_p50_ms: float | None  # of the requests completed in the window
    ttft_p90_ms: float | None
    tpot_p50_ms: float | None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def time_slices(samples: Sequence[Sample], batch: BatchRecord, window_s: float,
                timeline: LoadTimeline | None = None) -> list[TimeSlice]:
    """The load cut into windows of `window_s` from its start (the last one shorter). A request belongs to the
    window it completed in; output tokens are counted where they arrived (a request's usage count spread evenly
    over its streamed chunks, as the busiest-second figure does)."""
    t0, t1 = batch.start_ns, batch.end_ns
    if t1 <= t0 or window_s <= 0:
        return []
    w = int(window_s * 1e9)
    count = max(1, -(-(t1 - t0) // w))
    edges = [t0 + k * w for k in range(count)] + [t1]
    tokens = np.zeros(count)
    done: list[list[Sample]] = [[] for _ in range(count)]

    def index(t: int) -> int:
        return min(max((t - t0) // w, 0), count - 1)

    for s in _measured(samples):
        done[index(s.end_ns)].append(s)
        if s.chunk_offsets_ms and s.output_tokens:
            share = s.output_tokens / len(s.chunk_offsets_ms)
            for off in s.chunk_offsets_ms:
                tokens[index(s.start_ns + round(off * 1e6))] += share
    errors = [0] * count
    for e in (timeline.failed_end_ns if timeline is not None else []):
        errors[index(e)] += 1
    out = []
    for k in range(count):
        length = (edges[k + 1] - edges[k]) / 1e9
        ttft = [v for s in done[k] for v in s.values.get("ttft_ms", [])]
        tpot = [v for s in done[k] for v in s.values.get("tpot_ms", [])]
        out.append(TimeSlice((edges[k] - t0) / 1e9, (edges[k + 1] - t0) / 1e9, len(done[k]), errors[k],
                             float(tokens[k] / length) if length > 0 else 0.0, _pct(ttft, 50), _pct(ttft, 90),
                             _pct(tpot, 50)))
    return out


# ---------------------------------------------------------------- series for charts


def downsample_steps(steps: Sequence[tuple[int, int | float]], t0: int, t1: int,
                     points: int = 240) -> list[tuple[float, float, float]]:
    """A step function over [t0, t1) as at most `points` buckets: (bucket start in s after t0, time-weighted mean,
    max) each, so a chart of a long load keeps its peaks at a bounded size."""
    if t1 <= t0:
        return []
    n = max(1, min(points, len(steps) * 2 or 1))
    edges = np.linspace(t0, t1, n + 1)
    out = []
    i, value = 0, 0.0
    while i < len(steps) and steps[i][0] <= t0:
        value = float(steps[i][1])
        i += 1
    for k in range(n):
        a, b = edges[k], edges[k + 1]
        area, last, peak = 0.0, a, value
        while i < len(steps) and steps[i][0] < b:
            t, v = steps[i]
            area += value * (t - last)
            last, value = t, float(v)
            peak = max(peak, value)
            i += 1
        area += value * (b - last)
        out.append(((a - t0) / 1e9, area / (b - a), peak))
    return out


def family(sample_name: str) -> str:
    """The metric family of a Prometheus sample name: 'ovms_requests_accepted_total{name="m"}' ->
    'ovms_requests_accepted_total'."""
    return sample_name.split("{", 1)[0]


def server_series(timeline: LoadTimeline, t0: int, limit: int = 6,
                  points: int = 240) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """The scraped families that changed during the load, as (family, 'rate/s' or 'value', [(s after t0, y)]):
    a counter as its rate per second between consecutive scrapes, a gauge as read; labels summed per family.
    Gauges first, then counters, at most `limit` families, each at most `points` points (evenly thinned)."""
    scrapes = sorted(timeline.scrapes, key=lambda m: m.t_ns)
    if len(scrapes) < 2:
        return []
    sums: dict[str, list[float]] = {}
    for k, m in enumerate(scrapes):
        for name, v in m.values.items():
            sums.setdefault(family(name), [0.0] * len(scrapes))[k] += v
    times = [(m.t_ns - t0) / 1e9 for m in scrapes]
    gauges, counters = [], []
    for fam, ys in sums.items():
        if max(ys) == min(ys):
            continue
        kind = timeline.types.get(fam) or timeline.types.get(fam.removesuffix("_total")) or (
            "counter" if fam.endswith("_total") else "gauge")
        if kind == "counter":
            rates = [(times[k], (ys[k] - ys[k - 1]) / (times[k] - times[k - 1]))
                     for k in range(1, len(ys)) if times[k] > times[k - 1]]
            counters.append((fam, "rate/s", rates))
        elif kind == "gauge":
            gauges.append((fam, "value", list(zip(times, ys, strict=True))))
    chosen = (gauges + counters)[:limit]
    return [(f, u, _thin(pts, points)) for f, u, pts in chosen]


def _thin(points: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    if len(points) <= n:
        return points
    idx = np.linspace(0, len(points) - 1, n).round().astype(int)
    return [points[i] for i in dict.fromkeys(idx.tolist())]


def load_batch(cell: CellResult) -> BatchRecord | None:
    """The serving cell's load record (its one measured BatchRecord)."""
    return next((b for b in cell.batches if not b.warmup), None)
