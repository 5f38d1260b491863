"""A run's model preparations: each model prepared once, in a worker process of its own."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Literal

from harness.core.events import Event
from harness.core.schema import CellSpec
from harness.execute import worker_process
from harness.execute.preparation import Preparation, PreparationFailure, PrepareKey, Role, prepare_keys
from harness.execute.run_options import RunOptions
from harness.execute.worker import WorkerTask
from harness.execute.worker_process import ProgressSink

PrepareLimit = Literal["since_progress", "total"]


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
        events, status, error = worker_process.run_worker(task, workdir, timeout_s, cell, _PreparationEvents(self.progress, key),
                                            since_progress=self.limit == "since_progress")
        done = Preparation(key, events, status, error, workdir / "prepare.log", time.monotonic() - t0)
        self.progress.preparation_finished(done)
        return done


