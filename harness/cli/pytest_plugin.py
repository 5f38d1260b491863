"""pytest front door: `pytest suites/ --suite suites/nightly.yaml` runs every cell as a test item.

A cell passes when it ran (a missing device makes it a skip), every recorded check passed, and,
with `--baseline REF`, no metric regressed against the baseline's cell of the same key. Cross-cell checks are
made against the cells the session ran before (the fp16 reference runs before its int8/int4 cells); an accuracy
gate whose reference is not in the session (e.g. `-m int4`) is not judged (not run, with the reason). Items carry
markers for precision, device, scenario kind and model (`-m "int4 and not speculative"`). With
pytest-benchmark installed, each cell's per-iteration e2e times join its JSON/storage
(`--benchmark-json`, `--benchmark-autosave`), the LLM metrics in `extra_info`. `--harness-set KEY=VALUE` (and
the HARNESS_SET environment variable) change the suites' fields as `harness run --set` does.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.core.schema import FAILED_STATUSES, CellResult, CellSpec


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "OpenVINO GenAI benchmark harness")
    g.addoption("--suite", action="append", default=[], help="suite file whose cells become test items")
    g.addoption("--baseline", default=None, help="run dir, results.json, run id, baseline name or last-good")
    g.addoption("--harness-out", default=None, help="run directory for the results (default: a temp dir)")
    g.addoption("--harness-cache", default=None, help="model cache (default: ~/.cache/ov-genai-harness)")
    g.addoption("--harness-db", default=None, help="history database URL for --baseline references")
    g.addoption("--harness-set", action="append", default=[], metavar="KEY=VALUE",
                help="change a field of the suites, as harness run --set (repeatable; HARNESS_SET applies first)")


def marker_name(value: str) -> str:
    """A pytest marker for an axis value: 'HETERO:GPU,CPU' -> 'hetero_gpu_cpu'."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_") or "none"


class HarnessRun:
    """The session's run directory, metadata and baseline, shared by all cell items."""

    def __init__(self, config: pytest.Config) -> None:
        import openvino as ov

        from harness.core import host
        from harness.core.schema import RunMetadata
        from harness.core.store import write_metadata
        from harness.execute.runner import RunOptions, now_iso
        from harness.models.cache import default_cache_dir
        from harness.plan.devices import list_devices

        out = config.getoption("harness_out")
        self.run_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="harness-pytest-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        core = ov.Core()
        cache = config.getoption("harness_cache")
        self.options = RunOptions(cache_dir=Path(cache) if cache else default_cache_dir(),
                                  available_devices=list(core.available_devices))
        self.meta = RunMetadata(
            run_id=f"pytest-{now_iso()}", suite_name=",".join(Path(s).stem for s in config.getoption("suite")),
            suite_file=None, suite_sha256=None, started_at=now_iso(), command=["pytest"],
            host=host.host_info(), versions=host.package_versions(), harness_commit=host.git_commit(),
            devices=list_devices(core), overrides=getattr(config, "_harness_overrides", []),
            dropped_gates=getattr(config, "_harness_dropped_gates", []))
        write_metadata(self.run_dir, self.meta)
        self.cells: list[CellResult] = []  # this session's results so far, for the cross-cell checks
        self.baseline = None
        ref = config.getoption("baseline")
        if ref:
            from harness.analyze.history import load_run

            self.baseline = load_run(ref, config.getoption("harness_db"))


def _harness_run(config: pytest.Config) -> HarnessRun:
    if not hasattr(config, "_harness_run"):
        config._harness_run = HarnessRun(config)  # type: ignore[attr-defined]
    return config._harness_run  # type: ignore[attr-defined]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    wanted = {Path(s).resolve() for s in parent.config.getoption("suite")}
    if file_path.suffix in (".yaml", ".yml") and file_path.resolve() in wanted:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    def collect(self):
        from harness.plan.overrides import expand_overridden, set_overrides
        from harness.plan.suite import load_suite

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
        from harness.core.store import append_cell
        from harness.execute.runner import ProgressSink, run_cell

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
            _gate_on_baseline(hr, result)

    def repr_failure(self, excinfo, style=None):  # noqa: ANN001
        if isinstance(excinfo.value, CellFailure):
            return f"{self.cell.key}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"cell {self.cell.key}"


def _with_session_checks(hr: HarnessRun, result: CellResult) -> CellResult:
    """The cell's cross-cell checks against the cells this session ran before it (matches_greedy, accuracy against
    fp16 and the gates on it), as `harness run` adds them."""
    from harness.analyze.checks import run_level_checks

    hr.cells.append(result)
    return _unjudged_accuracy_gates(run_level_checks(hr.cells)[-1])


def _unjudged_accuracy_gates(cell: CellResult) -> CellResult:
    """An accuracy gate whose reference cell is not in the session (deselected with -m, or not in the suite) cannot
    be judged by this item: it is not run, with the reason, rather than failed as unmeasured."""
    from harness.analyze.accuracy import ACCURACY_TAGS
    from harness.core.schema import CheckResult

    acc = next((c for c in cell.checks if c.name.startswith("accuracy_vs_")), None)
    if acc is None or acc.status != "not_run" or any(t in cell.summaries for t in ACCURACY_TAGS):
        return cell
    checks = [CheckResult(name=c.name, status="not_run", detail=f"not judged in this session: {acc.detail}",
                          gate=c.gate)
              if c.gate is not None and c.gate.metric in ACCURACY_TAGS and c.status == "fail" else c
              for c in cell.checks]
    return cell.model_copy(update={"checks": checks})


def _gate_on_baseline(hr: HarnessRun, result: CellResult) -> None:
    from harness.analyze.compare import DEFAULT_THRESHOLDS, CompareSettings, compare_runs
    from harness.core.schema import RunResults

    baseline = hr.baseline
    assert baseline is not None  # only called with a baseline
    base_cell = next((c for c in baseline.cells if c.key == result.key), None)
    if base_cell is None:
        pytest.skip(f"no cell {result.key} in the baseline {baseline.metadata.run_id}")
    thresholds = {**DEFAULT_THRESHOLDS, **baseline.metadata.compare_thresholds}
    comp = compare_runs(RunResults(metadata=baseline.metadata, cells=[base_cell]),
                        RunResults(metadata=hr.meta, cells=[result]), CompareSettings(thresholds=thresholds))
    bad = comp.regressions()
    if bad:
        raise CellFailure("regression vs baseline: " + "; ".join(
            f"{m.metric} {m.base_median:.3g} -> {m.candidate_median:.3g} {m.unit} ({(m.ratio - 1) * 100:+.1f}%)"
            for _, m in bad))


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    hr = getattr(session.config, "_harness_run", None)
    if hr is None:
        return
    from harness.core.store import write_metadata, write_results
    from harness.execute.runner import assemble, now_iso

    hr.meta.finished_at = now_iso()
    write_metadata(hr.run_dir, hr.meta)
    results = assemble(hr.run_dir, hr.meta)
    results.cells = [_unjudged_accuracy_gates(c) for c in results.cells]  # as the items judged them
    write_results(hr.run_dir, results)
