"""Two sides of a cell measured call by call: one process pair, both loaded, calls in balanced blocks.

Both sides' worker processes are loaded and warmed up, then take turns. Each block is two call pairs, A then B
and B then A (the order of the block chosen at random), and the pair of calls on one input (A and B on
iteration i) is one paired sample. Two ways to take a pair:
- calls (ABBA): one call after the other, a second apart. The machine's drift over seconds hits both alike,
  where whole-process rounds are ~10 s apart; its swings within a second do not.
- slices: both calls run at once, but only one side's process is let run at any moment: every `slice_ms` the
  running side is paused where it stands (SIGSTOP to its process group) and the other resumed, until both calls
  end. Each call's times are then read on its own active clock (its pauses taken out, `on_active_clock`), so
  the two calls of a pair sample the machine in alternating slices of a few tokens, and swings longer than a
  slice hit both alike. The backend's own timed readings of a sliced call (openvino-genai's PerfMetrics
  durations) include its pauses and are left out.
A process-level offset (memory placement, thread pinning) stays inside a process pair; the caller runs several
pairs of fresh processes, so that offset is measured as its own variance component (harness/experiment/ab.py).

Where the second side's model would not fit in the memory left beside the first, the pair is not run
(`no_room`): the caller falls back to whole-process rounds."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

from harness.core.events import BatchEvent, Done, Event, Loaded, RunnerValues, SampleEvent
from harness.core.metrics import genai_call_durations
from harness.core.schema import BatchRecord, CellSpec, CellStatus, Sample
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
    sliced: bool = False  # the call pairs ran in slices (else one call after the other)
    slicing_note: str | None = None  # why a pair asked to slice ran its calls one after the other

    def process_events(self, side: str) -> list[Event]:
        """The side's per-process figures (load, model memory, peak memory), without its calls."""
        return [e for e in self.events.get(side, []) if isinstance(e, Loaded | Done | RunnerValues)]


def call_pairing_possible(*cells: CellSpec) -> bool:
    """Whether every cell's calls can be ordered one at a time (a Backend on its runtime, not a server load or a
    plain function)."""
    from harness.execute.backends import call_backend

    return all(call_backend(cell) is not None for cell in cells)


def process_pair(sides: dict[str, PreparedCell], process: int, blocks: int, first_iteration: int,
                 rng: random.Random, options: RunOptions, progress: ProgressSink,
                 slice_ms: float | None = None) -> ProcessPair:
    """Load both sides (in a random order, one after the other), run `blocks` ABBA/BAAB blocks of two call
    pairs each on iterations first_iteration, first_iteration + 1, ... (in slices of `slice_ms` when given),
    then end both processes."""
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
            if slice_ms is not None:
                out.slicing_note = _unsliceable(workers)
                out.sliced = out.slicing_note is None
            _blocks(workers, blocks, first_iteration, rng, out, slice_ms if out.sliced else None)
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


def _unsliceable(workers: dict[str, CallWorker]) -> str | None:
    """Why the sides' calls cannot be read on an active clock, judged on their warm-up calls: a call that carries
    its backend's own readings (the times of a scenario other than text generation, which its pauses would be in)."""
    for side, worker in workers.items():
        warm = [e.sample for e in worker.events if isinstance(e, SampleEvent)]
        if not warm:
            return f"the {side} side made no warm-up call to tell whether its calls can be sliced"
        for sample in warm:
            if sample.readings:
                return (f"the {side} side's calls carry their backend's own timings "
                        f"({', '.join(sorted(sample.readings))}), which pauses would be in")
    return None


def _blocks(workers: dict[str, CallWorker], blocks: int, first_iteration: int, rng: random.Random,
            out: ProcessPair, slice_ms: float | None) -> None:
    iteration = first_iteration
    for _ in range(blocks):
        a, b = rng.sample(SIDES, 2)
        out.blocks.append("ABBA" if a == "base" else "BAAB")
        for pair_order in ((a, b), (b, a)):
            got: dict[str, list[Event]] | None
            if slice_ms is not None:
                got = _sliced(workers, pair_order, iteration, slice_ms)
            else:
                got = {}
                for side in pair_order:
                    events = workers[side].call(iteration)
                    if events is None:
                        return
                    got[side] = events
            if got is None:
                return
            out.pairs.append(CallPair(iteration, {side: [e for e in events if isinstance(e, SampleEvent | BatchEvent)]
                                                  for side, events in got.items()}))
            iteration += 1


def _sliced(workers: dict[str, CallWorker], order: tuple[str, str], iteration: int,
            slice_ms: float) -> dict[str, list[Event]] | None:
    """Both sides' calls on `iteration`, `order[0]` running first, the running side paused and the other resumed
    every `slice_ms`; each side's events on its active clock, or None when a worker failed."""
    first, second = order
    before = {side: len(workers[side].events) for side in order}
    deadline = time.monotonic() + sum(workers[side].timeout_s for side in order)
    pauses: dict[str, list[tuple[int, int]]] = {first: [], second: []}
    paused_at: dict[str, int] = {}
    try:
        workers[second].pause()
        paused_at[second] = time.perf_counter_ns()
        if not (workers[first].order(iteration) and workers[second].order(iteration)):
            return None
        running, waiting = first, second
        done: set[str] = set()
        while True:
            alone = waiting in done
            ready = workers[running].poll_ready(deadline, None if alone else time.monotonic() + slice_ms / 1000)
            if ready is False:
                return None
            if ready:
                done.add(running)
                if alone:
                    break
            now = time.perf_counter_ns()
            if ready is None:
                workers[running].pause()
                paused_at[running] = now
            workers[waiting].resume()
            pauses[waiting].append((paused_at.pop(waiting), now))
            running, waiting = waiting, running
    finally:
        for side in paused_at:  # a side is never left paused: a failure ends the pair, and finish() must reach it
            workers[side].resume()
    got = {side: on_active_clock(workers[side].events[before[side]:], pauses[side]) for side in order}
    for side in order:  # the process's own record (what its side's results keep) holds them so too
        workers[side].events[before[side]:] = got[side]
    return got


def on_active_clock(events: list[Event], pauses: list[tuple[int, int]]) -> list[Event]:
    """The events of a sliced call with their times on the call's active clock: every time inside the call less
    the pauses (perf_counter_ns intervals) before it, the backend's own timed readings left out."""
    genai_timed = genai_call_durations()

    def paused_ns(lo: int, hi: int) -> int:
        return sum(max(0, min(p1, hi) - max(p0, lo)) for p0, p1 in pauses)

    out: list[Event] = []
    for e in events:
        if isinstance(e, SampleEvent):
            s: Sample = e.sample
            offsets = [o - paused_ns(s.start_ns, s.start_ns + round(o * 1e6)) / 1e6 for o in s.chunk_offsets_ms]
            gone = paused_ns(s.start_ns, s.end_ns)
            out.append(e.model_copy(update={"sample": s.model_copy(update={
                "end_ns": s.end_ns - gone, "chunk_offsets_ms": offsets, "paused_ms": gone / 1e6,
                "genai": {k: v for k, v in s.genai.items() if k not in genai_timed}})}))
        elif isinstance(e, BatchEvent):
            b: BatchRecord = e.batch
            out.append(e.model_copy(update={"batch": b.model_copy(update={
                "end_ns": b.end_ns - paused_ns(b.start_ns, b.end_ns)})}))
        else:
            out.append(e)
    return out
