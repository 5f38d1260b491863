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

from harness.core.metrics import (
    TPOT,
    TTFT,
    EffectiveConcurrency,
    LoadDecodeThroughput,
    LoadPrefillThroughput,
    PeakConcurrency,
)
from harness.core.schema import BatchRecord, CellResult, LoadTimeline, Sample

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
        out[EffectiveConcurrency.tag], out[PeakConcurrency.tag] = mm
    streamed = [(s, f) for s in _measured(samples) if (f := _first_chunk_ns(s)) is not None]
    prefill = [(s.start_ns, f) for s, f in streamed if s.input_tokens > 0]
    if prefill and (t := union_ns(prefill)) > 0:
        out[LoadPrefillThroughput.tag] = sum(s.input_tokens for s, _ in streamed if s.input_tokens > 0) / (t / 1e9)
    decode = [(f, s.end_ns) for s, f in streamed if s.output_tokens > 1]
    if decode and (t := union_ns(decode)) > 0:
        out[LoadDecodeThroughput.tag] = sum(s.output_tokens - 1 for s, _ in streamed if s.output_tokens > 1) / (t / 1e9)
    return out


# ---------------------------------------------------------------- time slices


@dataclass(frozen=True)
class TimeSlice:
    """One window of the load: [start_s, end_s) after its start."""

    start_s: float
    end_s: float
    completed: int  # requests that completed in the window
    errors: int | None  # requests that failed in the window (None: failure times not recorded, before 1.9)
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
    errors: list[int | None] = [0 if timeline is not None else None] * count
    for e in (timeline.failed_end_ns if timeline is not None else []):
        errors[index(e)] = (errors[index(e)] or 0) + 1
    out = []
    for k in range(count):
        length = (edges[k + 1] - edges[k]) / 1e9
        ttft = [v for s in done[k] for v in s.values.get(TTFT.tag, [])]
        tpot = [v for s in done[k] for v in s.values.get(TPOT.tag, [])]
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
    """The scraped families that changed during the load, as (name, kind, [(s after t0, y)]) from the load's start
    on: a gauge as read ("value"); a counter as its rate per second between consecutive scrapes ("rate/s"); a
    histogram or summary as its mean observation per interval, Δ_sum / Δ_count ("mean"); labels summed per family.
    Gauges first, then histograms, then counters, at most `limit` families, each at most `points` points."""
    scrapes = sorted(timeline.scrapes, key=lambda m: m.t_ns)
    if len(scrapes) < 2:
        return []
    sums: dict[str, list[float]] = {}
    for k, m in enumerate(scrapes):
        for name, v in m.values.items():
            sums.setdefault(family(name), [0.0] * len(scrapes))[k] += v
    times = [(m.t_ns - t0) / 1e9 for m in scrapes]

    def kind_of(fam: str) -> str:
        for base in (fam, fam.removesuffix("_total"), fam.removesuffix("_sum"), fam.removesuffix("_count")):
            if base in timeline.types:
                return timeline.types[base]
        return "counter" if fam.endswith("_total") else "gauge"

    def deltas(ys: list[float]) -> list[tuple[int, float]]:
        return [(k, ys[k] - ys[k - 1]) for k in range(1, len(ys)) if times[k] > times[k - 1] and times[k] >= 0]

    gauges, histograms, counters = [], [], []
    for fam, ys in sums.items():
        if max(ys) == min(ys):
            continue
        kind = kind_of(fam)
        if kind in ("histogram", "summary"):
            base = fam.removesuffix("_sum")
            if fam.endswith("_sum") and f"{base}_count" in sums:
                counts = dict(deltas(sums[f"{base}_count"]))
                histograms.append((base, "mean", [(times[k], d / counts[k]) for k, d in deltas(ys) if counts.get(k)]))
        elif kind == "counter":
            counters.append((fam, "rate/s", [(times[k], d / (times[k] - times[k - 1])) for k, d in deltas(ys)]))
        else:
            gauges.append((fam, "value", [(t, y) for t, y in zip(times, ys, strict=True) if t >= 0]))
    chosen = [x for x in gauges + histograms + counters if x[2]][:limit]
    return [(f, u, _thin(pts, points)) for f, u, pts in chosen]


def _thin(points: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    if len(points) <= n:
        return points
    idx = np.linspace(0, len(points) - 1, n).round().astype(int)
    return [points[i] for i in dict.fromkeys(idx.tolist())]


def load_batch(cell: CellResult) -> BatchRecord | None:
    """The serving cell's load record (its one measured BatchRecord)."""
    return next((b for b in cell.batches if not b.warmup), None)


LOAD_DOC = """## Serving loads over time

Computed from each serving cell's stored records when it is aggregated (`concurrency_*`, `load_*_tps`) or
when a report is rendered (time slices, chart series), never in the load generator, so an older results.json
renders the same way. All times are the load process's `perf_counter_ns`; the load's window is its
BatchRecord: first measured send → last measured end (warm-up excluded).

**Requests in flight** n(t): a request is in flight from its send (`Sample.start_ns`, taken when the client
starts the request, before it waits for a connection from the pool) to its end (last byte, or the failure;
failed requests come from `LoadTimeline.failed_start_ns/failed_end_ns`, recorded since schema 1.9). A request
ending at the instant another starts is not counted twice. `concurrency_mean` = ∫ n(t) dt / window (aiperf's
`effective_concurrency`, which also counts failed requests); `concurrency_max` = max n(t). In a closed loop
it is at most `concurrency` (below it by the client's turnaround between requests and the load's ramp-down);
in an open loop it is the load the server actually carried (Little's law: rate × mean latency).

**Prefill and decode throughput**, named apart from the whole load's `batch_output_tps` ("load out tok/s":
all output tokens / window) and the per-request `output_tps` ("output tok/s per request": output tokens / e2e):
- `prefill_tps` per request = input tokens / TTFT (aiperf's per-record prefill throughput);
- `decode_tps` per request = (output tokens − 1) / (e2e − TTFT) = 1000 / TPOT (aiperf's output token
  throughput per user);
- `load_prefill_tps` = Σ input tokens / the time at least one request was between its send and its first
  content chunk; `load_decode_tps` = Σ (output tokens − 1) / the time at least one request was between its
  first content chunk and its end. These are aiperf's `active_prefill_throughput` / `active_decode_throughput`
  (a sum of per-request rates averaged over the time its phase mask is non-zero integrates to exactly this).
  aiperf's full-window `effective_*_throughput` divide the same sums by the whole window instead; here that is
  `batch_total_tps − batch_output_tps` for prefill.
"Prefill" is the client-observed TTFT window: queueing, tokenization, the network and the engine's prefill
together, as in aiperf.

**Coordinated omission** (Gil Tene): a load generator that waits for the system under test before sending
stops measuring exactly while the system is slow, so the requests that would have seen the stall are never
timed. An open loop has an arrival schedule independent of the responses: request i is due at
`scheduled_ns` = the load's start + the sum of the first i gaps of the schedule (Poisson or gamma gaps), and
the client sends it then even if earlier requests are still running. Corrected figures charge the time from
the schedule, not from the send:
- `e2e_co_ms` = end − scheduled; `ttft_co_ms` = first content chunk − scheduled; `send_lag_ms` = send −
  scheduled (how late the generator was).
What they add to `e2e_ms` / `ttft_ms` is only the send lag: the client opens a connection for every request in
flight (no pool cap holds sends back), so a server stall is already in the uncorrected latency (tested: a 3 s
stall at 30 requests/s holds ~90 requests, the server sees them all at once, and every request sent into the
stall has a send lag < 0.3 s and an e2e reaching to the stall's end). The
lag comes from the generator itself: its event loop busy (callbacks, a blocking
write, a garbage-collection pause), the process descheduled on a loaded host, a burst due at once. The
requests due while the generator was stalled go out late and together, their own e2e short; corrected, each
carries the stall from its due time. tests/unit/analyze/test_serving_analysis.py checks both cases against a local server:
a server that answers nothing for 1 s from a known moment under 20 requests/s (the corrected e2e of the worst
request is 0.9–1.8 s and ≥ 10 requests waited > 0.3 s; the send lag stays < 0.3 s, so the raw e2e saw it as
well), and a generator whose event loop is blocked for 1 s (each request due meanwhile has a send lag equal
to the time from its schedule to the stall's end within 0.25 s, its raw e2e < 0.5 s, its corrected e2e at
least that lag).
aiperf's `effective_latency` = end − `credit_issued_ns` is the same idea: its credit issuer stamps when it
issued the credit, and the latency counts the wait in its credit queue. It reports it in every mode; in a
closed loop, though, a credit is issued only when a slot frees, so it measures the client's internal queue,
not the omission.
**A closed loop cannot be corrected this way**: it has no schedule independent of the responses. Its next
request is due when a previous one ends, so during a server stall no request is due at all; the requests that
a steady stream of users would have sent during the stall never exist, and there is no send time to measure
them from. Correcting would mean inventing an intended rate (HdrHistogram's expected-interval back-filling),
which is a model, not a measurement. Closed-loop samples carry no `scheduled_ns`, and the corrected figures
are absent (not equal to the raw ones).

**Time slices** (report tables and charts; `window_s`, default 10 s): the window cut into consecutive slices
from its start, the last one shorter. Per slice: requests completed in it (by their end), requests failed in it
(by their failure time; absent for results before 1.9, which kept no failure times), output tok/s = output tokens delivered in it (each request's usage count spread evenly
over its streamed chunks, as `peak_output_tps` does) / the slice's length, and TTFT p50/p90 and TPOT p50
(linear-interpolation percentiles) of the requests completed in it. Warm-up, slow-down and a stall show as
slices that differ from their neighbours.

**Server /metrics as a time series** (`metrics_interval_s`, default 1 s; 0 = off): a background thread with
its own blocking httpx client reads `/metrics` at a fixed schedule from just before the warm-up to just after the
load (one last read once the load ends), storing each read as `MetricsScrape(t_ns, values)` in
`CheckOutputs.load_timeline` (histogram `_bucket` and `_created` samples dropped) with the `# TYPE` of each
family. The before/after `server_metrics_delta` is still taken. Charts, from the load's start on: per family,
labels summed; a gauge as read; a histogram (or summary) as its mean observation per interval, Δ`_sum` /
Δ`_count` between consecutive reads; a counter as its rate per second between consecutive reads; families that
changed during the load, in that order, at most 4 per cell. Cost, measured (`LoadTimeline.scraper_cpu_s`, the thread's `thread_time`): on a
2-core host against `harness serve` (a 60 s open-loop load at 10 requests/s, client CPU ~10% of a core), 0.11 s
of CPU at 1 s (0.19% of a core) and 0.86 s at 0.1 s (1.4%).

Charts are downsampled so a long load stays small: requests in flight as 240 buckets (time-weighted mean and
maximum per bucket), server series thinned to 240 points.
"""
