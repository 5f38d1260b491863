"""How a cell judged on its own (the pytest front door's items) differs from one judged in a whole run: accuracy
gates whose reference is not there, and a baseline run's cell of the same key."""

from __future__ import annotations

from harness.analyze.accuracy import ACCURACY_TAGS
from harness.analyze.compare import DEFAULT_THRESHOLDS, CompareSettings, compare_runs
from harness.core.schema import CellResult, CheckResult, RunMetadata, RunResults


def unjudged_accuracy_gates(cell: CellResult) -> CellResult:
    """An accuracy gate whose reference cell is not in the session (deselected with -m, or not in the suite) cannot
    be judged by this item: it is not run, with the reason, rather than failed as unmeasured."""
    acc = next((c for c in cell.checks if c.name.startswith("accuracy_vs_")), None)
    if acc is None or acc.status != "not_run" or any(t in cell.summaries for t in ACCURACY_TAGS):
        return cell
    checks = [CheckResult(name=c.name, status="not_run", detail=f"not judged in this session: {acc.detail}",
                          gate=c.gate)
              if c.gate is not None and c.gate.metric in ACCURACY_TAGS and c.status == "fail" else c
              for c in cell.checks]
    return cell.model_copy(update={"checks": checks})


def baseline_regressions(baseline: RunResults, meta: RunMetadata, result: CellResult) -> list[str] | None:
    """The metrics of `result` that regressed against the baseline's cell of the same key (under the baseline's
    compare thresholds), a line each; None when the baseline has no such cell."""
    base_cell = next((c for c in baseline.cells if c.key == result.key), None)
    if base_cell is None:
        return None
    thresholds = {**DEFAULT_THRESHOLDS, **baseline.metadata.compare_thresholds}
    comp = compare_runs(RunResults(metadata=baseline.metadata, cells=[base_cell]),
                        RunResults(metadata=meta, cells=[result]), CompareSettings(thresholds=thresholds))
    return [f"{m.metric} {m.base_median:.3g} -> {m.candidate_median:.3g} {m.unit} ({(m.ratio - 1) * 100:+.1f}%)"
            for _, m in comp.regressions()]
