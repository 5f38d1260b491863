"""A quiet-host check, after pyperf's `system show`: what makes measurements move on this host (other processes'
CPU, the load average, VM steal, CPU pressure, the frequency governor and turbo, SMT, thermal throttling, memory
pressure and swapping, running on battery), read into a `HostState` with its warnings.

Other processes' CPU is measured over a window between two snapshots: the system-wide busy time
(/proc/stat through psutil, which in a container or VM guest also counts work outside the harness's process
namespace) minus the CPU of the processes the caller excludes (the harness and, for a cell, its measuring
workers), so the window can be a cell's whole measurement at the cost of two snapshots. Files under /sys and
/proc are read from roots the caller may replace (tests use fake trees); everything else comes from psutil.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.core.schema import BusyProcess, HostState, HostWarning, HostWarningKind

SYS, PROC = Path("/sys"), Path("/proc")
MiB = 2**20
WINDOW_S = 0.5  # a run's check before its first cell: long enough for 10 ms accounting ticks to mean something
TOP_PROCESSES = 3
BUSY_PROCESS_MIN_PCT = 2.0  # % of one core: below it a process is not named among the busiest

# Thresholds of the warnings. Other processes' CPU is a share of every core: on this 2-core VM 10% is a fifth of
# a core, enough to move a decode step that keeps both cores busy by several percent.
OTHER_CPU_BUSY_PCT = 10.0
# the 1-minute load average per logical core: half the cores busy on average with something else
LOAD_BUSY_PER_CORE = 0.5
CPU_PRESSURE_BUSY_PCT = 10.0  # PSI cpu `some avg10`: a task waited for a CPU a tenth of the last 10 s
STEAL_BUSY_PCT = 5.0  # % of every core given by the hypervisor to other guests
MEMORY_AVAILABLE_LOW_SHARE = 0.10  # less available than this share of memory: the page cache is being squeezed
MEMORY_PRESSURE_BUSY_PCT = 1.0  # PSI memory `some avg10`: stalls on memory reclaim or swap-in at all
SWAPPED_BUSY_MB = 1.0  # swapped in and out during the window
BENCHMARK_GOVERNOR = "performance"  # any other governor moves the clock with the load (pyperf's advice)


@dataclass(frozen=True)
class HostSnapshot:
    """What the host's counters said at one moment; two of them make a HostState."""

    at: float  # time.monotonic()
    cores: int
    busy_s: float  # every CPU's non-idle time since boot (user, nice, system, irq, softirq)
    steal_s: float
    excluded_s: float  # CPU of the excluded processes (with their reaped children when descendants count)
    excluded: frozenset[int]
    # other processes: pid -> (name, start time, user + system s); the start time tells a reused pid apart
    processes: dict[int, tuple[str, float, float]] = field(default_factory=dict)
    load_avg: tuple[float, float, float] | None = None
    memory_total_mb: float | None = None
    memory_available_mb: float | None = None
    swap_used_mb: float | None = None
    swapped_mb: float | None = None  # swapped in + out since boot
    throttle_count: int | None = None
    cpu_mhz: float | None = None
    on_battery: bool | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def throttle_count(sys_root: Path = SYS) -> int | None:
    """Thermal throttle events since boot, core and package counters summed over CPUs (a package's counter shows
    under each of its CPUs, so only a change means something); None where the kernel does not expose them."""
    counts = [_read(f) for f in (sys_root / "devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/*_throttle_count")]
    found = [int(c) for c in counts if c is not None and c.isdigit()]
    return sum(found) if found else None


def snapshot(exclude: Collection[int] | None = None, descendants: bool = True, sys_root: Path = SYS) -> HostSnapshot:
    """The host's counters now. `exclude`: pids whose CPU is not other work (default: this process); with
    `descendants`, their child processes too, live or already reaped (a cell's measuring workers)."""
    import psutil

    times = psutil.cpu_times()
    busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
    members: list[psutil.Process] = []
    for pid in (os.getpid(),) if exclude is None else exclude:
        try:
            root = psutil.Process(pid)
            members += [root, *(root.children(recursive=True) if descendants else [])]
        except psutil.Error:
            continue
    excluded_s, pids = 0.0, set()
    for p in members:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        pids.add(p.pid)
        # a reaped child's time moves into its parent's children_* fields: counted there, once
        excluded_s += t.user + t.system + (t.children_user + t.children_system if descendants else 0.0)
    processes: dict[int, tuple[str, float, float]] = {}
    for proc in psutil.process_iter(["name", "create_time", "cpu_times"]):
        t = proc.info["cpu_times"]
        if proc.pid not in pids and t is not None:
            processes[proc.pid] = (proc.info["name"] or "?", proc.info["create_time"] or 0.0, t.user + t.system)
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError):
        freq = None
    battery = psutil.sensors_battery()
    return HostSnapshot(
        at=time.monotonic(), cores=psutil.cpu_count() or 1, busy_s=busy, steal_s=getattr(times, "steal", 0.0),
        excluded_s=excluded_s, excluded=frozenset(pids), processes=processes,
        load_avg=psutil.getloadavg(),
        memory_total_mb=memory.total / MiB, memory_available_mb=memory.available / MiB, swap_used_mb=swap.used / MiB,
        swapped_mb=(swap.sin + swap.sout) / MiB, throttle_count=throttle_count(sys_root),
        cpu_mhz=freq.current if freq and freq.current else None,
        on_battery=None if battery is None or battery.power_plugged is None else not battery.power_plugged)


def _pressure(path: Path) -> float | None:
    """`some avg10` of a /proc/pressure file: % of the last 10 s at least one task stalled."""
    for line in (_read(path) or "").splitlines():
        if line.startswith("some "):
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None


def _frequency_setup(sys_root: Path) -> tuple[str | None, str | None, bool | None, str | None]:
    """The cpufreq governor(s) and driver, turbo on or off, SMT control: how the host is set up to measure."""
    cpu = sys_root / "devices/system/cpu"
    governors = sorted({g for f in cpu.glob("cpu[0-9]*/cpufreq/scaling_governor") if (g := _read(f))})
    no_turbo, boost = _read(cpu / "intel_pstate/no_turbo"), _read(cpu / "cpufreq/boost")
    # intel_pstate says it inverted; other drivers (acpi-cpufreq, amd) expose cpufreq/boost
    turbo = {"0": True, "1": False}.get(no_turbo) if no_turbo is not None else {"1": True, "0": False}.get(boost or "")
    return ",".join(governors) or None, _read(cpu / "cpu0/cpufreq/scaling_driver"), turbo, _read(cpu / "smt/control")


def _delta(a: float | int | None, b: float | int | None) -> float | None:
    return None if a is None or b is None else max(b - a, 0)


def host_state(start: HostSnapshot, end: HostSnapshot, sys_root: Path = SYS, proc_root: Path = PROC,
               own_work: bool = False) -> HostState:
    """The host between two snapshots, its setup read from `sys_root` and `proc_root`, with its warnings."""
    wall = max(end.at - start.at, 1e-6)
    capacity = wall * end.cores
    other = (end.busy_s - start.busy_s) - (end.excluded_s - start.excluded_s)
    ours = start.excluded | end.excluded
    used = []
    for pid, (name, started, cpu) in end.processes.items():
        before = start.processes.get(pid)
        # a process started within the window spent all its time there (names change: kworker/1:1-events)
        spent = cpu - before[2] if before is not None and before[1] == started else cpu
        if pid not in ours and 100 * spent / wall >= BUSY_PROCESS_MIN_PCT:
            used.append(BusyProcess(name=name, pid=pid, cpu_pct=round(100 * spent / wall, 1)))
    governor, driver, turbo, smt = _frequency_setup(sys_root)
    throttled = _delta(start.throttle_count, end.throttle_count)
    state = HostState(
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), window_s=round(wall, 2),
        own_work=own_work, logical_cores=end.cores,
        other_cpu_pct=round(min(max(100 * other / capacity, 0.0), 100.0), 1),
        steal_pct=round(min(100 * max(end.steal_s - start.steal_s, 0.0) / capacity, 100.0), 1),
        busy_processes=sorted(used, key=lambda p: -p.cpu_pct)[:TOP_PROCESSES],
        load_avg_1m=end.load_avg[0] if end.load_avg else None, load_avg_5m=end.load_avg[1] if end.load_avg else None,
        cpu_pressure_pct=_pressure(proc_root / "pressure/cpu"), cpu_mhz=end.cpu_mhz, cpu_governor=governor,
        cpu_freq_driver=driver, turbo=turbo, smt=smt, throttle_count=end.throttle_count,
        throttled=None if throttled is None else int(throttled), memory_total_mb=_round(end.memory_total_mb),
        memory_available_mb=_round(end.memory_available_mb), memory_pressure_pct=_pressure(proc_root / "pressure/memory"),
        swap_used_mb=_round(end.swap_used_mb), swapped_mb=_round(_delta(start.swapped_mb, end.swapped_mb)),
        on_battery=end.on_battery)
    return state.model_copy(update={"warnings": host_warnings(state)})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def host_warnings(s: HostState) -> list[HostWarning]:
    """What in the state makes measurements move, one line each; the load average and CPU pressure of a window over
    the harness's own measuring work count that work, so they are not judged there."""
    out: list[HostWarning] = []

    def warn(kind: HostWarningKind, message: str) -> None:
        out.append(HostWarning(kind=kind, message=message))

    if s.other_cpu_pct is not None and s.other_cpu_pct >= OTHER_CPU_BUSY_PCT:
        top = ", ".join(f"{p.name} {p.cpu_pct:.0f}%" for p in s.busy_processes)
        warn("other_cpu", f"other processes used {s.other_cpu_pct:.0f}% of all {s.logical_cores or '?'} cores over "
             f"{s.window_s:.1f} s" + (f" (busiest, % of one core: {top})" if top else ""))
    if (not s.own_work and s.load_avg_1m is not None and s.logical_cores
            and s.load_avg_1m >= LOAD_BUSY_PER_CORE * s.logical_cores):
        warn("load", f"load average {s.load_avg_1m:.2f} over the last minute on {s.logical_cores} logical cores")
    if not s.own_work and s.cpu_pressure_pct is not None and s.cpu_pressure_pct >= CPU_PRESSURE_BUSY_PCT:
        warn("cpu_pressure", f"tasks waited for a CPU {s.cpu_pressure_pct:.0f}% of the last 10 s (/proc/pressure/cpu)")
    if s.steal_pct is not None and s.steal_pct >= STEAL_BUSY_PCT:
        warn("steal", f"the hypervisor gave {s.steal_pct:.0f}% of the CPU to other guests over {s.window_s:.1f} s "
             "(steal time)")
    if s.throttled:
        warn("throttle", f"{s.throttled} thermal throttle events in {s.window_s:.1f} s: the CPU slowed itself down")
    if (s.memory_available_mb is not None and s.memory_total_mb
            and s.memory_available_mb < MEMORY_AVAILABLE_LOW_SHARE * s.memory_total_mb):
        warn("memory", f"{s.memory_available_mb:.0f} MiB of {s.memory_total_mb:.0f} MiB memory available")
    elif s.memory_pressure_pct is not None and s.memory_pressure_pct >= MEMORY_PRESSURE_BUSY_PCT:
        warn("memory", f"tasks stalled on memory {s.memory_pressure_pct:.1f}% of the last 10 s "
             "(/proc/pressure/memory)")
    if s.swapped_mb is not None and s.swapped_mb >= SWAPPED_BUSY_MB:
        warn("swap", f"{s.swapped_mb:.0f} MiB swapped in and out in {s.window_s:.1f} s")
    if s.cpu_governor is not None and s.cpu_governor != BENCHMARK_GOVERNOR:
        warn("governor", f"CPU frequency governor {s.cpu_governor}, not {BENCHMARK_GOVERNOR}: the clock follows "
             "the load")
    if s.turbo:
        warn("turbo", "turbo boost on: the clock depends on temperature and on how many cores are busy")
    if s.smt == "on":
        warn("smt", "SMT (hyper-threading) on: work on a sibling thread shares a measuring core")
    if s.on_battery:
        warn("battery", "running on battery: the CPU may be held to a lower clock")
    return out


def read_host_state(window_s: float = WINDOW_S, exclude: Collection[int] | None = None, descendants: bool = True,
                    sys_root: Path = SYS, proc_root: Path = PROC) -> HostState:
    """The host over the next `window_s` seconds (this process and its children excluded by default)."""
    start = snapshot(exclude, descendants, sys_root)
    time.sleep(window_s)
    return host_state(start, snapshot(exclude, descendants, sys_root), sys_root, proc_root)


def watch(exclude: Collection[int] | None = None, descendants: bool = True, own_work: bool = False,
          sys_root: Path = SYS, proc_root: Path = PROC) -> Callable[[], HostState]:
    """Start watching the host now; the function returned gives its state from then until it is called."""
    start = snapshot(exclude, descendants, sys_root)
    return lambda: host_state(start, snapshot(exclude, descendants, sys_root), sys_root, proc_root, own_work)


def _or(value: object, unit: str = "", fmt: str = "{}") -> str:
    return "not readable" if value is None else fmt.format(value) + unit


def describe(s: HostState) -> list[tuple[str, str]]:
    """The state as (what, reading) pairs in words, for `harness host` and the reports; plain text, for the
    caller to escape."""
    top = ", ".join(f"{p.name} (pid {p.pid}) {p.cpu_pct:.0f}%" for p in s.busy_processes)
    load = (f"{s.load_avg_1m:.2f} (1 min), {s.load_avg_5m:.2f} (5 min)" if s.load_avg_1m is not None
            and s.load_avg_5m is not None else "not readable")
    throttle = ("not readable" if s.throttle_count is None
                else f"{s.throttle_count} events since boot, {s.throttled or 0} in the window")
    return [
        ("other processes' CPU", f"{_or(s.other_cpu_pct, '%', '{:.0f}')} of {s.logical_cores or '?'} logical cores "
         f"over {s.window_s:.1f} s" + (f"; busiest (% of one core): {top}" if top else "")),
        ("steal (VM)", _or(s.steal_pct, "%", "{:.0f}")),
        ("load average", load + (" (counts the harness's own work)" if s.own_work else "")),
        ("CPU pressure", _or(s.cpu_pressure_pct, "% of the last 10 s", "{:.1f}")),
        ("CPU clock", _or(s.cpu_mhz, " MHz", "{:.0f}")),
        ("frequency governor", _or(s.cpu_governor) + (f" ({s.cpu_freq_driver})" if s.cpu_freq_driver else "")),
        ("turbo / boost", "not readable" if s.turbo is None else "on" if s.turbo else "off"),
        ("SMT", _or(s.smt)),
        ("thermal throttling", throttle),
        ("memory available", f"{_or(s.memory_available_mb, ' MiB', '{:.0f}')} of "
         f"{_or(s.memory_total_mb, ' MiB', '{:.0f}')}; pressure {_or(s.memory_pressure_pct, '%', '{:.1f}')}"),
        ("swap", f"{_or(s.swap_used_mb, ' MiB', '{:.0f}')} in use, {_or(s.swapped_mb, ' MiB', '{:.0f}')} swapped "
         "in the window"),
        ("power", "not readable" if s.on_battery is None else "battery" if s.on_battery else "mains"),
    ]


def summary(s: HostState) -> str:
    """One line: how busy the host was (plain text)."""
    parts = [f"other processes {s.other_cpu_pct:.0f}% CPU" if s.other_cpu_pct is not None else None,
             f"steal {s.steal_pct:.0f}%" if s.steal_pct else None,
             f"load {s.load_avg_1m:.2f} on {s.logical_cores} cores"
             if s.load_avg_1m is not None and not s.own_work else None,
             f"{s.memory_available_mb:.0f} MiB memory available" if s.memory_available_mb is not None else None]
    return ", ".join(p for p in parts if p) + f" (over {s.window_s:.1f} s at {s.measured_at})"
