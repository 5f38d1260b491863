"""Two sides of a cell measured call by call: one process pair, both loaded, calls in balanced ABBA blocks.

Both sides' worker processes are loaded and warmed up, then take turns: each block is A B B A or B A A B
(chosen at random), so each side runs once right after itself and once right after the other in every block,
and the pair of calls on one input (A and B on iteration i) is one paired sample taken within a second. The
machine's drift over seconds hits both calls of a pair alike, where whole-process rounds are ~10 s apart.
A process-level offset (memory placement, thread pinning) stays inside a process pair; the caller runs several
pairs of fresh processes, so that offset is measured as its own variance component (harness/experiment/ab.py).

Where the second side's model would not fit in the memory left beside the first, the pair is not run
(`no_room`): the caller falls back to whole-process rounds."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

from harness.core.events import BatchEvent, Done, Event, Loaded, RunnerValues, SampleEvent
from harness.core.schema import CellStatus
from harness.execute.backends.process_memory import available_mb, rss_mb
from harness.execute.call_worker import CallWorker

if TYPE_CHECKING:
    from harness.execute.run_options import RunOptions
    from harness.execute.runner import PreparedCell
    from harness.execute.worker_process import ProgressSink

SIDES = ("base", "candidate")
# memory to leave free beside both loaded sides (the OS, the harness, page cache for the model files)
MEMORY_MARGIN_MB = 1024.0
# the second side is assumed as large as the first, with this much headroom for its peak over its loaded size
SECOND_SIDE_HEADROOM = 1.5


@dataclass
class CallPair:
    """Both sides' events of one call on the same input."""

    iteration: int
    events: dict[str, list[Event]]


@dataclass
class ProcessPair:
    """What one pair of loaded processes measured."""

    pairs: list[CallPair] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict)  # every event of each side's process
    status: dict[str, CellStatus] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)  # "ABBA" (base first) or "BAAB", per block
    no_room: str | None = None  # why the two sides could not be loaded side by side

    def process_events(self, side: str) -> list[Event]:
        """The side's per-process figures (load, model memory, peak memory), without its calls."""
        return [e for e in self.events.get(side, []) if isinstance(e, Loaded | Done | RunnerValues)]


def call_pairing_possible(kind: str) -> bool:
    """Whether the kind's calls can be ordered one at a time (a Backend, not a server load or a plain function)."""
    from harness.execute.backends import call_backend

    return call_backend(kind) is not None


def process_pair(sides: dict[str, PreparedCell], process: int, blocks: int, first_iteration: int,
                 rng: random.Random, options: RunOptions, progress: ProgressSink) -> ProcessPair:
    """Load both sides (in a random order, one after the other), run `blocks` ABBA/BAAB blocks of two call
    pairs each on iterations first_iteration, first_iteration + 1, ..., then end both processes."""
    out = ProcessPair()
    order = list(SIDES)
    rng.shuffle(order)
    workers: dict[str, CallWorker] = {}
    try:
        for n, side in enumerate(order):
            if n == 1:
                need = _rss_mb(workers[order[0]].pid) * SECOND_SIDE_HEADROOM + MEMORY_MARGIN_MB
                if available_mb() < need:
                    out.no_room = (f"{available_mb():.0f} MB available, {need:.0f} MB needed to load the {side} side "
                                   f"beside the {order[0]} one")
                    break
            prepared = sides[side]
            worker = CallWorker(prepared, process, options.faults.get(prepared.cell.key), progress)
            workers[side] = worker
            worker.start()
            if not worker.wait_ready():
                break
        else:
            _blocks(workers, blocks, first_iteration, rng, out)
    except BaseException:
        for w in workers.values():
            w.kill()
        raise
    for side, worker in workers.items():
        out.events[side], out.status[side], error = worker.finish()
        if out.status[side] != "ok":
            out.errors[side] = error or out.status[side]
    return out


def _rss_mb(pid: int | None) -> float:
    """A loaded worker's resident memory, MiB; 0 when it is already gone (its failure is read at its finish)."""
    try:
        return rss_mb(pid) if pid is not None else 0.0
    except psutil.Error:
        return 0.0


def _blocks(workers: dict[str, CallWorker], blocks: int, first_iteration: int, rng: random.Random,
            out: ProcessPair) -> None:
    iteration = first_iteration
    for _ in range(blocks):
        a, b = rng.sample(SIDES, 2)
        out.blocks.append("ABBA" if a == "base" else "BAAB")
        for pair_order in ((a, b), (b, a)):
            got: dict[str, list[Event]] = {}
            for side in pair_order:
                events = workers[side].call(iteration)
                if events is None:
                    return
                got[side] = [e for e in events if isinstance(e, SampleEvent | BatchEvent)]
            out.pairs.append(CallPair(iteration, got))
            iteration += 1
