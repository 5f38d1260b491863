"""The memory roofline of decoding: the host's measured bandwidth, the weight bytes a generated token
reads, and which share of that bandwidth a decode cell achieves.

Decoding one token with a batch of one multiplies every weight matrix by a vector: each weight byte is
read once per token and used for about one multiply-add, so the rate is bounded by memory bandwidth, not
arithmetic. Bytes per token × tokens per second is then the traffic the cell sustained, and its ratio to
what the host's memory system delivers says how close to that bound it runs (docs/roofline.md).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from harness.core.escaping import json_of
from harness.core.host import fingerprint as host_fingerprint
from harness.core.metrics import AchievedBandwidth, HostMemoryBandwidth, RooflinePercent, WeightBytesPerToken
from harness.core.schema import BandwidthReading, HostInfo, HostLoad, MemoryBandwidth
from harness.records.run_files import write_whole

MiB = 2**20
# Triad and copy bytes per float64 element as STREAM counts them: read b and c, write a; read b, write a.
# Write-allocate caches also read a before writing it, traffic STREAM (and so this) leaves out.
TRIAD_BYTES, COPY_BYTES = 24, 16
# Elements per block of the chunk-wise triad: 512 KiB per array, so the per-thread temporary s·c stays in
# L2 and DRAM sees only b, c and a; larger blocks spill it (measured here: 64 Ki elements 18.6 GB/s,
# 256 Ki 16.7, 16 Ki 15.3 with Python's per-call cost).
BLOCK = 65536
METHOD = ("numpy STREAM-style triad a = b + s*c and copy a = b on float64, one thread per logical core, "
          f"blocks of {BLOCK} elements with the product in a per-thread temporary; best (and median) of "
          f"interleaved repetitions; {TRIAD_BYTES} and {COPY_BYTES} bytes per element")
_L3_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
FALLBACK_ARRAYS_MB = 256.0


# ---------------------------------------------------------------- host bandwidth


def last_level_cache_mb(sysfs: Path = _L3_SYSFS) -> float | None:
    """Size of the CPU's largest cache in MiB from sysfs (None when unreadable)."""
    best = None
    for index in sysfs.glob("index*"):
        try:
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
        mb = float(size[:-1]) * units[size[-1]] if size[-1:] in units else float(size) / MiB
        if best is None or level > best[0]:
            best = (level, mb)
    return best[1] if best else None


def default_array_mb(memory_total_mb: float) -> float:
    """Each array's size: the three together at least 4× the last-level cache (so no repetition is served
    from it), never more than an eighth of memory."""
    llc = last_level_cache_mb()
    total = 4 * llc if llc else FALLBACK_ARRAYS_MB
    return min(max(total, FALLBACK_ARRAYS_MB), memory_total_mb / 8) / 3


@dataclass(frozen=True)
class _Stream:
    """What one run of the kernels saw."""

    triads: list[float]
    copies: list[float]
    elements: int
    threads: int
    seconds: float


def _stream(seconds: float, threads: int | None, array_mb: float | None, copy: bool, warm_up: bool) -> _Stream:
    """The triad (and, with `copy`, the copy kernel interleaved with it) for about `seconds`, at least 3 times."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import psutil

    t_start = time.monotonic()
    threads = threads or os.cpu_count() or 1
    array_mb = array_mb or default_array_mb(psutil.virtual_memory().total / MiB)
    n = max(int(array_mb * MiB) // 8, threads)
    a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)  # b, c written, so their pages are mapped before timing
    temps = [np.empty(min(BLOCK, n)) for _ in range(threads)]
    bounds = [n * t // threads for t in range(threads + 1)]
    scalar = 3.0

    # numpy's ufuncs release the GIL, so the threads stream in parallel; each takes one contiguous part
    def triad(t: int) -> None:
        tmp = temps[t]
        for i in range(bounds[t], bounds[t + 1], BLOCK):
            j = min(i + BLOCK, bounds[t + 1])
            np.multiply(c[i:j], scalar, out=tmp[:j - i])
            np.add(b[i:j], tmp[:j - i], out=a[i:j])

    def copy_kernel(t: int) -> None:
        for i in range(bounds[t], bounds[t + 1], BLOCK):
            j = min(i + BLOCK, bounds[t + 1])
            np.copyto(a[i:j], b[i:j])

    triads: list[float] = []
    copies: list[float] = []
    with ThreadPoolExecutor(threads) as pool:

        def rate(kernel: Callable[[int], None], bytes_per_element: int) -> float:
            t0 = time.perf_counter()
            list(pool.map(kernel, range(threads)))
            return bytes_per_element * n / (time.perf_counter() - t0) / 1e9

        if warm_up:
            rate(triad, TRIAD_BYTES)  # untimed first pass: thread start, page faults of a and the temporaries
        t_loop = time.monotonic()
        # interleaved so a burst of noise from another process hits both kernels alike; at least 3 each
        while len(triads) < 3 or time.monotonic() - t_loop < seconds:
            triads.append(rate(triad, TRIAD_BYTES))
            if copy:
                copies.append(rate(copy_kernel, COPY_BYTES))
    expected = b[0] if copy else b[0] + scalar * c[0]  # the last kernel's result: it ran over the whole array
    if not np.all(a[:: max(n // 97, 1)] == expected):
        raise RuntimeError("bandwidth kernels produced wrong values")
    return _Stream(triads, copies, n, threads, time.monotonic() - t_start)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def measure_bandwidth(seconds: float = 3.0, threads: int | None = None, array_mb: float | None = None,
                      fingerprint: str = "") -> MemoryBandwidth:
    """Measure the host's memory bandwidth for about `seconds` (plus allocating the arrays)."""
    run = _stream(seconds, threads, array_mb, copy=True, warm_up=True)
    reading = BandwidthReading(kind="full", triad_gbs=round(max(run.triads), 3),
                               triad_median_gbs=round(statistics.median(run.triads), 3),
                               copy_gbs=round(max(run.copies), 3), seconds=round(run.seconds, 2), measured_at=_now())
    return MemoryBandwidth(
        triad_gbs=reading.triad_gbs, copy_gbs=round(max(run.copies), 3), triad_median_gbs=reading.triad_median_gbs,
        array_mb=round(run.elements * 8 / MiB, 1), threads=run.threads, seconds=reading.seconds,
        measured_at=reading.measured_at, fingerprint=fingerprint, cached=False, method=METHOD, this_run=reading)


def check_bandwidth(threads: int | None = None, array_mb: float | None = None) -> BandwidthReading:
    """A run's short measurement: 3 triad passes over the same arrays, no copy and no untimed pass (the first
    timed pass maps `a`'s pages and is slow; the best of the three is the figure). Allocating and mapping the
    arrays is most of its cost."""
    run = _stream(0.0, threads, array_mb, copy=False, warm_up=False)
    return BandwidthReading(kind="check", triad_gbs=round(max(run.triads), 3),
                            triad_median_gbs=round(statistics.median(run.triads), 3), seconds=round(run.seconds, 2),
                            measured_at=_now())


# A run's check below this share of the host's best: the host was busy with other work when the run started.
UNDER_LOAD_SHARE = 0.7
KEPT_READINGS = 20  # the best reading and the latest others: enough to see a host's spread, a bounded file
# A reading below this share of the host's best is implausible for a quiet host (quiet full measurements here
# spread 17.2-19.8 GB/s, within 13%): it is measured again, so that one busy moment decides nothing.
REMEASURE_BELOW_SHARE = 0.8
REMEASURES = 3  # at most, each a short check
REMEASURE_PAUSE_S = 1.0  # between them: long enough for a burst of other work (a compile, a test) to pass

LoadWatch = Callable[[], Callable[[], HostLoad]]  # start watching; the function returned gives the load since


def watch_load() -> Callable[[], HostLoad]:
    """How busy the host is while a bandwidth measurement runs in this process: other processes' CPU over it (this
    process's threads are the measurement; its child processes count as other work)."""
    from harness.core.host_state import watch

    done = watch(descendants=False, own_work=True)
    return lambda: done().load()


def _busy(reading: BandwidthReading) -> bool:
    return reading.load is not None and reading.load.busy


class BandwidthHistory(BaseModel):
    """What the cache keeps per host: its measurements, the best of which is its figure."""

    fingerprint: str
    array_mb: float
    threads: int
    method: str
    measurements: int = Field(description="every measurement ever made, including readings no longer kept")
    readings: list[BandwidthReading]

    def best(self) -> BandwidthReading:
        return max(self.readings, key=lambda r: r.triad_gbs)

    def quiet(self) -> bool:
        """Some reading was taken on a quiet host (readings from before loads were recorded count as quiet)."""
        return any(not _busy(r) for r in self.readings)

    def with_reading(self, reading: BandwidthReading) -> BandwidthHistory:
        readings = [*self.readings, reading]
        best = max(readings, key=lambda r: r.triad_gbs)
        # only full measurements read copy: the best of them stays too, or the figure would lose its copy reading
        copies = [r for r in readings if r.copy_gbs is not None]
        best_copy = max(copies, key=lambda r: r.copy_gbs or 0.0) if copies else None
        pinned = [r for r in readings if r is best or r is best_copy]
        latest = [r for r in readings if not any(r is p for p in pinned)][-(KEPT_READINGS - len(pinned)):]
        kept = [r for r in readings if any(r is k for k in [*pinned, *latest])]
        return self.model_copy(update={"measurements": self.measurements + 1, "readings": kept})

    def figure(self, this_run: BandwidthReading | None,
               remeasured: list[BandwidthReading] | None = None) -> MemoryBandwidth:
        best = self.best()
        mine = [r for r in (this_run, *(remeasured or [])) if r is not None]
        copies = [r.copy_gbs for r in self.readings if r.copy_gbs is not None]
        return MemoryBandwidth(triad_gbs=best.triad_gbs, copy_gbs=max(copies) if copies else None,
                               triad_median_gbs=best.triad_median_gbs, array_mb=self.array_mb, threads=self.threads,
                               seconds=round(sum(r.seconds for r in mine), 2), measured_at=best.measured_at,
                               fingerprint=self.fingerprint, cached=best not in mine, method=self.method,
                               measurements=self.measurements, this_run=this_run, best=best,
                               remeasured=remeasured or [])


def _read_history(path: Path, fingerprint: str) -> BandwidthHistory | None:
    """The host's cached measurements; a file of the earlier format (one measurement) reads as one reading, and
    readings from before loads were recorded read with none."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        found = BandwidthHistory.model_validate_json(text)
    except (ValueError, ValidationError):
        try:
            old = MemoryBandwidth.model_validate_json(text)
        except (ValueError, ValidationError):
            return None
        reading = BandwidthReading(kind="full", triad_gbs=old.triad_gbs, triad_median_gbs=old.triad_median_gbs,
                                   copy_gbs=old.copy_gbs, seconds=old.seconds, measured_at=old.measured_at)
        found = BandwidthHistory(fingerprint=old.fingerprint, array_mb=old.array_mb, threads=old.threads,
                                 method=old.method, measurements=1, readings=[reading])
    return found if found.fingerprint == fingerprint and found.readings else None


def implausible(reading: BandwidthReading, prior: BandwidthReading | None) -> bool:
    """A reading the host's figure must not rest on alone: far below the host's earlier best, or, on a host with
    no reading yet, taken while the host was busy. (A host whose readings are all busy ones is measured in full
    on every call until a quiet one comes, so it is not measured again on top of that.)"""
    if prior is None:
        return _busy(reading)
    return reading.triad_gbs < REMEASURE_BELOW_SHARE * prior.triad_gbs


def host_bandwidth(cache_dir: Path, host: HostInfo, remeasure: bool = False,
                   measure: Callable[[str], MemoryBandwidth] | None = None,
                   check: Callable[[], BandwidthReading] | None = None, watch: LoadWatch | None = None,
                   pause_s: float = REMEASURE_PAUSE_S) -> MemoryBandwidth:
    """The host's bandwidth: the best of its measurements, cached under its fingerprint, each kept with how busy
    the host was while it ran (`watch`).

    A figure measured once and trusted forever was wrong for good when that one measurement ran beside other
    work (4.3 GB/s read on a host that gives 19.8 idle: every later roofline 4x too high). Other work can only
    lower a reading, so the best one is the host's figure, and each call adds a short `check` (a second or less)
    that raises it when the host is quieter than before and tells the caller, in `this_run`, how busy the host
    is now. A full measurement (`measure`, a few seconds) is made on a host's first call, with `remeasure`, and
    while no reading of the host was taken on a quiet one (its figure is still a busy one's). A reading that is
    `implausible` is measured again, up to REMEASURES short checks `pause_s` apart, stopping at a plausible one;
    every reading is kept. A cache file that does not read as measurements is replaced."""
    from harness.models.cache import entry_lock

    fingerprint = host_fingerprint(host)
    path = cache_dir / "host-bandwidth" / f"{fingerprint}.json"
    start = watch or watch_load

    def checked(known: BandwidthHistory) -> BandwidthReading:
        # the same arrays and threads as the host's full measurement, so the readings compare
        done = start()
        reading = (check or (lambda: check_bandwidth(known.threads, known.array_mb)))()
        return reading.model_copy(update={"load": done()})

    # one measurement at a time per host: two at once would each see half the bandwidth
    with entry_lock(path):
        history = _read_history(path, fingerprint)
        prior = history.best() if history is not None else None
        if history is None or remeasure or not history.quiet():
            done = start()
            full = (measure or (lambda f: measure_bandwidth(fingerprint=f)))(fingerprint)
            reading = (full.this_run or BandwidthReading(
                kind="full", triad_gbs=full.triad_gbs, triad_median_gbs=full.triad_median_gbs,
                copy_gbs=full.copy_gbs, seconds=full.seconds, measured_at=full.measured_at)
            ).model_copy(update={"load": done()})
            history = (history.with_reading(reading) if history is not None else
                       BandwidthHistory(fingerprint=fingerprint, array_mb=full.array_mb, threads=full.threads,
                                        method=full.method, measurements=1, readings=[reading]))
        else:
            reading = checked(history)
            history = history.with_reading(reading)
        again: list[BandwidthReading] = []
        while len(again) < REMEASURES and implausible(again[-1] if again else reading, prior):
            time.sleep(pause_s)
            again.append(checked(history))
            history = history.with_reading(again[-1])
        write_whole(path.parent, path.name, json_of(history, indent=1))
        return history.figure(reading, again)


def this_run_best(bw: MemoryBandwidth) -> BandwidthReading | None:
    """The best of the readings this run made (its first and any re-measurements)."""
    mine = [r for r in (bw.this_run, *bw.remeasured) if r is not None]
    return max(mine, key=lambda r: r.triad_gbs) if mine else None


def under_load(bw: MemoryBandwidth) -> bool:
    """The host is busy now: even the best of this run's readings is far below the host's best, or every one of
    them was taken while other processes used the CPU."""
    now = this_run_best(bw)
    if now is None:
        return False
    mine = [r for r in (bw.this_run, *bw.remeasured) if r is not None]
    return now.triad_gbs < UNDER_LOAD_SHARE * bw.triad_gbs or all(_busy(r) for r in mine)


def figure_busy(bw: MemoryBandwidth) -> bool:
    """The figure itself is a busy host's: no reading of this host was taken on a quiet one yet, so it is likely
    low (every roofline % against it high) until a quiet run measures the host again."""
    return bw.best is not None and _busy(bw.best)


# ---------------------------------------------------------------- weight bytes per token

# Ops a weight passes through between its Constant and the MatMul (decompression: convert, subtract the
# zero point, multiply by the scale, reshape int4 groups back) -> which of their inputs carry the weight
# (the others are shapes and axes, not streamed).
_DATA_INPUTS: dict[str, tuple[int, ...] | None] = {
    "Convert": (0,), "Reshape": (0,), "Transpose": (0,), "Unsqueeze": (0,), "Squeeze": (0,),
    "Broadcast": (0,), "Subtract": None, "Multiply": None, "Add": None,  # None: every input
}


def _constant_bytes(node: Any) -> int:
    numel = 1
    for d in node.get_output_shape(0):
        numel *= int(d.get_length()) if hasattr(d, "get_length") else int(d)
    return -(-numel * node.get_output_element_type(0).bitwidth // 8)


def _weight_constants(source: Any) -> list[Any] | None:
    """The Constants a MatMul input is computed from, when it is computed from Constants alone through the
    decompression ops above; None when anything else (an activation) feeds it."""
    node = source.get_node()
    kind = node.get_type_name()
    if kind == "Constant":
        return [node]
    if kind not in _DATA_INPUTS:
        return None
    inputs = _DATA_INPUTS[kind]
    found: list[Any] = []
    for i in range(node.get_input_size()) if inputs is None else inputs:
        part = _weight_constants(node.input_value(i))
        if part is None:
            return None
        found += part
    return found


def weight_bytes_per_token(model_xml: Path) -> int:
    """Bytes of the weights one decoding step reads: every Constant that reaches a MatMul only through
    decompression ops (f16 weights and their Convert; int8/int4 weights with their scales and zero points),
    each counted once. Constants that only reach a Gather (the embedding table: one row per token) are not
    counted, nor the KV cache and activations, so real traffic is higher."""
    import openvino as ov

    model = ov.Core().read_model(str(model_xml))
    counted: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        for i in range(op.get_input_size()):
            for const in _weight_constants(op.input_value(i)) or ():
                # get_name() is unique per node: a weight shared by two MatMuls is read once
                counted.setdefault(const.get_name(), _constant_bytes(const))
    return sum(counted.values())


# ---------------------------------------------------------------- the cell's roofline figures


def decode_tokens_per_s(mean_tpot_ms: float) -> float | None:
    """The decode rate the roofline uses: 1000 / mean TPOT (None for no positive TPOT)."""
    return 1000.0 / mean_tpot_ms if mean_tpot_ms > 0 else None


def roofline_values(weight_mb: float | None, host_gbs: float | None, tpot_ms: Iterable[float]) -> dict[str, float]:
    """A plain decoding cell's achieved bandwidth (weight MB per token × decode tokens/s, decode tokens/s =
    1000 / mean TPOT of the measured samples) and its share of the host's; a figure whose inputs are
    missing is absent, and so is a share above 100% (`exceeds_host`)."""
    tpots = list(tpot_ms)
    rate = decode_tokens_per_s(statistics.fmean(tpots)) if tpots else None
    if weight_mb is None or rate is None:
        return {}
    achieved = weight_mb * rate / 1000.0  # MB/token × token/s -> GB/s
    out = {AchievedBandwidth.tag: achieved}
    if host_gbs and not achieved > host_gbs:
        out[RooflinePercent.tag] = 100.0 * achieved / host_gbs
    return out


def exceeds_host(cell_values: dict[str, float]) -> bool:
    """The cell's decode read weights faster than the host's measured triad bandwidth: not a share of memory
    bandwidth it can have reached, so the share is left out rather than shown as an impossible figure (170% was).
    On this machine fp16 decoding of a model larger than the cache reaches ~95% of a quiet host's triad."""
    achieved, host = cell_values.get(AchievedBandwidth.tag), cell_values.get(HostMemoryBandwidth.tag)
    return achieved is not None and host is not None and host > 0 and achieved > host


def exceeds_host_note(cell_values: dict[str, float], cache_mb: float | None) -> str:
    """Why: weights that fit in the last-level cache (`cache_mb`, MiB, of the host that measured) are read from
    it, faster than from memory; larger ones cannot beat memory, so the host figure was measured under load."""
    weight_mb = cell_values.get(WeightBytesPerToken.tag)
    head = (f"roofline % left out: the decode read {cell_values['achieved_bandwidth_gbs']:.1f} GB/s of weights, more "
            f"than the host's measured memory bandwidth ({cell_values['memory_bandwidth_gbs']:.1f} GB/s triad)")
    if weight_mb is not None and cache_mb is not None and weight_mb * 1e6 <= cache_mb * MiB:
        return (f"{head}: its {weight_mb:.1f} MB of weights fit in the CPU's {cache_mb:.0f} MiB last-level cache, "
                "which serves them faster than memory")
    return (f"{head}, so that figure was measured under load (later runs' checks raise it when the host is "
            "quieter; docs/roofline.md)")
