"""The one runner: every cell in its own worker process, results appended as they finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.analyze.aggregate import cell_result
from harness.core.errors import HarnessInputError
from harness.core.events import (
    Done,
    Event,
    Phase,
    Prepared,
    Reference,
    ReferenceError,
    RunnerValues,
    TransformersDone,
    Unreadable,
)
from harness.core.host_state import watch
from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, load_json
from harness.core.metrics import HostMemoryBandwidth, RunnerCPU, WeightBytesPerToken
from harness.core.schema import (
    CellResult,
    CellSpec,
    CellStatus,
    CheckOutputs,
    RunMetadata,
    RunResults,
)
from harness.execute import worker_process
from harness.execute.preparation import Preparation, Role, failed_preparation
from harness.execute.preparations import Preparations
from harness.execute.run_options import RunOptions
from harness.execute.run_record import RunRecord, execute, now_iso
from harness.execute.worker import WorkerTask
from harness.execute.worker_process import ProgressSink, cell_workdir
from harness.kinds import kind_spec
from harness.plan.devices import missing_devices
from harness.plan.environments import PreparedEnvironment


def run_cell(cell: CellSpec, run_dir: Path, options: RunOptions, progress: ProgressSink,
             preparations: Preparations | None = None) -> CellResult:
    """Run one cell: its models prepared in worker processes (once per run for every cell that needs them, with
    `preparations`, before the cell starts and outside its time limits), measured in fresh ones, so that export
    work never shows in the cell's peak memory. Never raises for the cell's own failures."""
    missing = [] if cell.remote else missing_devices(cell.device, options.available_devices)
    if missing:
        return cell_result(cell, [], "skipped",
                           f"device {', '.join(missing)} not available on this host (available: "
                           f"{', '.join(options.available_devices) or 'none'})", now_iso(), now_iso(), 0.0)
    # without a run's preparations (a cluster node, the pytest plugin) the cell prepares its own, within its
    # prepare timeout as a whole
    shared = (preparations or Preparations(run_dir, options, progress, limit="total")).for_cell(cell)
    started, t0 = now_iso(), time.monotonic()
    failure = next((f for role, p in (shared or {}).items() if (f := p.failure(role)) is not None), None)
    if failure is not None:
        return failed_preparation(cell, failure, started, now_iso())
    prepared = prepare_cell(cell, run_dir, options, progress, shared)
    events, status, error = prepared.events, prepared.status, prepared.error
    host_state = None
    if prepared.task is not None:
        reference = _reference_runner(cell, prepared.task, prepared.workdir, prepared.env)
        # the runner's own CPU over the worker processes' wall time (reference runs left out of both)
        busy, wall = 0.0, 0.0
        # other work on the host over the measuring processes: two snapshots, the harness and its workers excluded
        host = watch(own_work=True)
        for process in range(cell.processes):
            # Odd processes run their reference first, so neither side always runs in the other's wake.
            if reference and process % 2:
                events.append(reference(process))
            cpu0, wall0 = time.process_time(), time.monotonic()
            more, status, error = measure_process(prepared, process, options, progress)
            busy, wall = busy + time.process_time() - cpu0, wall + time.monotonic() - wall0
            events += more
            if status != "ok":
                break
            if reference and not process % 2:
                events.append(reference(process))
        host_state = host()
        if status == "ok":
            found = transformers_reference(prepared, events, progress, options.cache_dir)
            if found is not None:
                events.append(found)
        if wall > 0:
            events.append(RunnerValues(cell_values={RunnerCPU.tag: 100.0 * busy / wall}))
        if options.memory_bandwidth_gbs is not None:
            events.append(RunnerValues(cell_values={HostMemoryBandwidth.tag: options.memory_bandwidth_gbs}))
    ratios, note = None, None
    if status == "ok" and prepared.task is not None and cell.reference_side is not None:
        from harness.execute.paired import call_pairing_possible
        from harness.execute.reference_side import measure_vs_reference, reference_cell

        ref_cell = reference_cell(cell)
        ref = (prepare_cell(ref_cell, run_dir / "reference-side", options, progress)
               if call_pairing_possible(cell, ref_cell) else None)
        ratios, note = measure_vs_reference(prepared, ref, options, progress)
    if not options.keep_workdirs:
        worker_process.remove_tree(prepared.workdir / "compile-cache")
    result = cell_result(cell, events, status, error, started, now_iso(), time.monotonic() - t0)
    result.host_state = host_state
    result.vs_reference = ratios
    if note:
        result.notes.append(note)
    return result


@dataclass
class PreparedCell:
    """A cell whose models are ready: the measuring task (None when preparing failed) and what it said."""

    cell: CellSpec
    workdir: Path
    events: list[Event]
    status: CellStatus
    error: str | None
    task: WorkerTask | None = None
    env: PreparedEnvironment | None = None


def prepare_cell(cell: CellSpec, run_dir: Path, options: RunOptions, progress: ProgressSink,
                 shared: dict[Role, Preparation] | None = None) -> PreparedCell:
    """The cell's models, from the run's preparations (`shared`) or prepared by a worker process of its own
    (always the harness's own stack), and its measuring task."""
    workdir = cell_workdir(run_dir, cell.key)
    workdir.mkdir(parents=True, exist_ok=True)
    base = WorkerTask(mode="prepare", cell=cell, cache_dir=str(options.cache_dir), workdir=str(workdir))
    if shared:
        events, status, error = _from_preparations(cell, shared)
    else:
        events, status, error = worker_process.run_worker(base, workdir, cell.prepare_timeout_s, cell, progress)
    env = options.environments.get(cell.environment) if cell.environment else None
    if cell.environment and env is None:
        status, error = "failed", f"environment {cell.environment!r} was not prepared for this run"
    if status != "ok":
        return PreparedCell(cell, workdir, events, status, error)
    # what the cell keeps of this phase: its models, and any line it could not read
    events = [e for e in events if isinstance(e, Prepared | Unreadable)]
    prepared = [e for e in events if isinstance(e, Prepared)]
    if not prepared:
        return PreparedCell(cell, workdir, events, "failed", "the prepare worker named no prepared model")
    too_long = beyond_context(cell, prepared[-1].model_dir)
    if too_long:
        return PreparedCell(cell, workdir, events, "failed", too_long)
    try:
        task = _measure_task(base, prepared[-1], env, options.cache_dir)
    except Exception as e:  # noqa: BLE001 - e.g. the environment cannot convert the tokenizer
        return PreparedCell(cell, workdir, events, "failed", f"{type(e).__name__}: {e}")
    return PreparedCell(cell, workdir, events, "ok", None, task, env)


def beyond_context(cell: CellSpec, model_dir: str) -> str | None:
    """Why a text cell asks for more tokens than its model's context holds (its config.json's
    max_position_embeddings), refused before any measuring instead of running to the cell's timeout; None when
    it fits or the context is not known; the one line of a config.json that cannot be read."""
    config = Path(model_dir) / "config.json" if model_dir else None
    kind = kind_spec(cell.scenario.kind)
    window = kind.params.of(cell).window_tokens()
    if (window is None and not kind.generates_text) or config is None or not config.is_file():
        return None
    try:
        context = load_json(config, "model file", MAX_MODEL_CONFIG_BYTES).get("max_position_embeddings")
    except HarnessInputError as e:
        return e.line()
    asked = window if window is not None else (cell.prompts.input_tokens or 0) + cell.generation.max_new_tokens
    if type(context) is not int or context <= 0 or asked <= context:
        return None
    what = (f"windows of {window} tokens" if window is not None else
            f"{cell.prompts.input_tokens or 0} prompt + {cell.generation.max_new_tokens} new tokens = {asked}")
    return f"asks {what}, beyond the model's context of {context} tokens (max_position_embeddings in {config})"


def _from_preparations(cell: CellSpec, shared: dict[Role, Preparation]) -> tuple[list[Event], CellStatus, str | None]:
    """What the cell's own prepare worker would have reported, from the preparations of its models."""
    for p in shared.values():
        if p.status != "ok":
            return p.events, p.status, p.error
    model, draft = shared["model"].prepared(), shared["draft"].prepared() if "draft" in shared else None
    baseline = shared["baseline"].prepared() if "baseline" in shared else None
    unreadable: list[Event] = [e for p in shared.values() for e in p.events if isinstance(e, Unreadable)]
    if model is None or ("draft" in shared and draft is None) or ("baseline" in shared and baseline is None):
        return unreadable, "failed", "the prepare worker named no prepared model"
    # a preparation reads weight bytes for any model; only the kinds with a memory roofline keep them
    weight_bytes = model.weight_bytes_per_token if kind_spec(cell.scenario.kind).roofline else None
    notes = model.notes + [f"draft: {n}" for n in (draft.notes if draft else [])]
    from harness.plan.validation import transformers_source_wanted as wants_source

    wanted = wants_source(cell)
    return [*unreadable, model.model_copy(update={
        "draft_dir": draft.model_dir if draft else None, "baseline_dir": baseline.model_dir if baseline else None,
        WeightBytesPerToken.tag: weight_bytes, "notes": notes,
        "source_dir": model.source_dir if wanted else None, "source_error": model.source_error if wanted else None,
    })], "ok", None


def measure_process(prepared: PreparedCell, process: int, options: RunOptions,
                    progress: ProgressSink) -> tuple[list[Event], CellStatus, str | None]:
    """One fresh measuring worker process of a prepared cell."""
    assert prepared.task is not None
    cell = prepared.cell
    measure = prepared.task.model_copy(update={"fault": options.faults.get(cell.key), "process": process})
    return worker_process.run_worker(measure, prepared.workdir, cell.timeout_s, cell, progress, prepared.env)


def _measure_task(prepare: WorkerTask, prepared: Prepared, env: PreparedEnvironment | None,
                  cache_dir: Path) -> WorkerTask:
    """The measuring workers' task: the prepared folders, as the cell's environment should read them."""
    from harness.plan.environments import model_view

    if not prepared.model_dir:  # a remote server's cell: no local model
        return prepare.model_copy(update={"mode": "measure", "model_dir": ""})
    model_dir, draft_dir, baseline_dir = Path(prepared.model_dir), prepared.draft_dir, prepared.baseline_dir
    if env is not None:
        model_dir = model_view(env, model_dir, cache_dir)
        draft_dir = str(model_view(env, Path(draft_dir), cache_dir)) if draft_dir else None
        baseline_dir = str(model_view(env, Path(baseline_dir), cache_dir)) if baseline_dir else None
    return prepare.model_copy(update={"mode": "measure", "model_dir": str(model_dir), "draft_dir": draft_dir,
                                      "baseline_dir": baseline_dir})


def transformers_reference(prepared: PreparedCell, events: list[Event], progress: ProgressSink,
                           cache_dir: Path | None = None) -> TransformersDone | None:
    """A plain greedy cell's f32 outputs scored by transformers on the Hugging Face weights, in its own process
    after every measuring one (harness/execute/transformers_reference.py); None for cells it does not apply to."""
    from harness.execute import transformers_reference as reference
    from harness.plan import validation
    cell = prepared.cell
    if not validation.transformers_scored(cell):
        return None
    found = CheckOutputs()
    for ev in events:
        if isinstance(ev, Done):
            found = found.merged(ev.check_outputs)
    source = next((e for e in prepared.events if isinstance(e, Prepared)), None)
    progress.cell_event(cell, Phase(phase="transformers reference"))
    return TransformersDone(reference=reference.reference(
        cell, source.source_dir if source else None, source.source_error if source else None, found,
        prepared.workdir, cache_dir))


def _reference_runner(cell: CellSpec, measure: WorkerTask, workdir: Path,
                      env: PreparedEnvironment | None) -> Callable[[int], Reference | ReferenceError] | None:
    """With fidelity_check: a function that runs the bare reference loop paired with one worker process
    and returns its event (its calls, or why there are none)."""
    from harness.execute import bare_reference as fidelity
    if not cell.fidelity_check or measure.model_dir is None:
        return None
    reason = fidelity.unsupported(cell)
    if reason:
        return lambda process: ReferenceError(error=reason)
    task = None

    def run(process: int) -> Reference | ReferenceError:
        nonlocal task
        try:
            if task is None:
                draft = measure.draft_dir
                assert measure.model_dir is not None  # a measuring task names its prepared model
                task = fidelity.reference_task(cell, Path(measure.model_dir), Path(draft) if draft else None)
            records = fidelity.run_reference(task, workdir, cell.timeout_s, process,
                                             env.python if env else None, env.worker_env() if env else None)
        except Exception as e:  # noqa: BLE001 - a failed reference never costs the cell what it measured
            return ReferenceError(error=f"{type(e).__name__}: {e}")
        return Reference(records=records)

    return run


@dataclass
class LocalExecutor:
    """Cells one after another on this host, each in its own worker processes; each model is prepared once for
    all the cells that need it (Preparations)."""

    run_dir: Path
    options: RunOptions
    progress: ProgressSink

    def run(self, cells: list[CellSpec], record: RunRecord) -> None:
        preparations = Preparations(self.run_dir, self.options, self.progress)
        for i, cell in enumerate(cells):
            self.progress.cell_started(i, len(cells), cell)
            started, t0 = now_iso(), time.monotonic()
            try:
                result = run_cell(cell, self.run_dir, self.options, self.progress, preparations)
            except Exception as e:  # noqa: BLE001 - a harness bug in one cell must not end the suite run
                result = cell_result(cell, [], "failed", f"harness error in this cell: {type(e).__name__}: {e}",
                                     started, now_iso(), time.monotonic() - t0)
            record.record(result)


def run_cells(cells: list[CellSpec], run_dir: Path, meta: RunMetadata, options: RunOptions,
              progress: ProgressSink, retry_failed: bool = False) -> RunResults:
    """Every cell not already recorded in run_dir run here (see `execute`)."""
    return execute(LocalExecutor(run_dir, options, progress), cells, RunRecord(run_dir, meta, cells, progress),
                   retry_failed)
