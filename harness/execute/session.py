"""One `harness run` from request to results: the suite planned with its overrides, the run directory made or
resumed (its metadata, lock, environments, the host's bandwidth), and its cells executed here or on a cluster.
What it has to say goes to a `Say` (the command line prints it); reports and history are the caller's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from harness.analyze.roofline import figure_busy, this_run_best, under_load
from harness.analyze.roofline import host_bandwidth as measured_bandwidth
from harness.core.errors import HarnessInputError, error_line
from harness.core.host_state import read_host_state
from harness.core.schema import (
    FAILED_STATUSES,
    CellSpec,
    HostInfo,
    HostState,
    MemoryBandwidth,
    RunMetadata,
    RunResults,
)
from harness.execute.cluster import placement
from harness.execute.cluster.executor import (
    RESULTS_EVERY_S,
    Cluster,
    ClusterExecutor,
    ClusterOptions,
    connect,
    node_filter,
)
from harness.execute.run_options import RunOptions
from harness.execute.run_record import RunRecord, execute, new_run_metadata, now_iso
from harness.execute.runner import LocalExecutor
from harness.execute.worker import faults_module
from harness.execute.worker_process import ProgressSink
from harness.plan.environments import prepare_environments, with_environments
from harness.plan.overrides import OverriddenSuite, expand_overridden, run_overrides, set_overrides
from harness.plan.source_checks import validate_sources
from harness.plan.suite import load_suite, resolve_suite_path
from harness.plan.suite_model import Suite
from harness.records.run_files import refuse_links
from harness.records.store import load_metadata, lock_run_dir, scan_cells, write_metadata

DEFAULT_RESULTS = Path("results")


class Say(Protocol):
    def info(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...


@dataclass(frozen=True)
class ClusterRequest:
    """--cluster and its options (docs/fleet.md)."""

    address: str | None = None
    each_node: bool = False
    nodes: tuple[str, ...] = ()
    shared_cache: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """What the command line asked of one run."""

    suite: str | None
    cache_dir: Path
    out: Path | None = None
    resume: Path | None = None
    retry_failed: bool = False
    model: str | None = None
    devices: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    cluster: ClusterRequest = field(default_factory=ClusterRequest)
    faults: tuple[str, ...] = ()  # test only: CELL_KEY=KIND


@dataclass
class PlannedRun:
    """The suite as the request changes it, and the cells it expands to."""

    request: RunRequest
    suite_path: Path
    sha: str
    overridden: OverriddenSuite
    cluster: ClusterRequest

    @property
    def cells(self) -> list[CellSpec]:
        return self.overridden.cells


def plan_run(request: RunRequest) -> PlannedRun:
    """The suite (a resumed run's own unless one is named) with the request's overrides, expanded into cells."""
    suite_path = resolve_suite_path(request.suite)
    cluster = request.cluster
    if request.retry_failed and request.resume is None:
        raise HarnessInputError("command line", "--retry-failed", None, "goes with --resume RUN_DIR")
    if request.resume is not None:
        meta = load_metadata(request.resume)
        if request.suite is None and meta.suite_file:
            suite_path = Path(meta.suite_file)
        if meta.cluster is not None:
            # the cells' keys and placement depend on how the run used its cluster: the same again
            if cluster.address is None:
                raise HarnessInputError(str(request.resume), "--resume", None, f"this run ran on a Ray cluster "
                                        f"({meta.cluster.address}, {meta.cluster.mode}); resume it with --cluster "
                                        "ADDRESS")
            cluster = ClusterRequest(
                cluster.address, cluster.each_node or meta.cluster.mode == "each-node",
                cluster.nodes or tuple(f"{k}={v}" for k, v in meta.cluster.node_filter.items()),
                cluster.shared_cache or meta.cluster.shared_cache)
    written, sha = load_suite(suite_path)
    overrides = run_overrides(set_overrides(list(request.sets)), request.model, list(request.devices) or None,
                              list(request.precisions) or None,
                              with_environments(written, list(request.envs)).environments if request.envs else None)
    return PlannedRun(request, suite_path, sha, expand_overridden(written, overrides, suite_path), cluster)


@dataclass
class RunSession:
    """A run directory ready to execute: its metadata (written), the cells, where they run and how."""

    run_dir: Path
    meta: RunMetadata
    cells: list[CellSpec]
    options: RunOptions
    retry_failed: bool
    fleet: Cluster | None
    lock: Any  # held until this process ends

    def execute(self, progress: ProgressSink) -> RunResults:
        """Every cell not yet recorded (with retry_failed, the failed ones again); the metadata written last."""
        if self.fleet is not None:
            executor: LocalExecutor | ClusterExecutor = ClusterExecutor(self.fleet, self.meta.run_id,
                                                                        self.options.faults, progress)
            record = RunRecord(self.run_dir, self.meta, self.cells, progress, rewrite_every_s=RESULTS_EVERY_S)
        else:
            executor = LocalExecutor(self.run_dir, self.options, progress)
            record = RunRecord(self.run_dir, self.meta, self.cells, progress)
        results = execute(executor, self.cells, record, self.retry_failed)
        write_metadata(self.run_dir, self.meta)
        return results


def open_run(planned: PlannedRun, say: Say) -> RunSession:
    """Check the sources, join the cluster, make (or reopen) the run directory and its metadata."""
    import openvino as ov

    request, suite, cells = planned.request, planned.overridden.suite, planned.cells
    validate_sources(cells, planned.suite_path, suite, say.info, here=planned.cluster.address is None,
                     model_option=bool(request.model), cache_dir=request.cache_dir)
    fleet = None
    if planned.cluster.address is not None:
        fleet, cells = join_cluster(planned.cluster, suite, cells, say)
    elif planned.cluster != ClusterRequest():
        raise HarnessInputError("command line", "--each-node/--nodes/--shared-cache", None, "go with --cluster ADDRESS")
    faults = parse_faults(list(request.faults), {c.key for c in cells})
    core = ov.Core()
    run_dir, meta = _run_dir(planned, core, say)
    if request.resume is None or planned.overridden.overrides:  # a resume without overrides keeps what it recorded
        meta.overrides, meta.dropped_gates = planned.overridden.overrides, planned.overridden.dropped_gates
    run_dir.mkdir(parents=True, exist_ok=True)
    refuse_links(run_dir)
    lock = lock_run_dir(run_dir)
    if request.resume is not None:
        say.info(_resume_summary(run_dir, cells, request.retry_failed))
    if fleet is None:  # on a cluster each node measures its own, in its probe
        # before the bandwidth check: that check's own threads would count in the load it reads
        meta.host_state_before = quiet_host_check(say)
        meta.host.memory_bandwidth = host_bandwidth(request.cache_dir, meta.host, say)
    environments = prepare_environments(suite.environments, request.cache_dir, log=say.info)
    meta.environments = [e.record() for e in environments.values()]
    if fleet is not None:
        meta.cluster = fleet.record()
    write_metadata(run_dir, meta)
    bandwidth = meta.host.memory_bandwidth
    options = RunOptions(cache_dir=request.cache_dir, available_devices=list(core.available_devices), faults=faults,
                         environments=environments, memory_bandwidth_gbs=bandwidth.triad_gbs if bandwidth else None)
    return RunSession(run_dir, meta, cells, options, request.retry_failed, fleet, lock)


def _run_dir(planned: PlannedRun, core: Any, say: Say) -> tuple[Path, RunMetadata]:
    request = planned.request
    if request.resume is not None:
        meta = load_metadata(request.resume)
        meta.resumed_at.append(now_iso())
        if meta.suite_sha256 and meta.suite_sha256 != planned.sha:
            say.warn(f"{planned.suite_path} changed since the run started; finished cells are kept, missing ones "
                     "run with the current suite")
        return request.resume, meta
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = request.out or DEFAULT_RESULTS / f"{stamp}-{planned.overridden.suite.name}"
    if (run_dir / "cells.jsonl").exists():
        raise HarnessInputError(str(run_dir), "--out", None, "already holds a run; use --resume to continue it")
    suite = planned.overridden.suite
    return run_dir, new_run_metadata(f"{stamp}-{uuid.uuid4().hex[:6]}", core, suite.name, planned.suite_path,
                                     planned.sha, suite.compare_thresholds)


def _resume_summary(run_dir: Path, cells: list[CellSpec], retry_failed: bool) -> str:
    kept, unreadable = scan_cells(run_dir)
    status = {c.key: c.status for c in kept}
    again = {k for k, v in status.items() if retry_failed and v in FAILED_STATUSES}
    done = set(status) - again
    todo = sum(c.key not in done for c in cells)
    return (f"resume: {len(done)} finished cells kept, {todo} to run"
            + (f" ({len(again)} of them failed before and run again)" if again else "")
            + (f"; {len(unreadable)} unreadable record(s) in cells.jsonl (line {', '.join(map(str, unreadable[:5]))}) "
               "left out: their cells run again" if unreadable else ""))


def join_cluster(request: ClusterRequest, suite: Suite, cells: list[CellSpec], say: Say
                 ) -> tuple[Cluster, list[CellSpec]]:
    """Connect to the cluster and learn its nodes; with each_node, the cells once per capable node."""
    address = request.address or ""
    if suite.environments:
        raise HarnessInputError("command line", "--cluster", address, "cells in other Python environments (suite "
                                "`environments` or --env) run only locally for now")
    if request.shared_cache is not None and not Path(request.shared_cache).is_absolute():
        raise HarnessInputError("command line", "--shared-cache", request.shared_cache, "must be an absolute path "
                                "(every node reads it from its own working directory)")
    wanted = node_filter(request.nodes)
    options = ClusterOptions(address=address, mode="each-node" if request.each_node else "spread",
                             node_filter=wanted, shared_cache=request.shared_cache)
    fleet = connect(options, log=say.info)
    return fleet, placement.each_node(cells, fleet.nodes) if request.each_node else cells


def host_bandwidth(cache_dir: Path, host: HostInfo, say: Say) -> MemoryBandwidth:
    """The host's memory bandwidth (the best of its measurements, each run adding a short one), said in one line,
    and a warning when this run's own reading says the host is busy."""
    bw = measured_bandwidth(cache_dir, host)
    now = bw.this_run
    if now is None or now.kind == "full" and not bw.cached:
        how = f"measured in {bw.seconds:.1f} s"
    else:
        how = (f"best of {bw.measurements} measurements on this host, from {bw.measured_at}; this run's "
               f"{now.kind}: {now.triad_gbs:.1f} GB/s in {now.seconds:.1f} s")
    if bw.remeasured:
        how += (f"; too low or taken on a busy host, so measured {len(bw.remeasured)} more times: "
                + ", ".join(f"{r.triad_gbs:.1f}" for r in bw.remeasured) + " GB/s")
    copy = f", copy {bw.copy_gbs:.1f} GB/s" if bw.copy_gbs is not None else ""
    say.info(f"memory bandwidth: triad {bw.triad_gbs:.1f} GB/s{copy} ({how})")
    best_now = this_run_best(bw)
    if best_now is not None and under_load(bw):
        load = best_now.load
        cpu = f", other processes {load.other_cpu_pct:.0f}% CPU" if load and load.other_cpu_pct is not None else ""
        say.warn(f"memory bandwidth now {best_now.triad_gbs:.1f} GB/s, {100 * best_now.triad_gbs / bw.triad_gbs:.0f}% "
                 f"of this host's best{cpu}: other work is running, so this run's measurements will be slower and "
                 "noisier than on a quiet host")
    if figure_busy(bw):
        say.warn(f"this host's memory bandwidth figure ({bw.triad_gbs:.1f} GB/s) comes from readings taken on a busy "
                 "host only: roofline % will read high until a run measures it on a quiet one (docs/roofline.md)")
    return bw


def quiet_host_check(say: Say) -> HostState:
    """The host before the first cell (harness/core/host_state.py), each of its warnings said in one line."""
    state = read_host_state()
    for w in state.warnings:
        say.warn(f"host: {w.message}")
    return state


def parse_faults(given: list[str], keys: set[str]) -> dict[str, str]:
    """Test only: --fault CELL_KEY=KIND, the kinds those of the module HARNESS_FAULTS_MODULE names."""
    if not given:
        return {}
    try:
        known = faults_module().FAULTS
    except (RuntimeError, ImportError) as e:
        raise HarnessInputError("command line", "--fault", given[0], error_line(e)) from None
    faults: dict[str, str] = {}
    for f in given:
        key, sep, kind = f.rpartition("=")
        if not sep or kind not in known:
            raise HarnessInputError("command line", "--fault", f, f"expected CELL_KEY=KIND, KIND one of {', '.join(known)}")
        if key not in keys:  # a fault that reaches no cell would pass silently
            raise HarnessInputError("command line", "--fault", f, "names no cell of the suite (see --list)")
        if key in faults:  # one fault per cell: the second would silently replace the first
            raise HarnessInputError("command line", "--fault", f, f"a second fault for the cell; it has {faults[key]}")
        faults[key] = kind
    return faults
