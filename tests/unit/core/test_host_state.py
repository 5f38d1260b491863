"""The quiet-host check: readings from fake /sys and /proc trees and hand-made snapshots, the warnings' thresholds,
and the exclusion of the harness's own processes from other work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.host_state import (
    CPU_PRESSURE_BUSY_PCT,
    LOAD_BUSY_PER_CORE,
    MEMORY_AVAILABLE_LOW_SHARE,
    MEMORY_PRESSURE_BUSY_PCT,
    OTHER_CPU_BUSY_PCT,
    STEAL_BUSY_PCT,
    SWAPPED_BUSY_MB,
    HostSnapshot,
    describe,
    host_state,
    host_warnings,
    read_host_state,
    snapshot,
)
from harness.core.schema import HostState


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _snap(at: float, busy: float, excluded: float = 0.0, steal: float = 0.0, processes=None, throttle=None,
          swapped: float | None = 0.0) -> HostSnapshot:
    return HostSnapshot(at=at, cores=2, busy_s=busy, steal_s=steal, excluded_s=excluded, excluded=frozenset({1}),
                        processes=processes or {}, load_avg=(0.2, 0.3, 0.4), memory_total_mb=16384.0,
                        memory_available_mb=12000.0, swap_used_mb=0.0, swapped_mb=swapped, throttle_count=throttle,
                        cpu_mhz=2100.0)


CPU = "devices/system/cpu"
BARE_METAL = {
    f"{CPU}/cpu0/cpufreq/scaling_governor": "powersave\n", f"{CPU}/cpu1/cpufreq/scaling_governor": "performance\n",
    f"{CPU}/cpu0/cpufreq/scaling_driver": "intel_pstate\n", f"{CPU}/intel_pstate/no_turbo": "0\n",
    f"{CPU}/smt/control": "on\n",
    f"{CPU}/cpu0/thermal_throttle/core_throttle_count": "3\n",
    f"{CPU}/cpu0/thermal_throttle/package_throttle_count": "5\n",
    f"{CPU}/cpu1/thermal_throttle/core_throttle_count": "2\n",
}
PRESSURE = {"pressure/cpu": "some avg10=12.50 avg60=3.00 avg300=1.00 total=100\nfull avg10=0.00 avg60=0.00 "
            "avg300=0.00 total=0\n", "pressure/memory": "some avg10=0.40 avg60=0.10 avg300=0.00 total=5\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"}


def test_a_bare_metal_hosts_setup_and_other_work_are_read_from_its_trees(tmp_path: Path):
    sys_root, proc_root = _files(tmp_path / "sys", BARE_METAL), _files(tmp_path / "proc", PRESSURE)
    # 1 s on 2 cores: 1.2 s busy, 0.2 s of it the harness's; a compiler ran 0.9 s; a kworker renamed itself
    # (the same process: its start time did not change); pid 50 is a new process that reused an old pid
    start = _snap(10.0, 100.0, 5.0, steal=1.0, throttle=10, processes={
        40: ("cc1", 1.0, 3.0), 41: ("kworker/0:1-events", 1.0, 7.0), 50: ("old", 1.0, 9.0)})
    end = _snap(11.0, 101.2, 5.2, steal=1.2, throttle=10, processes={
        40: ("cc1", 1.0, 3.9), 41: ("kworker/0:1-cgroup", 1.0, 7.01), 50: ("new", 10.5, 0.3)})
    s = host_state(start, end, sys_root, proc_root)
    assert (s.other_cpu_pct, s.steal_pct, s.window_s, s.logical_cores) == (50.0, 10.0, 1.0, 2)
    assert [(p.name, p.cpu_pct) for p in s.busy_processes] == [("cc1", 90.0), ("new", 30.0)]
    assert (s.cpu_governor, s.cpu_freq_driver, s.turbo, s.smt) == ("performance,powersave", "intel_pstate", True, "on")
    assert (s.throttle_count, s.throttled) == (10, 0)
    assert (s.cpu_pressure_pct, s.memory_pressure_pct) == (12.5, 0.4)
    kinds = [w.kind for w in s.warnings]
    assert kinds == ["other_cpu", "cpu_pressure", "steal", "governor", "turbo", "smt"] and s.busy
    assert "cc1 90%" in s.warnings[0].message and "50% of all 2 cores over 1.0 s" in s.warnings[0].message
    assert s.load().busy and s.load().other_cpu_pct == 50.0
    assert dict(describe(s))["thermal throttling"] == "10 events since boot, 0 in the window"


def test_a_container_that_hides_sys_and_proc_reads_none_and_warns_of_nothing_it_cannot_see(tmp_path: Path):
    s = host_state(_snap(0.0, 10.0, swapped=None), _snap(0.5, 10.0, swapped=None), tmp_path / "sys",
                   tmp_path / "proc")
    assert (s.cpu_governor, s.cpu_freq_driver, s.turbo, s.smt) == (None, None, None, None)
    assert (s.throttle_count, s.throttled, s.cpu_pressure_pct, s.memory_pressure_pct, s.swapped_mb) == (None,) * 5
    assert s.other_cpu_pct == 0.0 and s.warnings == [] and not s.busy
    assert dict(describe(s))["SMT"] == "not readable"


def test_turbo_from_cpufreq_boost_and_throttling_during_the_window(tmp_path: Path):
    sys_root = _files(tmp_path, {f"{CPU}/cpufreq/boost": "0\n", f"{CPU}/cpu0/cpufreq/scaling_governor": "performance"})
    s = host_state(_snap(0.0, 0.0, throttle=4), _snap(2.0, 0.0, throttle=7), sys_root, tmp_path / "none")
    assert (s.turbo, s.cpu_governor, s.throttled) == (False, "performance", 3)
    assert [w.kind for w in s.warnings] == ["throttle"] and s.busy


def test_snapshot_sums_the_throttle_counters_under_its_sys_root(tmp_path: Path):
    sys_root = _files(tmp_path, BARE_METAL)
    snap = snapshot(sys_root=sys_root)
    assert snap.throttle_count == 10 and os.getpid() in snap.excluded and os.getpid() not in snap.processes
    assert snapshot(sys_root=tmp_path / "empty").throttle_count is None


def _state(**readings) -> HostState:
    base = {"measured_at": "2026-01-01T00:00:00+00:00", "window_s": 0.5, "logical_cores": 4}
    return HostState(**{**base, **readings})


LOW = 1000.0 * MEMORY_AVAILABLE_LOW_SHARE


@pytest.mark.parametrize(("at", "below", "kind"), [
    ({"other_cpu_pct": OTHER_CPU_BUSY_PCT}, {"other_cpu_pct": OTHER_CPU_BUSY_PCT - 0.1}, "other_cpu"),
    ({"load_avg_1m": LOAD_BUSY_PER_CORE * 4}, {"load_avg_1m": LOAD_BUSY_PER_CORE * 4 - 0.01}, "load"),
    ({"cpu_pressure_pct": CPU_PRESSURE_BUSY_PCT}, {"cpu_pressure_pct": CPU_PRESSURE_BUSY_PCT - 0.1}, "cpu_pressure"),
    ({"steal_pct": STEAL_BUSY_PCT}, {"steal_pct": STEAL_BUSY_PCT - 0.1}, "steal"),
    ({"throttled": 1}, {"throttled": 0}, "throttle"),
    ({"memory_total_mb": 1000.0, "memory_available_mb": LOW - 1}, {"memory_total_mb": 1000.0,
                                                                     "memory_available_mb": LOW}, "memory"),
    ({"memory_pressure_pct": MEMORY_PRESSURE_BUSY_PCT}, {"memory_pressure_pct": MEMORY_PRESSURE_BUSY_PCT - 0.1},
     "memory"),
    ({"swapped_mb": SWAPPED_BUSY_MB}, {"swapped_mb": SWAPPED_BUSY_MB - 0.1}, "swap"),
])
def test_each_busy_reading_warns_at_its_threshold_and_not_below(at: dict, below: dict, kind: str):
    warned = host_warnings(_state(**at))
    assert [w.kind for w in warned] == [kind] and warned[0].busy and _state(warnings=warned).busy
    assert host_warnings(_state(**below)) == []


def test_the_hosts_setup_warns_without_making_it_busy():
    warned = host_warnings(_state(cpu_governor="powersave", turbo=True, smt="on", on_battery=True))
    assert [w.kind for w in warned] == ["governor", "turbo", "smt", "battery"]
    assert not _state(warnings=warned).busy
    assert host_warnings(_state(cpu_governor="performance", turbo=False, smt="off", on_battery=False)) == []


def test_over_the_harnesss_own_work_load_and_cpu_pressure_are_recorded_but_not_judged():
    """A cell's measuring workers keep every core busy: the load average and CPU pressure count them."""
    busy_looking = {"load_avg_1m": 4.0, "cpu_pressure_pct": 90.0}
    assert [w.kind for w in host_warnings(_state(**busy_looking))] == ["load", "cpu_pressure"]
    assert host_warnings(_state(own_work=True, **busy_looking)) == []
    assert [w.kind for w in host_warnings(_state(own_work=True, other_cpu_pct=30.0))] == ["other_cpu"]


def test_a_child_process_is_other_work_unless_the_tree_is_excluded():
    """Two real windows over a busy child: with descendants it is the harness's own work (a cell's worker), without
    them it is other work (the drill's hogs beside a bandwidth measurement)."""
    burn = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 5: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        mine = read_host_state(window_s=0.3, descendants=True)
        other = read_host_state(window_s=0.3, descendants=False)
    finally:
        child.kill()
        child.wait()
    assert child.pid not in {p.pid for p in mine.busy_processes}
    assert child.pid in {p.pid for p in other.busy_processes}
    assert other.other_cpu_pct is not None and other.other_cpu_pct > 0


def test_a_reaped_childs_cpu_counts_as_the_harnesss_own_work_only_with_descendants():
    """A cell's worker has exited and been waited for when the cell's window closes: its CPU moved into this
    process's children times, which count as the harness's own with descendants, and as other work without."""
    tree, alone = snapshot(descendants=True), snapshot(descendants=False)
    subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < 0.4: pass\n"],
                   check=True)
    assert snapshot(descendants=True).excluded_s - tree.excluded_s >= 0.3
    assert snapshot(descendants=False).excluded_s - alone.excluded_s < 0.2
