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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.host import fingerprint as host_fingerprint
from harness.schema import HostInfo, MemoryBandwidth

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


def measure_bandwidth(seconds: float = 3.0, threads: int | None = None, array_mb: float | None = None,
                      fingerprint: str = "") -> MemoryBandwidth:
    """Measure the host's memory bandwidth for about `seconds` (plus allocating the arrays)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import psutil

    t_start = time.monotonic()
    threads = threads or os.cpu_count() or 1
    array_mb = array_mb or default_array_mb(psutil.virtual_memory().total / MiB)
    n = max(int(array_mb * MiB) // 8, threads)
    a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)  # written, so every page is mapped before timing
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

    def copy(t: int) -> None:
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

        rate(triad, TRIAD_BYTES)  # untimed first pass: thread start, page faults of the temporaries
        t_loop = time.monotonic()
        # interleaved so a burst of noise from another process hits both kernels alike; at least 3 each
        while len(triads) < 3 or time.monotonic() - t_loop < seconds:
            triads.append(rate(triad, TRIAD_BYTES))
            copies.append(rate(copy, COPY_BYTES))
    if not np.all(a[:: max(n // 97, 1)] == b[0]):  # the copy's result: the kernels ran over the whole array
        raise RuntimeError("bandwidth kernels produced wrong values")
    return MemoryBandwidth(
        triad_gbs=round(max(triads), 3), copy_gbs=round(max(copies), 3),
        triad_median_gbs=round(statistics.median(triads), 3), array_mb=round(n * 8 / MiB, 1), threads=threads,
        seconds=round(time.monotonic() - t_start, 2), measured_at=datetime.now(timezone.utc).isoformat(
            timespec="seconds"), fingerprint=fingerprint, cached=False, method=METHOD)


def host_bandwidth(cache_dir: Path, host: HostInfo, remeasure: bool = False,
                   measure: Callable[[str], MemoryBandwidth] | None = None) -> MemoryBandwidth:
    """The host's bandwidth, measured once and cached under its fingerprint; a cache file that does not
    read as a measurement is measured again and replaced. `measure` (fingerprint -> a measurement)
    replaces the default few-second measurement."""
    from harness.models.cache import entry_lock

    fingerprint = host_fingerprint(host)
    path = cache_dir / "host-bandwidth" / f"{fingerprint}.json"
    # one measurement at a time per host: two at once would each see half the bandwidth
    with entry_lock(path):
        if not remeasure:
            try:
                found = MemoryBandwidth.model_validate_json(path.read_text())
                if found.fingerprint == fingerprint:
                    return found.model_copy(update={"cached": True})
            except (OSError, ValueError, ValidationError):
                pass
        measured = (measure or (lambda f: measure_bandwidth(fingerprint=f)))(fingerprint)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(measured.model_dump_json(indent=1))
        tmp.replace(path)
        return measured


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
    missing is absent."""
    tpots = list(tpot_ms)
    rate = decode_tokens_per_s(statistics.fmean(tpots)) if tpots else None
    if weight_mb is None or rate is None:
        return {}
    achieved = weight_mb * rate / 1000.0  # MB/token × token/s -> GB/s
    out = {"achieved_bandwidth_gbs": achieved}
    if host_gbs:
        out["roofline_pct"] = 100.0 * achieved / host_gbs
    return out
