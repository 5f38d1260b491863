"""Turn a worker's events into a `CellResult`: metric values per sample and summaries per cell."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from harness.checks import cell_checks
from harness.fidelity import fidelity_values
from harness.metrics import METRICS, batch_values, sample_values
from harness.schema import (
    BatchRecord,
    CellResult,
    CellSpec,
    CellStatus,
    CheckOutputs,
    ReferenceRecord,
    Sample,
)
from harness.stats import summarize


def summaries(samples: list[Sample], cell_values: dict[str, float],
              batches: list[BatchRecord] | None = None) -> dict[str, Any]:
    """Per-metric summaries over the measured (non-warm-up) samples and batches, values pooled."""
    pooled: dict[str, list[float]] = {}
    records: list[Sample | BatchRecord] = [*samples, *(batches or [])]
    for s in records:
        if s.warmup:
            continue
        for tag, vals in s.values.items():
            pooled.setdefault(tag, []).extend(vals)
    out = {tag: summarize(vals) for tag, vals in pooled.items()}
    for tag, v in cell_values.items():
        if tag in METRICS:
            out[tag] = summarize([v])
    return {k: v for k, v in out.items() if v is not None}


def _add_record(kind: str, ev: dict[str, Any], samples: list[Sample], batches: list[BatchRecord]) -> None:
    if kind == "sample":
        s = Sample.model_validate(ev["sample"])
        s.values = sample_values(s)
        samples.append(s)
    else:
        b = BatchRecord.model_validate(ev["batch"])
        b.values = batch_values(b)
        batches.append(b)


def cell_result(spec: CellSpec, events: list[dict[str, Any]], status: CellStatus, error: str | None,
                started_at: str, finished_at: str, wall_s: float) -> CellResult:
    samples: list[Sample] = []
    batches: list[BatchRecord] = []
    cell_values: dict[str, float] = {}
    check_outputs = CheckOutputs()
    notes: list[str] = []
    model_dir = None
    bad_records: list[str] = []
    reference: list[ReferenceRecord] = []
    reference_error: str | None = None
    runtime_versions: dict[str, str | None] = {}
    for ev in events:
        kind = ev.get("event")
        if kind in ("sample", "batch"):
            try:
                _add_record(kind, ev, samples, batches)
            except (ValidationError, KeyError, TypeError) as e:
                # a record this runner cannot read (e.g. from a worker of another harness version) fails
                # the cell with the reason; every record that can be read is kept
                bad_records.append(f"{kind} record unreadable: {' '.join(str(e).split())[:300]}")
        elif kind in ("loaded", "done", "runner"):
            # With several processes the first one's figures stand (its compile is the cold one).
            for k, v in ev.get("cell_values", {}).items():
                cell_values.setdefault(k, v)
            try:
                check_outputs = check_outputs.merged(CheckOutputs.model_validate(ev.get("check_outputs", {})))
            except ValidationError as e:
                bad_records.append(f"check outputs unreadable: {' '.join(str(e).split())[:300]}")
        elif kind == "prepared":
            model_dir = ev.get("model_dir")
            for k in ("model_size_mb", "export_s"):
                if k in ev:
                    cell_values[k] = float(ev[k])
            notes.append("model from cache" if ev.get("cache_hit") else "model exported in this run")
        elif kind == "reference":
            try:
                reference.extend(ReferenceRecord.model_validate(x) for x in ev.get("records", []))
            except ValidationError as e:
                reference_error = f"reference record unreadable: {' '.join(str(e).split())[:300]}"
        elif kind == "reference_error":
            reference_error = reference_error or ev.get("error")
        elif kind == "runtime":
            runtime_versions = runtime_versions or dict(ev.get("versions", {}))
        elif kind == "error" and error is None:
            error = ev.get("error")
    if bad_records:
        status = "failed" if status == "ok" else status
        error = error or f"{len(bad_records)} worker records could not be read; first: {bad_records[0]}"
    if reference:
        cell_values.update(fidelity_values(spec, samples, batches, reference))
    if spec.prompts.vary_per_iteration:
        notes.append("prompt varies per iteration (prefix caching cannot shorten TTFT)")
    result = CellResult(
        key=spec.key, spec=spec, status=status, error=error, started_at=started_at, finished_at=finished_at,
        wall_s=wall_s, samples=samples, batches=batches, cell_values=cell_values,
        summaries=summaries(samples, cell_values, batches),
        check_outputs=check_outputs, model_dir=model_dir, notes=notes, reference=reference,
        reference_error=reference_error, runtime_versions=runtime_versions,
    )
    result.checks = cell_checks(result)
    return result
