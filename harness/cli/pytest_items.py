"""The pytest front door's items: a suite file collected as one item per cell, run in this session's run
directory (HarnessRun) and judged as harness/cli/pytest_plugin.py describes."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.analyze.checks import run_level_checks
from harness.analyze.history import load_run
from harness.analyze.session_checks import baseline_regressions, unjudged_accuracy_gates
from harness.core.schema import FAILED_STATUSES, CellResult, CellSpec
from harness.execute.run_options import RunOptions
from harness.execute.run_record import new_run_metadata, now_iso
from harness.execute.runner import run_cell
from harness.execute.worker_process import ProgressSink
from harness.models.cache import default_cache_dir
from harness.plan.overrides import expand_overridden, set_overrides
from harness.plan.suite import load_suite
from harness.records.store import append_cell, write_metadata


def marker_name(value: str) -> str:
    """A pytest marker for an axis value: 'HETERO:GPU,CPU' -> 'hetero_gpu_cpu'."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_") or "none"


class HarnessRun:
    """The session's run directory, metadata and baseline, shared by all cell items."""

    def __init__(self, config: pytest.Config) -> None:
        import openvino as ov

        out = config.getoption("harness_out")
        self.run_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="harness-pytest-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        core = ov.Core()
        cache = config.getoption("harness_cache")
        self.options = RunOptions(cache_dir=Path(cache) if cache else default_cache_dir(),
                                  available_devices=list(core.available_devices))
        self.meta = new_run_metadata(f"pytest-{now_iso()}", core,
                                     ",".join(Path(s).stem for s in config.getoption("suite")))
        self.meta.overrides = getattr(config, "_harness_overrides", [])
        self.meta.dropped_gates = getattr(config, "_harness_dropped_gates", [])
        write_metadata(self.run_dir, self.meta)
        self.cells: list[CellResult] = []  # this session's results so far, for the cross-cell checks
        self.baseline = None
        ref = config.getoption("baseline")
        if ref:
            self.baseline = load_run(ref, config.getoption("harness_db"))


def _harness_run(config: pytest.Config) -> HarnessRun:
    if not hasattr(config, "_harness_run"):
        config._harness_run = HarnessRun(config)  # type: ignore[attr-defined]
    return config._harness_run  # type: ignore[attr-defined]


class SuiteFile(pytest.File):
    def collect(self):
        written, _ = load_suite(self.path)
        overridden = expand_overridden(written, set_overrides(self.config.getoption("harness_set")), self.path)
        # the same overrides apply to every suite of the session; the run's metadata records them (HarnessRun)
        self.config._harness_overrides = overridden.overrides  # type: ignore[attr-defined]
        dropped = getattr(self.config, "_harness_dropped_gates", [])
        self.config._harness_dropped_gates = dropped + overridden.dropped_gates  # type: ignore[attr-defined]
        for cell in overridden.cells:
            item = CellItem.from_parent(self, name=cell.key, cell=cell)
            for value in (cell.precision, cell.device, cell.scenario.kind, cell.model.name):
                name = marker_name(value)
                self.config.addinivalue_line("markers", f"{name}: harness axis value {value}")
                item.add_marker(name)
            yield item


class CellFailure(Exception):
    pass


class CellItem(pytest.Item):
    def __init__(self, *, cell: CellSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell = cell

    def runtest(self) -> None:

        hr = _harness_run(self.config)
        result = run_cell(self.cell, hr.run_dir, hr.options, ProgressSink())
        append_cell(hr.run_dir, result)
        result = _with_session_checks(hr, result)
        self.user_properties.append(("harness_status", result.status))
        _record_benchmark(self.config, result)
        if result.status == "skipped":
            pytest.skip(result.error or "skipped")
        if result.status != "ok":
            raise CellFailure(f"{result.status}: {result.error}")
        failed = [c for c in result.checks if c.status == "fail"]
        if failed:
            raise CellFailure("; ".join(f"check {c.name} failed: {c.detail}" for c in failed))
        if hr.baseline is not None:
            found = baseline_regressions(hr.baseline, hr.meta, result)
            if found is None:
                pytest.skip(f"no cell {result.key} in the baseline {hr.baseline.metadata.run_id}")
            if found:
                raise CellFailure("regression vs baseline: " + "; ".join(found))

    def repr_failure(self, excinfo, style=None):  # noqa: ANN001
        if isinstance(excinfo.value, CellFailure):
            return f"{self.cell.key}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"cell {self.cell.key}"


def _with_session_checks(hr: HarnessRun, result: CellResult) -> CellResult:
    """The cell's cross-cell checks against the cells this session ran before it (matches_greedy, accuracy against
    fp16 and the gates on it), as `harness run` adds them."""
    hr.cells.append(result)
    return unjudged_accuracy_gates(run_level_checks(hr.cells)[-1])


def _record_benchmark(config: pytest.Config, result: CellResult) -> None:
    """Hand the cell's per-iteration e2e times to pytest-benchmark's session, if it is active."""
    session = getattr(config, "_benchmarksession", None)
    measured = [s for s in result.samples if not s.warmup]
    if session is None or session.disabled or not measured:
        return
    from pytest_benchmark.stats import Metadata

    extra: dict[str, Any] = {tag: s.median for tag, s in result.summaries.items()}
    extra.update({"cell": result.key, "status": result.status, "unit_of_timing": "e2e seconds per generate()"})
    fixture = SimpleNamespace(name=result.key, fullname=f"harness::{result.key}", group=result.spec.scenario.kind,
                              param=None, params=result.spec.axes(), extra_info=extra, cprofile_stats=None,
                              has_error=result.status in FAILED_STATUSES)
    meta = Metadata(fixture, iterations=1, options={"source": "ov-genai-harness"})
    for s in measured:
        meta.stats.update((s.end_ns - s.start_ns) / 1e9)
    session.benchmarks.append(meta)


