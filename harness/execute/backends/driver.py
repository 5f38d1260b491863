"""The one measurement driver: the lifecycle every backend's cell goes through, in one place.

It loads the pipeline cold (and again from the compile cache when `load_twice`), takes the model's memory,
runs the warm-up and measured calls (`iterations` at least, then on while `min_measure_s` has not passed,
up to `max_iterations`), repeats the first measured call untimed when the decoding is deterministic, takes
peak memory and ends the cell. A backend supplies only how to build its pipeline (`Backend.build`) and a
`Session` over it: one call that yields one Sample, what a repeat is, and what it adds at the end.

A load cell (serving) goes through `measure_loads` the same way: its `LoadBackend` starts or reaches the
server, and its `LoadSession` runs one load (many concurrent requests, one measured unit) when asked; the
driver times the start, runs the cell's load (warmed up) or an SLO search's loads (the first warmed up),
emits every event, stops the server and ends the cell."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.core.backend import CellModels, Emit
from harness.core.errors import ServerError
from harness.core.events import BatchEvent, Done, Loaded, SampleEvent, ServerReport, SloSearchReport
from harness.core.metrics import LoadTimeCached, LoadTimeCold, ModelMemory, PeakRSS
from harness.core.schema import BatchRecord, CellSpec, CheckOutputs, Sample, ServerInfo, SloProbe
from harness.execute.backends.process_memory import peak_rss_mb, rss_mb
from harness.load.slo_search import SearchPolicy, next_rate, outcome, probe

if TYPE_CHECKING:
    from harness.load.generator import LoadResult

T = TypeVar("T")


@dataclass(frozen=True)
class BatchCall:
    """One iteration that served several requests at once (continuous batching): a sample per request
    and the batch's own record."""

    samples: list[Sample]
    batch: BatchRecord


class Session(Protocol):
    """One cell's measuring state over a built pipeline."""

    def call(self, iteration: int, warmup: bool) -> Sample | BatchCall:
        """One timed call (or batch) on iteration's input."""
        ...

    def repeat(self, iteration: int) -> CheckOutputs:
        """Check outputs of an untimed repeat of iteration's input (e.g. its text in `repeat_texts`)."""
        ...

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        """Cell values and check outputs it adds once the loop is over; called after the driver has
        dropped its reference to the pipeline, so a session releasing its own frees the memory (for
        instance before an f32 validation pass loads the model again)."""
        ...


@dataclass(frozen=True)
class Backend:
    """How a scenario kind builds its pipeline and starts a session over it."""

    build: Callable[[CellSpec, CellModels, Path | None], Any]
    start: Callable[[Any, CellSpec, CellModels], Session]
    compile_cache: bool = True  # False: nothing to cache (the PyTorch reference): load once


def deterministic(cell: CellSpec) -> bool:
    """Decoding whose repeat must reproduce the output exactly: greedy, or sampling with its fixed seed."""
    return cell.generation.mode in ("greedy", "sampling")


def _timed(build: Callable[..., T], *args: Any) -> tuple[T, float]:
    """What `build(*args)` returned and how long it took, ms."""
    t0 = time.perf_counter()
    built = build(*args)
    return built, (time.perf_counter() - t0) * 1000


def _load(cell: CellSpec, models: CellModels, backend: Backend, load_twice: bool) -> tuple[Any, dict[str, float]]:
    """The built pipeline (again from the compile cache when `load_twice`) and its load figures."""
    rss_before = rss_mb()
    cell_values: dict[str, float] = {}
    compile_cache = models.workdir / "compile-cache" if load_twice else None
    pipe, cell_values[LoadTimeCold.tag] = _timed(backend.build, cell, models, compile_cache)
    cell_values[ModelMemory.tag] = rss_mb() - rss_before
    if load_twice:
        del pipe
        gc.collect()
        pipe, cell_values[LoadTimeCached.tag] = _timed(backend.build, cell, models, compile_cache)
    return pipe, cell_values


def _emit_call(result: Sample | BatchCall, emit: Emit, of: int) -> None:
    for sample in result.samples if isinstance(result, BatchCall) else [result]:
        emit(SampleEvent(sample=sample, of=of))
    if isinstance(result, BatchCall):
        emit(BatchEvent(batch=result.batch))


def measure_cell(cell: CellSpec, models: CellModels, emit: Emit, backend: Backend) -> None:
    """Run one cell through `backend`, emitting loaded, every sample, and done."""
    pipe, cell_values = _load(cell, models, backend, cell.load_twice and backend.compile_cache)
    emit(Loaded(cell_values=dict(cell_values)))

    session = backend.start(pipe, cell, models)
    del pipe  # the session holds it; finish() may release it
    total = cell.warmup + cell.iterations
    measure_start: float | None = None
    i = 0
    # `iterations` is a minimum: with min_measure_s the cell keeps measuring until that much time has
    # passed, so its median averages over the machine's slow (seconds-long) contention swings.
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        result = session.call(i, i < cell.warmup)
        i += 1
        _emit_call(result, emit, max(total, i + 1))
    check_outputs = session.repeat(cell.warmup) if deterministic(cell) else CheckOutputs()
    cell_values[PeakRSS.tag] = peak_rss_mb()
    values, outputs = session.finish()
    cell_values.update(values)
    emit(Done(cell_values=cell_values, check_outputs=check_outputs.merged(outputs)))


def serve_calls(cell: CellSpec, models: CellModels, emit: Emit, backend: Backend,
                orders: Callable[[], int | None], ready: Callable[[], None]) -> None:
    """A loaded cell that stays loaded and makes its calls one at a time when told (`orders` gives the next call's
    iteration, None when there are no more): the paired A/B engine drives two of these in lockstep
    (harness/execute/paired.py). Loads once (no load_twice: a paired process measures calls, not its load twice),
    warms up, then says `ready` after the warm-up and after every call. No repeat check or validation pass:
    those belong to the cell's own run."""
    pipe, cell_values = _load(cell, models, backend, False)
    emit(Loaded(cell_values=dict(cell_values)))
    session = backend.start(pipe, cell, models)
    del pipe
    for i in range(cell.warmup):
        _emit_call(session.call(i, True), emit, cell.warmup)
    ready()
    while (iteration := orders()) is not None:
        _emit_call(session.call(iteration, False), emit, iteration + 1)
        ready()
    emit(Done(cell_values={PeakRSS.tag: peak_rss_mb()}))


@dataclass(frozen=True)
class Load:
    """One load a LoadSession ran: the generator's requests and the whole load as one record."""

    result: LoadResult
    batch: BatchRecord


class Server(Protocol):
    """What a load backend's build gives: a server it started, or one running elsewhere that it reached."""

    def stop(self) -> None:
        """Stop the server if the backend started it."""
        ...


class LoadSession(Protocol):
    """One load cell's measuring state over its server."""

    requests: int  # measured requests a load sends at most (for progress)
    search: SearchPolicy | None  # set: the cell's loads are an SLO search's, one rate each

    def load(self, index: int, rate: float | None, warmup: bool, report: Callable[[Sample], None]) -> Load:
        """Load number `index`, at `rate` (None: the cell's own pacing), its warm-up requests first when `warmup`;
        `report` sees each measured request's Sample as it ends, so a load cut short keeps what it measured."""
        ...

    def finish(self, chosen: Load) -> tuple[dict[str, float], CheckOutputs]:
        """Cell values and check outputs from the load the cell reports (and every request of the cell);
        called while the server still runs."""
        ...


@dataclass(frozen=True)
class LoadBackend:
    """How a load kind starts (or reaches) its server and starts a session over it; the session's last
    argument reports what the server says about itself, as the session learns it."""

    build: Callable[[CellSpec, CellModels], Server]
    start: Callable[[Any, CellSpec, CellModels, Callable[[ServerInfo], None]], LoadSession]


def measure_loads(cell: CellSpec, models: CellModels, emit: Emit, backend: LoadBackend) -> None:
    """Run one load cell through `backend`, emitting loaded, the server's report, every request and load, the
    SLO search's outcome, and done. The model's memory is the server's, another process or host: none is read
    here. The cell fails after done when every measured request of its load failed."""
    server, load_ms = _timed(backend.build, cell, models)
    cell_values = {} if cell.remote else {LoadTimeCold.tag: load_ms}  # a remote server loaded its model elsewhere
    emit(Loaded(cell_values=dict(cell_values)))
    try:
        session = backend.start(server, cell, models, lambda info: emit(ServerReport(server=info)))
        chosen = _loads(cell, session, emit)
        values, check_outputs = session.finish(chosen)
    finally:
        server.stop()
    cell_values.update(values)
    emit(Done(cell_values=cell_values, check_outputs=check_outputs))
    errors = check_outputs.serving_errors
    if errors is not None and errors.first and not any(o.ok for o in chosen.result.measured):
        raise ServerError(f"all {sum(errors.counts.values())} measured requests failed; first: {errors.first[0]}")


def _loads(cell: CellSpec, session: LoadSession, emit: Emit) -> Load:
    """The cell's load, or the loads at the rates an SLO search's bisection picks (harness/load/slo_search.py);
    returns the one the cell reports: the search's at its highest passing rate, else its last."""
    def load(index: int, rate: float | None) -> Load:
        # the first load warms the server and the connections up; later ones find them warm
        done = session.load(index, rate, index == 0, lambda s: emit(SampleEvent(sample=s, of=session.requests)))
        emit(BatchEvent(batch=done.batch))
        return done

    policy = session.search
    if policy is None:
        return load(0, None)
    probes: list[SloProbe] = []
    loads: list[Load] = []
    while (rate := next_rate(policy, probes)) is not None:
        loads.append(load(len(probes), rate))
        probes.append(probe(rate, len(loads[-1].result.measured), loads[-1].batch.good_requests or 0,
                            policy.target_pct))
        if loads[-1].result.interrupted:
            break
    search = outcome(policy, cell.slo, probes)
    emit(SloSearchReport(search=search))
    return loads[search.chosen_probe if search.chosen_probe is not None else -1]


def prompt_index(cell: CellSpec, iteration: int, distinct: int | None) -> int:
    """Which input an iteration uses: its own (modulo `distinct` inputs, None for unbounded) when the
    cell's prompts vary per iteration, else always the first."""
    if not cell.prompts.vary_per_iteration:
        return 0
    return iteration % distinct if distinct else iteration


def pipeline_properties(cell: CellSpec, accepts: frozenset[str] = frozenset(),
                        cache_dir: Path | None = None) -> dict[str, Any]:
    """The cell's OpenVINO properties for a pipeline, with the compile cache when one is given (CACHE_DIR).
    ATTENTION_BACKEND configures the LLM pipelines only (LLMPipeline, draft and prompt lookup), so any other
    pipeline gets it only if it says so."""
    props = {k: v for k, v in cell.properties.items() if k not in PIPELINE_LEVEL or k in accepts}
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return props


PIPELINE_LEVEL = frozenset({"ATTENTION_BACKEND"})


class TextSession:
    """Base of the sessions whose calls produce text: `call` times iteration's input with the cell's
    streamer; `repeat` runs it again untimed, without one, and keeps the text for the repeat check."""

    streamer_cls: type | None = None

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        """One call on iteration's input, its Sample numbered `label`."""
        raise NotImplementedError

    def call(self, iteration: int, warmup: bool) -> Sample:
        return self.measure(iteration, warmup, self.streamer_cls, iteration)

    def repeat(self, iteration: int) -> CheckOutputs:
        again = self.measure(iteration, True, None, -1)
        return CheckOutputs(repeat_texts={again.prompt_index: again.output_text})

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        return {}, CheckOutputs()
