"""A run records the host's state: before its first cell (its warnings said, one line each) and over each cell's
measuring processes, with the cell's worker processes counted as the harness's own work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.events import SampleEvent
from harness.core.schema import HostState, HostWarning
from harness.execute import runner, session
from harness.execute.run_options import RunOptions
from harness.execute.runner import PreparedCell
from harness.execute.worker import WorkerTask
from harness.execute.worker_process import ProgressSink
from tests import factories

BURN = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.4: pass\n"


class NoPreparations:
    def for_cell(self, cell):
        return None


def test_a_cells_host_state_is_taken_over_its_measuring_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cell = factories.spec()
    task = WorkerTask(mode="measure", cell=cell, cache_dir=str(tmp_path), workdir=str(tmp_path), model_dir="")
    monkeypatch.setattr(runner, "prepare_cell", lambda *a, **k: PreparedCell(cell, tmp_path, [], "ok", None, task))
    workers: list[int] = []

    def measure_process(prepared, process, options, progress):
        # a measuring worker: a child process busy for 0.4 s, the harness's own work, not other work
        worker = subprocess.Popen([sys.executable, "-c", BURN])
        worker.wait()
        workers.append(worker.pid)
        return [SampleEvent(sample=factories.sample(process))], "ok", None

    monkeypatch.setattr(runner, "measure_process", measure_process)
    options = RunOptions(cache_dir=tmp_path, available_devices=["CPU"], keep_workdirs=True)
    result = runner.run_cell(cell, tmp_path, options, ProgressSink(), NoPreparations())  # type: ignore[arg-type]
    state = result.host_state
    assert state is not None and state.own_work and state.window_s >= 0.4 * cell.processes
    assert len(workers) == cell.processes
    assert result.model_dump()["host_state"]["window_s"] == state.window_s  # kept in the cell's record


def test_a_run_says_each_host_warning_before_measuring_and_goes_on(monkeypatch: pytest.MonkeyPatch):
    warned = HostState(measured_at="t", window_s=0.5, warnings=[
        HostWarning(kind="other_cpu", message="other processes used 60% of all 2 cores over 0.5 s"),
        HostWarning(kind="turbo", message="turbo boost on")])
    monkeypatch.setattr(session, "read_host_state", lambda: warned)

    class Said:
        def __init__(self) -> None:
            self.info_lines: list[str] = []
            self.warnings: list[str] = []

        def info(self, text: str) -> None:
            self.info_lines.append(text)

        def warn(self, text: str) -> None:
            self.warnings.append(text)

    said = Said()
    assert session.quiet_host_check(said) is warned
    assert said.warnings == ["host: other processes used 60% of all 2 cores over 0.5 s", "host: turbo boost on"]


def test_a_run_warns_when_its_bandwidth_figure_is_a_busy_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from harness.core.schema import BandwidthReading, HostLoad, MemoryBandwidth

    busy = HostLoad(other_cpu_pct=70.0, busy=True)
    readings = [BandwidthReading(kind=kind, triad_gbs=gbs, triad_median_gbs=gbs, seconds=1.0, measured_at="t",
                                 load=busy) for kind, gbs in (("full", 6.0), ("check", 7.0), ("check", 6.5))]
    figure = MemoryBandwidth(triad_gbs=7.0, triad_median_gbs=7.0, array_mb=400, threads=2, seconds=3.0,
                             measured_at="t", fingerprint="f", method="m", this_run=readings[0], best=readings[1],
                             remeasured=readings[1:])
    monkeypatch.setattr(session, "measured_bandwidth", lambda cache, host: figure)
    said: list[tuple[str, str]] = []

    class Say:
        def info(self, text: str) -> None:
            said.append(("info", text))

        def warn(self, text: str) -> None:
            said.append(("warn", text))

    session.host_bandwidth(tmp_path, factories.run([]).metadata.host, Say())
    assert said[0] == ("info", "memory bandwidth: triad 7.0 GB/s (measured in 3.0 s; too low or taken on a busy host, "
                               "so measured 2 more times: 7.0, 6.5 GB/s)")
    assert said[1][0] == "warn" and "other processes 70% CPU: other work is running" in said[1][1]
    assert said[2][0] == "warn" and "comes from readings taken on a busy host only" in said[2][1]
