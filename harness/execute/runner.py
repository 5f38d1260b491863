"""The one runner: every cell in its own worker process, results appended as they finish."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from harness.analyze.aggregate import cell_result
from harness.analyze.checks import run_level_checks
from harness.core.child_process import die_with_parent
from harness.core.events import (
    Done,
    Error,
    Event,
    Phase,
    Prepared,
    Reference,
    ReferenceError,
    RunnerValues,
    TransformersDone,
    Unreadable,
    parse_event,
)
from harness.core.schema import (
    FAILED_STATUSES,
    CellResult,
    CellSpec,
    CellStatus,
    CheckOutputs,
    RunMetadata,
    RunResults,
)
from harness.core.store import append_cell, load_cells, write_results
from harness.execute.preparation import PreparationFailure, PrepareKey, Role, failed_preparation, prepare_keys
from harness.execute.worker import WorkerTask
from harness.kinds import kind_spec
from harness.plan.devices import missing_devices
from harness.plan.environments import PreparedEnvironment

POLL_S = 0.2


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunOptions:
    cache_dir: Path
    available_devices: list[str]
    # Test-only: cell key -> fault the worker injects ("crash", "hang").
    faults: dict[str, str] = field(default_factory=dict)
    keep_workdirs: bool = False
    # environment name -> a built environment; cells whose spec names one run their measuring workers in it
    environments: dict[str, PreparedEnvironment] = field(default_factory=dict)
    # the host's measured triad bandwidth (harness.analyze.roofline), a cell value of every cell it measures
    memory_bandwidth_gbs: float | None = None


class ProgressSink:
    """What the runner tells the user; the CLI plugs rich in, tests can plug in nothing."""

    def cell_started(self, index: int, total: int, cell: CellSpec) -> None: ...
    def cell_placed(self, cell: CellSpec, node: str) -> None: ...
    def cell_event(self, cell: CellSpec, event: Event) -> None: ...
    def cell_finished(self, result: CellResult) -> None: ...
    def preparation_started(self, key: PrepareKey) -> None: ...
    def preparation_event(self, key: PrepareKey, event: Event) -> None: ...
    def preparation_finished(self, preparation: Preparation) -> None: ...


def cell_workdir(run_dir: Path, key: str) -> Path:
    """A cell's worker folder in a run directory (logs, events, the worker's own files)."""
    return run_dir / "work" / re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:150]


def _read_new(path: Path, offset: int, final: bool = False) -> tuple[list[Event], int]:
    """Events of the complete lines appended since `offset`, a line that is no event as Unreadable. A partial
    last line waits for the next read, unless the worker is over (`final`): then it is a torn write."""
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    *lines, tail = data.split(b"\n")
    if final and tail:
        lines.append(tail)
        tail = b""
    return [parse_event(line) for line in lines], offset + len(data) - len(tail)


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _run_worker(task: WorkerTask, workdir: Path, timeout_s: float, cell: CellSpec, progress: ProgressSink,
                env: PreparedEnvironment | None = None, since_progress: bool = False
                ) -> tuple[list[Event], CellStatus, str | None]:
    """One worker process for one phase of a cell (in `env`'s interpreter when given): its events,
    status and error. With `since_progress` the time limit counts from the worker's last event instead of
    its start: a long build that keeps reporting progress is never cut off, a silent one is."""
    t0 = time.monotonic()
    last = t0
    name = task.mode
    task_path, events_path, log_path = (workdir / f"{name}-task.json", workdir / f"{name}-events.jsonl",
                                        workdir / f"{name}.log")
    events_path.unlink(missing_ok=True)
    task_path.write_text(task.model_dump_json())
    events: list[Event] = []
    offset = 0
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([env.python if env else sys.executable, "-m", "harness.execute.worker", str(task_path),
                                 str(events_path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent,
                                env=env.worker_env() if env else None)
        try:
            while True:
                rc = proc.poll()
                new, offset = _read_new(events_path, offset)
                for ev in new:
                    events.append(ev)
                    progress.cell_event(cell, ev)
                if new:
                    last = time.monotonic()
                if rc is not None:
                    break
                if time.monotonic() - (last if since_progress else t0) > timeout_s:
                    timed_out = True
                    _kill_group(proc)
                    break
                time.sleep(POLL_S)
        except BaseException:
            _kill_group(proc)
            raise
        new, offset = _read_new(events_path, offset, final=True)
        events.extend(new)
    phase = next((e.phase for e in reversed(events) if isinstance(e, Phase)), name)
    err_event = next((e for e in events if isinstance(e, Error)), None)
    if timed_out and since_progress:
        return events, "timeout", (f"reported no progress for {timeout_s:g} s, the {name} timeout (phase: {phase}); "
                                   f"log: {_log_tail(log_path)}")
    if timed_out:
        return events, "timeout", f"exceeded the {name} timeout of {timeout_s:g} s (phase: {phase})"
    if err_event is not None:
        return events, "failed", err_event.error
    if rc == 0 and any(isinstance(e, Done) for e in events):
        return events, "ok", None
    if rc is not None and rc < 0:
        sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return events, "crashed", f"worker died with signal {sig} (phase: {phase}); log: {_log_tail(log_path)}"
    return events, "crashed", f"worker exited with code {rc} (phase: {phase}); log: {_log_tail(log_path)}"


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
    if prepared.task is not None:
        reference = _reference_runner(cell, prepared.task, prepared.workdir, prepared.env)
        # the runner's own CPU over the worker processes' wall time (reference runs left out of both)
        busy, wall = 0.0, 0.0
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
        if status == "ok":
            found = transformers_reference(prepared, events, progress, options.cache_dir)
            if found is not None:
                events.append(found)
        if wall > 0:
            events.append(RunnerValues(cell_values={"runner_cpu_pct": 100.0 * busy / wall}))
        if options.memory_bandwidth_gbs is not None:
            events.append(RunnerValues(cell_values={"memory_bandwidth_gbs": options.memory_bandwidth_gbs}))
    if not options.keep_workdirs:
        _remove_tree(prepared.workdir / "compile-cache")
    return cell_result(cell, events, status, error, started, now_iso(), time.monotonic() - t0)


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
        events, status, error = _run_worker(base, workdir, cell.prepare_timeout_s, cell, progress)
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
    try:
        task = _measure_task(base, prepared[-1], env, options.cache_dir)
    except Exception as e:  # noqa: BLE001 - e.g. the environment cannot convert the tokenizer
        return PreparedCell(cell, workdir, events, "failed", f"{type(e).__name__}: {e}")
    return PreparedCell(cell, workdir, events, "ok", None, task, env)


def _from_preparations(cell: CellSpec, shared: dict[Role, Preparation]) -> tuple[list[Event], CellStatus, str | None]:
    """What the cell's own prepare worker would have reported, from the preparations of its models."""
    for p in shared.values():
        if p.status != "ok":
            return p.events, p.status, p.error
    model, draft = shared["model"].prepared(), shared["draft"].prepared() if "draft" in shared else None
    unreadable: list[Event] = [e for p in shared.values() for e in p.events if isinstance(e, Unreadable)]
    if model is None or ("draft" in shared and draft is None):
        return unreadable, "failed", "the prepare worker named no prepared model"
    # a preparation reads weight bytes for any model; only the kinds with a memory roofline keep them
    weight_bytes = model.weight_bytes_per_token if kind_spec(cell.scenario.kind).roofline else None
    notes = model.notes + [f"draft: {n}" for n in (draft.notes if draft else [])]
    from harness.plan.validation import transformers_source_wanted as wants_source

    wanted = wants_source(cell)
    return [*unreadable, model.model_copy(update={
        "draft_dir": draft.model_dir if draft else None, "weight_bytes_per_token": weight_bytes, "notes": notes,
        "source_dir": model.source_dir if wanted else None, "source_error": model.source_error if wanted else None,
    })], "ok", None


def measure_process(prepared: PreparedCell, process: int, options: RunOptions,
                    progress: ProgressSink) -> tuple[list[Event], CellStatus, str | None]:
    """One fresh measuring worker process of a prepared cell."""
    assert prepared.task is not None
    cell = prepared.cell
    measure = prepared.task.model_copy(update={"fault": options.faults.get(cell.key), "process": process})
    return _run_worker(measure, prepared.workdir, cell.timeout_s, cell, progress, prepared.env)


def _measure_task(prepare: WorkerTask, prepared: Prepared, env: PreparedEnvironment | None,
                  cache_dir: Path) -> WorkerTask:
    """The measuring workers' task: the prepared folders, as the cell's environment should read them."""
    from harness.plan.environments import model_view

    if not prepared.model_dir:  # a remote server's cell: no local model
        return prepare.model_copy(update={"mode": "measure", "model_dir": ""})
    model_dir, draft_dir = Path(prepared.model_dir), prepared.draft_dir
    if env is not None:
        model_dir = model_view(env, model_dir, cache_dir)
        draft_dir = str(model_view(env, Path(draft_dir), cache_dir)) if draft_dir else None
    return prepare.model_copy(update={"mode": "measure", "model_dir": str(model_dir), "draft_dir": draft_dir})


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


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


PrepareLimit = Literal["since_progress", "total"]


@dataclass
class Preparation:
    """One model's preparation in a run: what its prepare worker reported, shared by every cell that needs it."""

    key: PrepareKey
    events: list[Event]
    status: CellStatus
    error: str | None
    log: Path
    wall_s: float

    def prepared(self) -> Prepared | None:
        return next((e for e in reversed(self.events) if isinstance(e, Prepared)), None)

    def failure(self, role: Role, node: str | None = None) -> PreparationFailure | None:
        if self.status == "ok":
            return None
        return PreparationFailure(role=role, status=self.status, error=self.error or self.status,
                                  what=self.key.describe(), log=str(self.log), node=node)


class _PreparationEvents(ProgressSink):
    """A preparation's worker events, passed on as the preparation's (not a cell's) progress."""

    def __init__(self, progress: ProgressSink, key: PrepareKey) -> None:
        self.progress, self.key = progress, key

    def cell_event(self, cell: CellSpec, event: Event) -> None:
        self.progress.preparation_event(self.key, event)


class Preparations:
    """A run's model preparations: each model (PrepareKey) prepared once, in a worker process of its own, when the
    first cell that needs it is about to start; every later cell that needs it takes the outcome, a failure too.

    Why not in the cell's prepare phase, as before: there it ran under the cell's prepare timeout, so a long
    build on a busy machine (training a built-in model) was killed near its end with all its work, and the next
    cell needing the same model started it again from nothing, as it did a failing export, once per cell.

    `limit`: "since_progress" (a run's own preparations) stops a preparation only when it has reported nothing
    for the cell's prepare_timeout_s (training reports every 5% of its steps; an export is one silent step, as
    long as before), so a slow build that progresses is never lost and a hung one still ends; "total" keeps the
    prepare timeout as a limit on the cell's preparations together, where something else waits with its own
    deadline for the whole cell (a cluster node's task)."""

    def __init__(self, run_dir: Path, options: RunOptions, progress: ProgressSink,
                 limit: PrepareLimit = "since_progress") -> None:
        self.run_dir, self.options, self.progress, self.limit = run_dir, options, progress, limit
        self._done: dict[PrepareKey, Preparation] = {}

    def for_cell(self, cell: CellSpec) -> dict[Role, Preparation] | None:
        """The preparations of the cell's models, made now for those not yet made; None for a cell with no
        model to prepare. A draft is not prepared for a cell whose model failed."""
        keys = prepare_keys(cell)
        if not keys:
            return None
        deadline = time.monotonic() + cell.prepare_timeout_s
        out: dict[Role, Preparation] = {}
        for role, key in keys.items():
            if key not in self._done:
                timeout = cell.prepare_timeout_s if self.limit == "since_progress" else deadline - time.monotonic()
                self._done[key] = self._prepare(key, cell, timeout)
            out[role] = self._done[key]
            if out[role].status != "ok":
                break
        return out

    def failures(self, cell: CellSpec, node: str | None = None) -> list[PreparationFailure]:
        """The failed preparations among the cell's models, made so far."""
        found = ((role, self._done.get(key)) for role, key in prepare_keys(cell).items())
        return [f for role, p in found if p is not None and (f := p.failure(role, node)) is not None]

    def _prepare(self, key: PrepareKey, cell: CellSpec, timeout_s: float) -> Preparation:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
        workdir = self.run_dir / "work" / "prepare" / (re.sub(r"[^A-Za-z0-9_.=-]+", "_", key.describe())[:120]
                                                       + f"-{digest}")
        workdir.mkdir(parents=True, exist_ok=True)
        if timeout_s <= 0:  # "total": the cell's model used up the time its draft would have had
            return Preparation(key, [], "timeout", f"exceeded the prepare timeout of {cell.prepare_timeout_s:g} s "
                               f"before preparing {key.describe()}", workdir / "prepare.log", 0.0)
        task = WorkerTask(mode="prepare", cell=cell, cache_dir=str(self.options.cache_dir), workdir=str(workdir),
                          prepare=key)
        self.progress.preparation_started(key)
        t0 = time.monotonic()
        events, status, error = _run_worker(task, workdir, timeout_s, cell, _PreparationEvents(self.progress, key),
                                            since_progress=self.limit == "since_progress")
        done = Preparation(key, events, status, error, workdir / "prepare.log", time.monotonic() - t0)
        self.progress.preparation_finished(done)
        return done


def assemble(run_dir: Path, meta: RunMetadata, order: list[str] | None = None) -> RunResults:
    """results.json content from the append-only cell records; cross-cell checks recomputed."""
    cells = load_cells(run_dir)
    latest: dict[str, CellResult] = {}
    earlier: dict[str, list[CellResult]] = {}
    for c in cells:
        if c.key in latest:
            earlier.setdefault(c.key, []).append(latest[c.key])
        latest[c.key] = c
    for key, attempts in earlier.items():  # every attempt stays in cells.jsonl; the latest one stands
        latest[key].notes.append(f"attempt {len(attempts) + 1}; earlier: " + "; ".join(
            f"{a.status}" + (f" ({a.error})" if a.error else "") for a in attempts))
    keys = list(latest)
    if order:
        rank = {k: i for i, k in enumerate(order)}
        keys.sort(key=lambda k: rank.get(k, len(rank)))
    return RunResults(metadata=meta, cells=run_level_checks([latest[k] for k in keys]))


def pending_cells(cells: list[CellSpec], run_dir: Path, retry_failed: bool) -> list[CellSpec]:
    """The cells a run (local or on a cluster) still has to run: those with no record in run_dir, and with
    `retry_failed` those whose latest record failed, crashed or timed out."""
    latest = {c.key: c.status for c in load_cells(run_dir)}
    done = {k for k, status in latest.items() if not (retry_failed and status in FAILED_STATUSES)}
    return [c for c in cells if c.key not in done]


def run_cells(cells: list[CellSpec], run_dir: Path, meta: RunMetadata, options: RunOptions,
              progress: ProgressSink, on_results: Callable[[RunResults], None] | None = None,
              retry_failed: bool = False) -> RunResults:
    """Run every cell not already recorded in run_dir (with `retry_failed`, also those whose latest record
    failed, crashed or timed out); rewrite results.json after each cell. Each model is prepared once for all the
    cells that need it (Preparations)."""
    order = [c.key for c in cells]
    todo = pending_cells(cells, run_dir, retry_failed)
    preparations = Preparations(run_dir, options, progress)
    for i, cell in enumerate(todo):
        progress.cell_started(i, len(todo), cell)
        started, t0 = now_iso(), time.monotonic()
        try:
            result = run_cell(cell, run_dir, options, progress, preparations)
        except Exception as e:  # noqa: BLE001 - a harness bug in one cell must not end the suite run
            result = cell_result(cell, [], "failed", f"harness error in this cell: {type(e).__name__}: {e}",
                                 started, now_iso(), time.monotonic() - t0)
        append_cell(run_dir, result)
        progress.cell_finished(result)
        write_results(run_dir, assemble(run_dir, meta, order))
    meta.finished_at = now_iso()
    results = assemble(run_dir, meta, order)
    write_results(run_dir, results)
    if on_results:
        on_results(results)
    return results


def new_run_metadata(run_id: str, suite, suite_path: Path, sha: str, core, environments=()):
    """A new run's metadata: suite, host, devices, the harness's versions (an environment's replace them)."""
    from harness.core import host
    from harness.core.schema import RunMetadata
    from harness.plan.devices import list_devices

    versions = host.package_versions()
    for e in environments:
        versions.update({k: v for k, v in e.versions.items() if k in versions})
    return RunMetadata(
        run_id=run_id, suite_name=suite.name, suite_file=str(suite_path.resolve()), suite_sha256=sha,
        started_at=now_iso(), command=sys.argv, host=host.host_info(), versions=versions,
        harness_commit=host.git_commit(), devices=list_devices(core), compare_thresholds=suite.compare_thresholds,
        environments=[e.record() for e in environments])
