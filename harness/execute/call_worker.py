"""A measuring worker process that stays loaded and makes one call per order (`WorkerTask` mode "calls"): what
the paired A/B engine drives, two at a time, in lockstep (harness/execute/paired.py).

Orders go to the worker's stdin as `CallOrder` lines; the worker writes a byte to a pipe of its own when it is
ready for the next, so the parent blocks on that pipe (no polling that would take CPU from the other side's call)
and reads the call's events from the events file, where they are durable as in any worker."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING

from harness.core.child_process import die_with_parent
from harness.core.escaping import json_of
from harness.core.events import Event
from harness.core.schema import CellStatus
from harness.execute.worker import CallOrder
from harness.execute.worker_process import ProgressSink, kill_group, read_new, worker_outcome
from harness.records.run_files import open_for_write, write_whole

if TYPE_CHECKING:
    from harness.execute.runner import PreparedCell


class CallWorker:
    """One loaded worker process of a prepared cell: `start`, `wait_ready`, then `call` per measured call,
    then `finish`. A worker that dies, hangs past the cell's timeout or fails says so in `finish`."""

    def __init__(self, prepared: PreparedCell, process: int, fault: str | None, progress: ProgressSink) -> None:
        assert prepared.task is not None
        self.prepared, self.progress = prepared, progress
        self.task = prepared.task.model_copy(update={"mode": "calls", "process": process, "fault": fault})
        self.timeout_s = prepared.cell.timeout_s
        name = f"calls-p{process}"
        self.workdir = prepared.workdir
        self.task_path = self.workdir / f"{name}-task.json"
        self.events_path = self.workdir / f"{name}-events.jsonl"
        self.log_path = self.workdir / f"{name}.log"
        self.events: list[Event] = []
        self._offset = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready_r: int | None = None
        self._log: IO[bytes] | None = None
        self._timed_out = False
        self._lost = False  # the worker stopped answering (died, or hung and was stopped)

    def start(self) -> None:
        self.events_path.unlink(missing_ok=True)
        write_whole(self.workdir, self.task_path.name, json_of(self.task))
        env = self.prepared.env
        ready_r, ready_w = os.pipe()
        self._log = open_for_write(self.workdir, self.log_path.name, binary=True)
        try:
            self._proc = subprocess.Popen(
                [env.python if env else sys.executable, "-m", "harness.execute.worker", str(self.task_path),
                 str(self.events_path), str(ready_w)], stdout=self._log, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE, pass_fds=(ready_w,), start_new_session=True, preexec_fn=die_with_parent,
                env=env.worker_env() if env else None)
        finally:
            os.close(ready_w)
        self._ready_r = ready_r

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def wait_ready(self) -> bool:
        """Wait until the worker is ready for an order (loaded and warmed up, or its last call done); False when
        it died or took longer than the cell's timeout (then it is stopped)."""
        return self.poll_ready(time.monotonic() + self.timeout_s, None) is True

    def poll_ready(self, deadline: float, until: float | None) -> bool | None:
        """Wait for the worker's ready byte until `until` (monotonic; None: as long as it takes): True when it came,
        None when `until` passed first, False when the worker died or `deadline` passed (then it is stopped)."""
        assert self._ready_r is not None
        while not self._lost:
            now = time.monotonic()
            if now >= deadline:
                self._timed_out = True
                self._stop()
                break
            if until is not None and now >= until:
                return None
            wait = min(deadline, until if until is not None else deadline) - now
            readable, _, _ = select.select([self._ready_r], [], [], min(wait, 1.0))
            if readable:
                if os.read(self._ready_r, 1):
                    self._read()
                    return True
                self._lost = True  # EOF: the worker is gone
            elif self._proc is not None and self._proc.poll() is not None:
                self._lost = True
        self._read()
        return False

    def order(self, iteration: int) -> bool:
        """Order one measured call on `iteration`'s input without waiting for it; False when the worker is gone."""
        if self._lost or self._proc is None or self._proc.stdin is None:
            return False
        try:
            self._proc.stdin.write((json_of(CallOrder(iteration=iteration)) + "\n").encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._lost = True
            self._read()
            return False
        return True

    def pause(self) -> None:
        """Stop every thread of the worker's process group where it is (SIGSTOP): its call makes no progress and
        takes no CPU until `resume`."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, sig)  # the worker leads its own session (start_new_session)
            except ProcessLookupError:
                pass

    def call(self, iteration: int) -> list[Event] | None:
        """One measured call on `iteration`'s input: its events, or None when the worker failed."""
        before = len(self.events)
        if not self.order(iteration) or not self.wait_ready():
            return None
        return self.events[before:]

    def finish(self) -> tuple[list[Event], CellStatus, str | None]:
        """Tell the worker to end (it reports its peak memory), wait for it; every event and its outcome."""
        rc: int | None = None
        if self._proc is not None:
            if not self._lost and self._proc.stdin is not None:
                try:
                    self._proc.stdin.write((json_of(CallOrder(iteration=None)) + "\n").encode())
                    self._proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            try:
                rc = self._proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self._timed_out = True
                self._stop()
            rc = self._proc.returncode
        self._close()
        self._read(final=True)
        return self.events, *worker_outcome(self.events, rc, self._timed_out, False, self.timeout_s, "measure",
                                             self.log_path)

    def kill(self) -> None:
        """Stop the worker at once (an interrupted comparison)."""
        self._stop()
        self._close()

    def _stop(self) -> None:
        self._lost = True
        if self._proc is not None and self._proc.returncode is None:
            kill_group(self._proc)  # SIGKILL ends a paused group too

    def _close(self) -> None:
        if self._ready_r is not None:
            os.close(self._ready_r)
            self._ready_r = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read(self, final: bool = False) -> None:
        new, self._offset = read_new(self.events_path, self._offset, final)
        for ev in new:
            self.events.append(ev)
            self.progress.cell_event(self.prepared.cell, ev)

