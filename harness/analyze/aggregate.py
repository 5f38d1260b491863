"""Turn a worker's events into a `CellResult`: metric values per sample and summaries per cell."""

from __future__ import annotations

from typing import Any

from harness.analyze.checks import cell_checks
from harness.analyze.fidelity import fidelity_values
from harness.analyze.roofline import exceeds_host, exceeds_host_note, last_level_cache_mb, roofline_values
from harness.core.events import (
    BatchEvent,
    Done,
    Error,
    Event,
    Loaded,
    Prepared,
    Reference,
    ReferenceError,
    RunnerValues,
    Runtime,
    SampleEvent,
    ServerReport,
    SloSearchReport,
    TransformersDone,
    Unreadable,
)
from harness.core.metrics import (
    TPOT,
    ExportTime,
    HostMemoryBandwidth,
    ModelSizeOnDisk,
    WeightBytesPerToken,
    batch_values,
    sample_values,
    unknown_tags,
)
from harness.core.schema import (
    BatchRecord,
    CellResult,
    CellSpec,
    CellStatus,
    CheckOutputs,
    ReferenceRecord,
    Sample,
    ServerInfo,
    SloSearch,
)
from harness.core.stats import summarize
from harness.kinds import kind_spec


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
    unknown = unknown_tags(cell_values)
    if unknown:  # events refuse them, so only a bug in the harness's own analysis gets here
        raise ValueError(f"cell values must be metric tags of the registry; unknown: {', '.join(unknown)}")
    for tag, v in cell_values.items():
        out[tag] = summarize([v])
    return {k: v for k, v in out.items() if v is not None}


# An unreadable line that claimed one of these lost measured figures: the cell fails, keeping what it read.
_MEASURED = frozenset({"sample", "batch", "loaded", "done", "runner"})


def _unreadable(u: Unreadable) -> str:
    return f"{u.kind or 'worker'} record unreadable: {u.reason}"


def _measured_probe(search: SloSearch, samples: list[Sample], batches: list[BatchRecord]
                    ) -> tuple[list[Sample], list[BatchRecord]]:
    """An SLO search's figures are those of the load at the rate it found; its other loads are kept as warm-up."""
    def probe_warmup(iteration: int) -> bool:
        return iteration != search.chosen_probe

    return ([s.model_copy(update={"warmup": s.warmup or probe_warmup(s.iteration)}) for s in samples],
            [b.model_copy(update={"warmup": b.warmup or probe_warmup(b.iteration)}) for b in batches])


def cell_result(spec: CellSpec, events: list[Event], status: CellStatus, error: str | None,
                started_at: str, finished_at: str, wall_s: float) -> CellResult:
    """The cell's record from the events of its workers (and the runner's), in the order they came."""
    samples: list[Sample] = []
    batches: list[BatchRecord] = []
    cell_values: dict[str, float] = {}
    check_outputs = CheckOutputs()
    notes: list[str] = []
    model_dir = None
    preparation: list[str] = []
    unreadable: list[Unreadable] = []
    reference: list[ReferenceRecord] = []
    reference_error: str | None = None
    runtime_versions: dict[str, str | None] = {}
    server: ServerInfo | None = None
    search: SloSearch | None = None
    for ev in events:
        match ev:
            case SampleEvent(sample=s):
                samples.append(s.model_copy(update={"values": sample_values(s)}))
            case BatchEvent(batch=b):
                batches.append(b.model_copy(update={"values": batch_values(b)}))
            case Loaded() | Done() | RunnerValues():
                # With several processes the first one's figures stand (its compile is the cold one).
                for k, v in ev.cell_values.items():
                    cell_values.setdefault(k, v)
                if isinstance(ev, Done):
                    check_outputs = check_outputs.merged(ev.check_outputs)
            case Prepared() if not ev.model_dir:
                notes.append("no local model: the server serves its own")
            case Prepared():
                model_dir = ev.model_dir
                weight_mb = None if ev.weight_bytes_per_token is None else ev.weight_bytes_per_token / 1e6
                for tag, x in ((ModelSizeOnDisk.tag, ev.model_size_mb), (ExportTime.tag, ev.export_s),
                               (WeightBytesPerToken.tag, weight_mb)):
                    if x is not None:
                        cell_values[tag] = x
                notes.append("model from cache" if ev.cache_hit else "model exported in this run")
                preparation = list(ev.notes)
            case ServerReport():
                server = server or ev.server
            case SloSearchReport():
                search = search or ev.search
            case Reference(records=records):
                reference.extend(records)
            case ReferenceError():
                reference_error = reference_error or ev.error
            case TransformersDone(reference=found):
                check_outputs = check_outputs.merged(CheckOutputs(transformers=found))
            case Runtime(versions=versions):
                runtime_versions = runtime_versions or dict(versions)
            case Error() if error is None:
                error = ev.error
            case Unreadable():
                unreadable.append(ev)
                if ev.kind == "reference":
                    reference_error = reference_error or _unreadable(ev)
    if unreadable:
        # kept out of the figures, never silently: e.g. a worker of another harness version, a torn write
        first = unreadable[0]
        notes.append(f"{len(unreadable)} record(s) could not be read and are left out; first: "
                     f"{_unreadable(first)} (line: {first.line!r})")
        lost = [u for u in unreadable if u.kind in _MEASURED]
        if lost:
            status = "failed" if status == "ok" else status
            error = error or f"{len(lost)} worker records could not be read; first: {_unreadable(lost[0])}"
    if search is not None:
        samples, batches = _measured_probe(search, samples, batches)
    if reference:
        cell_values.update(fidelity_values(spec, samples, batches, reference))
    if kind_spec(spec.scenario.kind).roofline:
        cell_values.update(roofline_values(
            cell_values.get(WeightBytesPerToken.tag), cell_values.get(HostMemoryBandwidth.tag),
            (v for s in samples if not s.warmup for v in s.values.get(TPOT.tag, []))))
        if exceeds_host(cell_values):
            notes.append(exceeds_host_note(cell_values, last_level_cache_mb()))
    if kind_spec(spec.scenario.kind).served:  # figures of the whole load over time, from its stored requests
        from harness.analyze.load_analysis import load_values

        load = next((b for b in batches if not b.warmup), None)
        cell_values.update(load_values(samples, load, check_outputs.load_timeline))
    if spec.prompts.vary_per_iteration:
        notes.append("prompt varies per iteration (prefix caching cannot shorten TTFT)")
    result = CellResult(
        key=spec.key, spec=spec, status=status, error=error, started_at=started_at, finished_at=finished_at,
        wall_s=wall_s, samples=samples, batches=batches, cell_values=cell_values,
        summaries=summaries(samples, cell_values, batches),
        check_outputs=check_outputs, model_dir=model_dir, preparation=preparation, notes=notes, reference=reference,
        reference_error=reference_error, runtime_versions=runtime_versions, server=server,
        slo_search=search,
    )
    result.checks = cell_checks(result)
    return result


def median_values(events: list[Event], spec: CellSpec) -> dict[str, float]:
    """Each metric's median over the measured calls in `events` (or its one value): one worker process's value,
    or one call's (the paired A/B engine's call pairs)."""
    return {tag: s.median for tag, s in cell_result(spec, events, "ok", None, "", "", 0.0).summaries.items()}
