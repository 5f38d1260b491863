"""Worker process: prepares the models of one cell and runs it, reporting through an events file.

Run as `python -m harness.worker TASK_JSON EVENTS_JSONL`. Each event is one JSON line, flushed
at once, so the parent keeps everything measured even if this process is killed or crashes."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, model_validator

from harness.errors import error_line
from harness.schema import CellSpec


class WorkerTask(BaseModel):
    # "prepare": build/export the cell's models into the cache; "measure": load them and run the cell.
    mode: Literal["prepare", "measure"]
    cell: CellSpec
    cache_dir: str
    workdir: str
    # Test-only fault injection (harness.faults): the process crashes or hangs, or its pipeline is wrong.
    fault: str | None = None
    process: int = 0
    # measure: the folders the prepare phase made (seen through the cell environment's view); the measuring
    # worker prepares nothing, so it can run in an environment with another stack
    model_dir: str | None = None
    draft_dir: str | None = None

    @model_validator(mode="after")
    def _measure_has_models(self) -> WorkerTask:
        if self.mode == "measure" and self.model_dir is None:
            raise ValueError("a measure task names the prepared model_dir")
        return self


def runtime_versions() -> dict[str, str | None]:
    """The stack this process imports (a cell's record of what really ran)."""
    import platform

    import openvino
    import openvino_genai

    try:
        import openvino_tokenizers

        tokenizers = openvino_tokenizers.__version__
    except Exception:  # noqa: BLE001 - a stack without it still measures
        tokenizers = None
    return {"python": platform.python_version(), "openvino": openvino.__version__,
            "openvino-genai": openvino_genai.__version__, "openvino-tokenizers": tokenizers}


def _emitter(path: Path):
    f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process

    def emit(event: dict[str, Any]) -> None:
        f.write(json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())

    return emit


def run_task(task: WorkerTask, emit) -> None:
    from harness.models.prepare import prepare_model

    cell = task.cell
    cache = Path(task.cache_dir)
    log = lambda msg: emit({"event": "log", "message": msg})  # noqa: E731
    if task.mode == "measure":
        assert task.model_dir is not None  # the task's validator requires it for measuring
        _measure(task, Path(task.model_dir), Path(task.draft_dir) if task.draft_dir else None, emit)
        return
    emit({"event": "phase", "phase": "prepare"})
    target = prepare_model(cell.model.source, cell.precision, cell.compression, cache, log=log)
    draft = None
    if cell.scenario.kind == "speculative":
        draft = prepare_model(cell.model.draft or "", cell.precision, cell.compression, cache, log=log)
    prepared = {"model_dir": str(target.path), "model_size_mb": target.size_mb, "cache_hit": target.cache_hit}
    if target.export_s is not None:
        prepared["export_s"] = target.export_s
    if draft is not None:
        prepared["draft_dir"] = str(draft.path)
    emit({"event": "prepared", **prepared})
    emit({"event": "done"})


def _measure(task: WorkerTask, model_dir: Path, draft_dir: Path | None, emit) -> None:
    from harness.backends import CellModels, backend_for

    cell = task.cell
    emit({"event": "runtime", "versions": runtime_versions()})
    from harness.faults import inject

    inject(task.fault)
    emit({"event": "phase", "phase": "run"})

    def emit_tagged(event: dict[str, Any]) -> None:
        if event.get("event") in ("sample", "batch"):
            event[event["event"]]["process"] = task.process
        emit(event)

    source = None
    if cell.scenario.kind == "pytorch":
        from harness.errors import ModelPreparationError
        from harness.models.sources import resolve_source

        resolved = resolve_source(cell.model.source, Path(task.cache_dir),
                                  lambda msg: emit({"event": "log", "message": msg}))
        if resolved.kind == "ir_dir":
            raise ModelPreparationError(f"the pytorch reference needs a Hugging Face model, not the IR directory "
                                        f"'{cell.model.source}'")
        source = resolved.path
    models = CellModels(model_dir, draft_dir, Path(task.workdir), source)
    backend_for(cell.scenario.kind)(cell, models, emit_tagged)


def main(argv: list[str]) -> int:
    task_path, events_path = Path(argv[0]), Path(argv[1])
    emit = _emitter(events_path)
    task = WorkerTask.model_validate_json(task_path.read_text())
    try:
        run_task(task, emit)
    except Exception as e:  # noqa: BLE001 - every failure becomes a recorded cell error
        emit({"event": "error", "error": error_line(e), "traceback": traceback.format_exc()})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
