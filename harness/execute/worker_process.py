"""One worker process for one phase of a cell (prepare or measure): started, its events read as it writes
them, stopped at its time limit; what the runner tells the user as it goes (`ProgressSink`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.child_process import die_with_parent
from harness.core.escaping import json_of
from harness.core.events import Done, Error, Event, Phase, parse_event
from harness.core.schema import CellResult, CellSpec, CellStatus
from harness.execute.preparation import Preparation, PrepareKey
from harness.execute.worker import WorkerTask
from harness.records.run_files import open_for_write, write_whole

if TYPE_CHECKING:
    from harness.plan.environments import PreparedEnvironment

POLL_S = 0.2


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


def read_new(path: Path, offset: int, final: bool = False) -> tuple[list[Event], int]:
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


def run_worker(task: WorkerTask, workdir: Path, timeout_s: float, cell: CellSpec, progress: ProgressSink,
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
    write_whole(workdir, task_path.name, json_of(task))
    events: list[Event] = []
    offset = 0
    timed_out = False
    with open_for_write(workdir, log_path.name, binary=True) as log:
        proc = subprocess.Popen([env.python if env else sys.executable, "-m", "harness.execute.worker", str(task_path),
                                 str(events_path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent,
                                env=env.worker_env() if env else None)
        try:
            while True:
                rc = proc.poll()
                new, offset = read_new(events_path, offset)
                for ev in new:
                    events.append(ev)
                    progress.cell_event(cell, ev)
                if new:
                    last = time.monotonic()
                if rc is not None:
                    break
                if time.monotonic() - (last if since_progress else t0) > timeout_s:
                    timed_out = True
                    kill_group(proc)
                    break
                time.sleep(POLL_S)
        except BaseException:
            kill_group(proc)
            raise
        new, offset = read_new(events_path, offset, final=True)
        events.extend(new)
    return events, *worker_outcome(events, rc, timed_out, since_progress, timeout_s, name, log_path)


def worker_outcome(events: list[Event], rc: int | None, timed_out: bool, since_progress: bool, timeout_s: float,
                   name: str, log_path: Path) -> tuple[CellStatus, str | None]:
    """A finished (or stopped) worker's status and error from its events, exit code and log."""
    phase = next((e.phase for e in reversed(events) if isinstance(e, Phase)), name)
    err_event = next((e for e in events if isinstance(e, Error)), None)
    if timed_out and since_progress:
        return "timeout", (f"reported no progress for {timeout_s:g} s, the {name} timeout (phase: {phase}); "
                           f"log: {_log_tail(log_path)}")
    if timed_out:
        return "timeout", f"exceeded the {name} timeout of {timeout_s:g} s (phase: {phase})"
    if err_event is not None:
        return "failed", err_event.error
    if rc == 0 and any(isinstance(e, Done) for e in events):
        return "ok", None
    if rc is not None and rc < 0:
        sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return "crashed", f"worker died with signal {sig} (phase: {phase}); log: {_log_tail(log_path)}"
    return "crashed", f"worker exited with code {rc} (phase: {phase}); log: {_log_tail(log_path)}"


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


