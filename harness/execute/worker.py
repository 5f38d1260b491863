"""Worker process: prepares the models of one cell and runs it, reporting through an events file.

Run as `python -m harness.execute.worker TASK_JSON EVENTS_JSONL [READY_FD]`. Each event (harness/core/events.py) is
one JSON line, flushed at once, so the parent keeps everything measured even if this process is killed or crashes.
A `calls` task stays loaded and takes its calls as `CallOrder` lines on stdin, writing a byte to READY_FD when it
is ready for the next (harness/execute/call_worker.py drives it)."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, model_validator

from harness.core.backend import CellModels, Emit
from harness.core.errors import error_line
from harness.core.escaping import json_of
from harness.core.events import BatchEvent, Done, Error, Event, Log, Phase, Prepared, Runtime, SampleEvent
from harness.core.schema import CellSpec
from harness.execute.backends import backend_for, call_backend
from harness.execute.backends.driver import serve_calls
from harness.execute.preparation import PrepareKey, prepare_keys
from harness.kinds import kind_spec
from harness.plan import validation

if TYPE_CHECKING:
    from harness.models.prepare import PreparedModel


FAULTS_MODULE_ENV = "HARNESS_FAULTS_MODULE"

class CallOrder(BaseModel):
    """What the parent of a `calls` worker asks next: one measured call on `iteration`'s input, or None: finish."""

    iteration: int | None


class WorkerTask(BaseModel):
    # "prepare": build/export the cell's models into the cache; "measure": load them and run the cell; "calls":
    # load them and make one call per order (the paired A/B engine)
    mode: Literal["prepare", "measure", "calls"]
    cell: CellSpec
    cache_dir: str
    workdir: str
    # Test-only fault injection (faults_module): the process crashes or hangs, or its pipeline is wrong.
    fault: str | None = None
    process: int = 0
    # measure: the folders the prepare phase made (seen through the cell environment's view); the measuring
    # worker prepares nothing, so it can run in an environment with another stack
    model_dir: str | None = None
    draft_dir: str | None = None
    baseline_dir: str | None = None
    # prepare: this one model only, for every cell that needs it (runner.Preparations); None: the cell's models
    prepare: PrepareKey | None = None

    @model_validator(mode="after")
    def _measure_has_models(self) -> WorkerTask:
        if self.mode != "prepare" and self.model_dir is None:
            raise ValueError("a measure task names the prepared model_dir")
        return self


def runtime_versions(runtime: str = "openvino", model: Path | None = None, cache: Path | None = None
                     ) -> dict[str, str | None]:
    """The stack this process imports (a cell's record of what really ran); with a peer runtime, its package too
    and, for llama.cpp's portable build, the CPU variant it runs (chosen now, on the cell's model file)."""
    import platform

    import openvino
    import openvino_genai

    try:
        import openvino_tokenizers

        tokenizers = openvino_tokenizers.__version__
    except Exception:  # noqa: BLE001 - a stack without it still measures
        tokenizers = None
    versions: dict[str, str | None] = {
        "python": platform.python_version(), "openvino": openvino.__version__,
        "openvino-genai": openvino_genai.__version__, "openvino-tokenizers": tokenizers}
    if runtime == "llama.cpp":
        from importlib.metadata import PackageNotFoundError, version

        try:
            versions["llama-cpp-python"] = version("llama_cpp_python")
        except PackageNotFoundError:
            versions["llama-cpp-python"] = None
        if versions["llama-cpp-python"] and model is not None and model.is_file():
            from harness.execute.backends.llama_cpp_cpu import ensure_cpu_backend

            versions["llama.cpp CPU variant"] = ensure_cpu_backend(model, cache)
    return versions


def _emitter(path: Path) -> Emit:
    f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process

    def emit(event: Event) -> None:
        f.write(json_of(event) + "\n")
        f.flush()
        os.fsync(f.fileno())

    return emit


def run_task(task: WorkerTask, emit: Emit, calls: CallChannel | None = None) -> None:
    from harness.models.prepare import prepare_model

    cell = task.cell
    cache = Path(task.cache_dir)
    log = lambda msg: emit(Log(message=msg))  # noqa: E731
    if task.mode != "prepare":
        assert task.model_dir is not None  # the task's validator requires it for measuring
        _measure(task, Path(task.model_dir), Path(task.draft_dir) if task.draft_dir else None, emit, calls)
        return
    emit(Phase(phase="prepare"))
    if task.prepare is not None:  # one model of the run's shared preparations (runner.Preparations)
        one = prepare_model(task.prepare.source, task.prepare.precision, task.prepare.compression, cache, log=log)
        # whether a cell's kind wants the figure is the runner's business: one preparation serves many cells
        # the Hugging Face folder for the transformers reference (harness.execute.transformers_reference), which scores
        # the weights the fp16 IR holds; the runner keeps it for the cells that want it
        source_dir, source_error = (_source_dir(task.prepare.source, one, cache, log)
                                    if task.prepare.precision == validation.TRANSFORMERS_WEIGHTS else (None, None))
        emit(Prepared(model_dir=str(one.path), model_size_mb=one.size_mb, cache_hit=one.cache_hit,
                      export_s=one.export_s, weight_bytes_per_token=_ir_weight_bytes(one.path, log),
                      notes=list(one.notes), source_dir=source_dir, source_error=source_error))
        emit(Done())
        return
    keys = prepare_keys(cell)
    if not keys:
        kind_spec(cell.scenario.kind).check_without_local_model(cell)
        emit(Prepared(model_dir=""))  # a remote server serves its own model; "" = nothing local
        emit(Done())
        return
    model = keys["model"]
    target = prepare_model(model.source, model.precision, model.compression, cache, log=log)
    draft = baseline = None
    if "draft" in keys:
        d = keys["draft"]
        draft = prepare_model(d.source, d.precision, d.compression, cache, log=log)
    if "baseline" in keys:
        b = keys["baseline"]
        baseline = prepare_model(b.source, b.precision, b.compression, cache, log=log)
    notes = list(target.notes) + [f"draft: {n}" for n in (draft.notes if draft is not None else ())]
    source_dir, source_error = (_source_dir(model.source, target, cache, log)
                                if validation.transformers_source_wanted(cell) else (None, None))
    emit(Prepared(model_dir=str(target.path), model_size_mb=target.size_mb, cache_hit=target.cache_hit,
                  export_s=target.export_s, draft_dir=str(draft.path) if draft is not None else None,
                  baseline_dir=str(baseline.path) if baseline is not None else None,
                  weight_bytes_per_token=_weight_bytes(cell, target.path, log), notes=notes,
                  source_dir=source_dir, source_error=source_error))
    emit(Done())


def _source_dir(source: str, prepared: PreparedModel, cache: Path, log: Callable[[str], None]
                ) -> tuple[str | None, str | None]:
    """The Hugging Face folder a model was exported from, for the transformers reference, or why there is none:
    an IR folder has none; any other source resolves to one, as it did for the export just now (cached)."""
    from harness.models.sources import resolve_source

    if prepared.source_kind == "ir_dir":
        return None, None
    if prepared.source_dir is not None:
        return str(prepared.source_dir), None
    try:
        return str(resolve_source(source, cache, log).path), None
    except Exception as e:  # noqa: BLE001 - costs the cell only its transformers reference
        log(f"no Hugging Face folder for the transformers reference: {error_line(e)}")
        return None, f"the Hugging Face folder of '{source}' was not found: {error_line(e)}"


def _weight_bytes(cell: CellSpec, model_dir: Path, log: Callable[[str], None]) -> int | None:
    """Weight bytes per decoded token for kinds the memory roofline applies to; read here, in the prepare
    phase, so reading the IR is outside every measurement. An IR it cannot read costs the cell only this
    figure."""
    return _ir_weight_bytes(model_dir, log) if kind_spec(cell.scenario.kind).roofline else None


def _ir_weight_bytes(model_dir: Path, log: Callable[[str], None]) -> int | None:
    """Weight bytes per decoded token of the folder's openvino_model.xml (None without one, or unreadable)."""
    from harness.analyze.roofline import weight_bytes_per_token

    xml = model_dir / "openvino_model.xml"
    if not xml.is_file():
        return None
    try:
        return weight_bytes_per_token(xml)
    except Exception as e:  # noqa: BLE001 - the roofline figures are then absent, the cell still runs
        log(f"weight bytes per token not read from {xml}: {error_line(e)}")
        return None


def faults_module() -> Any:
    """The test-only module that injects faults (its FAULTS and inject(fault)), named by HARNESS_FAULTS_MODULE;
    the harness ships none, so `--fault` works only where a test suite provides one."""
    name = os.environ.get(FAULTS_MODULE_ENV)
    if not name:
        raise RuntimeError(f"fault injection is test-only: {FAULTS_MODULE_ENV} names no module")
    return importlib.import_module(name)


class CallChannel:
    """A `calls` worker's side of its orders: CallOrder lines on a text stream, a byte on `ready_fd` when ready."""

    def __init__(self, orders: Any, ready_fd: int) -> None:
        self.orders, self.ready_fd = orders, ready_fd

    def next(self) -> int | None:
        line = self.orders.readline()
        return CallOrder.model_validate_json(line).iteration if line.strip() else None  # EOF: the parent is gone

    def ready(self) -> None:
        os.write(self.ready_fd, b"r")


def _measure(task: WorkerTask, model_dir: Path, draft_dir: Path | None, emit: Emit,
             calls: CallChannel | None = None) -> None:
    cell = task.cell
    emit(Runtime(versions=runtime_versions(cell.runtime, model_dir, Path(task.cache_dir))))
    if task.fault is not None:
        faults_module().inject(task.fault)
    emit(Phase(phase="run"))

    def emit_tagged(event: Event) -> None:
        # which worker process measured a record: the backends do not know, the cell's pairs need it
        if isinstance(event, SampleEvent):
            event = event.model_copy(update={"sample": event.sample.model_copy(update={"process": task.process})})
        elif isinstance(event, BatchEvent):
            event = event.model_copy(update={"batch": event.batch.model_copy(update={"process": task.process})})
        emit(event)

    source = None
    if kind_spec(cell.scenario.kind).original_weights:
        from harness.core.errors import ModelPreparationError
        from harness.models.sources import resolve_source

        resolved = resolve_source(cell.model.source, Path(task.cache_dir), lambda msg: emit(Log(message=msg)))
        if resolved.kind == "ir_dir":
            raise ModelPreparationError(f"the pytorch reference needs a Hugging Face model, not the IR directory "
                                        f"'{cell.model.source}'")
        source = resolved.path
    models = CellModels(model_dir, draft_dir, Path(task.workdir), source,
                        Path(task.baseline_dir) if task.baseline_dir else None, Path(task.cache_dir))
    if task.mode == "calls":
        backend = call_backend(cell)
        if backend is None or calls is None:
            raise RuntimeError(f"kind {cell.scenario.kind} cannot make its calls one at a time on order")
        serve_calls(cell, models, emit_tagged, backend, calls.next, calls.ready)
        return
    backend_for(cell)(cell, models, emit_tagged)


def main(argv: list[str]) -> int:
    task_path, events_path = Path(argv[0]), Path(argv[1])
    emit = _emitter(events_path)
    task = WorkerTask.model_validate_json(task_path.read_text())
    calls = CallChannel(sys.stdin, int(argv[2])) if len(argv) > 2 else None
    try:
        run_task(task, emit, calls)
    except Exception as e:  # noqa: BLE001 - every failure becomes a recorded cell error
        emit(Error(error=error_line(e), traceback=traceback.format_exc()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
