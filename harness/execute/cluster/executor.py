"""Run cells on a Ray cluster: connect, learn the nodes, send each cell to a capable free node as a Ray task
(`node_task.run_cell_on_node`, the local runner's `run_cell` there), and record each result in the submitting
run directory as it comes back. A node runs one cell at a time: the task asks for all of the node's CPUs."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.analyze.aggregate import cell_result
from harness.core.errors import HarnessInputError
from harness.core.schema import CellResult, CellSpec, ClusterRecord, NodeIdentity, RunMetadata, RunResults
from harness.execute.cluster import placement
from harness.execute.cluster.node_task import CellOnNode, NodeJob, run_cell_on_node
from harness.execute.cluster.nodes import (
    PROBE_TIMEOUT_S,
    NodeProbe,
    RayNode,
    identity,
    matches,
    node_names,
    probe_node,
    ray_nodes,
)
from harness.execute.preparation import FailedPreparations, failed_preparation
from harness.execute.run_record import RunRecord, execute, now_iso
from harness.execute.worker_process import ProgressSink
from harness.records.run_files import open_for_write

CONNECT_TIMEOUT_S = 30.0  # HARNESS_RAY_CONNECT_TIMEOUT_S overrides it (a slow link to a distant head)
WAIT_S = 0.5
# beyond the cell's own limits (which its node's runner applies), time for Ray to start the task and return it
DEADLINE_MARGIN_S = 300.0
RESULTS_EVERY_S = 10.0
NODES_EVERY_S = 5.0
Mode = Literal["spread", "each-node"]


@dataclass(frozen=True)
class ClusterOptions:
    address: str
    mode: Mode = "spread"
    node_filter: dict[str, str] = field(default_factory=dict)
    shared_cache: str | None = None
    retries: int = 1  # attempts on another node after a node died under the cell


@dataclass
class Cluster:
    """A connected cluster: the nodes that may run cells and those left out, with why."""

    ray: Any
    options: ClusterOptions
    nodes: list[NodeIdentity]
    cache_dirs: dict[str, str]  # node id -> its cache folder
    left_out: dict[str, str]

    def record(self) -> ClusterRecord:
        o = self.options
        return ClusterRecord(address=o.address, mode=o.mode, node_filter=o.node_filter, shared_cache=o.shared_cache,
                             nodes=self.nodes, left_out=self.left_out)


def node_filter(items: Sequence[str]) -> dict[str, str]:
    """`--nodes LABEL=VALUE` items as the labels a node must carry; one line (exit 2) for one that is not."""
    wanted: dict[str, str] = {}
    for given in items:
        label, sep, value = given.partition("=")
        if not sep or not label.strip() or not value.strip():
            raise HarnessInputError("command line", "--nodes", given, "expected LABEL=VALUE (a Ray node label)")
        wanted[label.strip()] = value.strip()
    return wanted


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessInputError("command line", "--cluster", None, "needs Ray, which is not installed here: "
                                "pip install 'ov-genai-harness[cluster]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """A closed port or a wrong host fails here in seconds instead of in Ray's minute of retries."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 head is written [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HarnessInputError("command line", "--cluster", address, "a Ray cluster address is HOST:PORT (the head's "
                                "GCS port, 6379 by default) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise HarnessInputError("command line", "--cluster", address, f"the Ray cluster cannot be reached: {e}") from None


def _init(ray: Any, address: str) -> None:
    """ray.init with a time limit: a port that answers but is no Ray head makes ray.init retry for minutes."""
    outcome: dict[str, BaseException | None] = {}
    limit = float(os.environ.get("HARNESS_RAY_CONNECT_TIMEOUT_S") or CONNECT_TIMEOUT_S)

    def connect() -> None:
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            outcome["done"] = None
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            outcome["done"] = e

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(limit)
    if "done" not in outcome:
        raise HarnessInputError("command line", "--cluster", address, f"no Ray cluster answered within "
                                f"{limit:g} s (is that the head's GCS port?)")
    error = outcome["done"]
    if error is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HarnessInputError("command line", "--cluster", address, f"cannot join the Ray cluster: {first}")


def connect(options: ClusterOptions, log: Callable[[str], None]) -> Cluster:
    """Join the cluster and probe every matching node; exit 2 (HarnessInputError) when no node can run cells."""
    ray = _import_ray()
    _check_reachable(options.address)
    _init(ray, options.address)
    left_out: dict[str, str] = {}
    candidates: list[RayNode] = []
    for node in ray_nodes(ray):
        label = node.labels.get("host") or node.address
        if not matches(node, options.node_filter):
            left_out[f"{label} ({node.node_id[:6]})"] = "does not match --nodes"
        elif node.cpus <= 0:
            left_out[f"{label} ({node.node_id[:6]})"] = "offers no CPU to Ray (ray start --num-cpus 0): runs no cell"
        else:
            candidates.append(node)
    probes = _probe(ray, candidates, options.shared_cache)
    names = node_names(candidates, {nid: p.host.hostname for nid, p in probes.items() if isinstance(p, NodeProbe)})
    nodes: list[NodeIdentity] = []
    cache_dirs: dict[str, str] = {}
    for node in candidates:
        found = probes[node.node_id]
        name = names[node.node_id]
        if isinstance(found, str):
            left_out[name] = found
        elif found.missing:
            module, why = next(iter(found.missing.items()))
            left_out[name] = f"its Python cannot import {module} ({why})"
        else:
            nodes.append(identity(node, name, found))
            cache_dirs[node.node_id] = found.cache_dir
            for note in found.notes:
                log(f"node {name}: {note}")
    nodes.sort(key=lambda n: n.name)
    for name, why in left_out.items():
        log(f"node {name} left out: {why}")
    if not nodes:
        raise HarnessInputError("command line", "--cluster", options.address, "no node can run cells"
                                + (f" ({'; '.join(f'{k}: {v}' for k, v in left_out.items())})" if left_out else
                                   " (the cluster has no live node)"))
    for n in nodes:
        bw = n.host.memory_bandwidth
        log(f"node {n.name}: {n.host.cpu_model}, {n.cpus:g} CPU, devices {', '.join(placement.device_names(n))}, "
            f"{n.cache}" + (f", memory bandwidth {bw.triad_gbs:.1f} GB/s triad" if bw else ""))
    return Cluster(ray=ray, options=options, nodes=nodes, cache_dirs=cache_dirs, left_out=left_out)


def _probe(ray: Any, nodes: list[RayNode], shared_cache: str | None) -> dict[str, NodeProbe | str]:
    """Each node's self-description, or one line saying why there is none."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(max_retries=0)(probe_node)
    refs = {remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            .remote(shared_cache): n.node_id for n in nodes}
    ready, waiting = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    out: dict[str, NodeProbe | str] = {}
    for ref in ready:
        try:
            out[refs[ref]] = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a node that cannot run the probe is left out, with why
            out[refs[ref]] = f"its probe failed: {_one_line(e)}"
    for ref in waiting:
        ray.cancel(ref, force=True)
        out[refs[ref]] = f"did not answer the probe within {PROBE_TIMEOUT_S:g} s"
    return out


def _one_line(e: BaseException) -> str:
    """A task's exception as one line: the cause's type and message, without Ray's traceback."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    last = next((line for line in reversed(text) if line.strip()), "") if text else ""
    if len(last) > 200 and ". " in last:  # Ray's own errors go on with advice on where to look
        last = last.split(". ", 1)[0] + "."
    return f"{type(cause).__name__}: {last}" if last else type(cause).__name__


@dataclass
class _Attempt:
    cell: CellSpec
    avoid: set[str] = field(default_factory=set)  # nodes this cell died on
    notes: list[str] = field(default_factory=list)


@dataclass
class _Running:
    attempt: _Attempt
    node: NodeIdentity
    started: str
    t0: float
    deadline: float


def write_exports_from_node(run_dir: Path, on_node: CellOnNode, result: CellResult) -> None:
    """The cell's exported files where a local run has them; one that cannot be written is a note, not a lost
    cell."""
    for rel, content in on_node.files.items():
        target = run_dir / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_for_write(run_dir, rel, binary=True) as f:
                f.write(content)
        except (OSError, HarnessInputError) as e:
            result.notes.append(f"could not write {target}: {getattr(e, 'strerror', None) or e}")


def _deadline_s(cell: CellSpec) -> float:
    from harness.plan.validation import transformers_scored as applies

    measuring = cell.timeout_s * cell.processes * (2 if cell.fidelity_check else 1)
    scoring = cell.timeout_s if applies(cell) else 0.0  # the transformers reference, after the measuring processes
    return cell.prepare_timeout_s + measuring + scoring + DEADLINE_MARGIN_S


def _node_faults(ray: Any) -> tuple[type[BaseException], ...]:
    ex = ray.exceptions
    return tuple(getattr(ex, name) for name in ("NodeDiedError", "WorkerCrashedError", "OwnerDiedError",
                                                "ObjectLostError", "LocalRayletDiedError", "TaskUnschedulableError")
                 if hasattr(ex, name))


def run_cells_on_cluster(cells: list[CellSpec], run_dir: Path, meta: RunMetadata, cluster: Cluster,
                         faults: dict[str, str], progress: ProgressSink, retry_failed: bool = False) -> RunResults:
    """Every cell not yet recorded in run_dir run on the cluster's nodes (see `execute`)."""
    return execute(ClusterExecutor(cluster, meta.run_id, faults, progress), cells,
                   RunRecord(run_dir, meta, cells, progress, rewrite_every_s=RESULTS_EVERY_S), retry_failed)


@dataclass
class ClusterExecutor:
    """Each cell sent to a capable free node as a Ray task, its result recorded as it comes back; a cell whose
    node dies is retried on another (ClusterOptions.retries), one past its deadline is cancelled."""

    cluster: Cluster
    run_id: str
    faults: dict[str, str]
    progress: ProgressSink

    def run(self, cells: list[CellSpec], record: RunRecord) -> None:
        _run_on_nodes(cells, self.cluster, self.run_id, self.faults, self.progress, record)


def _run_on_nodes(cells: list[CellSpec], cluster: Cluster, run_id: str, faults: dict[str, str],
                  progress: ProgressSink, rec: RunRecord) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray = cluster.ray
    pending = [_Attempt(c) for c in cells]
    # Each node prepares its cells' models, so a model is prepared where its cells run; one whose preparation
    # failed is not attempted again for the cells still waiting (cells already running elsewhere when the
    # failure comes back attempt it themselves: holding back every cell of a model while one prepares it would
    # serialise the cluster on its most common model).
    failed = FailedPreparations()
    total = len(pending)
    alive = {n.node_id: n for n in cluster.nodes}
    running: dict[Any, _Running] = {}
    warm: dict[str, set[str]] = {}
    ran: dict[str, int] = {}  # node id -> cells given to it
    remote = ray.remote(max_retries=0)(run_cell_on_node)
    node_faults = _node_faults(ray)
    started_count = 0

    def give_up(attempt: _Attempt, status: Literal["skipped", "failed"], error: str) -> None:
        rec.record(cell_result(attempt.cell, [], status, error, now_iso(), now_iso(), 0.0))

    last_refresh = time.monotonic()
    try:
        while pending or running:
            if time.monotonic() - last_refresh > NODES_EVERY_S:  # a node that died between cells gets none
                live = {n.node_id for n in ray_nodes(ray)}
                alive = {nid: n for nid, n in alive.items() if nid in live}
                last_refresh = time.monotonic()
            for attempt in list(pending):
                cell = attempt.cell
                if not placement.capable(cell, alive.values()):
                    pending.remove(attempt)
                    gone = [n.name for n in placement.capable(cell, cluster.nodes) if n.node_id not in alive]
                    if attempt.avoid:
                        give_up(attempt, "failed", "; ".join(attempt.notes) + "; no other live node can run it")
                    elif gone:  # it had nodes, and they died during the run: a fault, not a missing device
                        give_up(attempt, "failed", f"node {', '.join(gone)} died before the cell could run there")
                    else:
                        give_up(attempt, "skipped", placement.no_node_reason(cell, cluster.nodes))
                    continue
                if all(n.node_id in attempt.avoid for n in placement.capable(cell, alive.values())):
                    pending.remove(attempt)
                    give_up(attempt, "failed", "; ".join(attempt.notes) + "; no other live node can run it")
                    continue
                failure = failed.get(cell)
                if failure is not None:
                    pending.remove(attempt)
                    rec.record(failed_preparation(cell, failure, now_iso(), now_iso()))
                    continue
                # a cell has its node's machine to itself, even when one machine hosts several Ray nodes
                busy = {placement.machine(r.node) for r in running.values()}
                free = [n for n in alive.values() if placement.machine(n) not in busy]
                node = placement.pick(cell, free, attempt.avoid, warm, ran)
                if node is None:
                    continue
                pending.remove(attempt)
                progress.cell_started(started_count, total, cell)
                started_count += 1
                progress.cell_placed(cell, node.name)
                job = NodeJob(run_id=run_id, node=node, cache_dir=cluster.cache_dirs[node.node_id],
                              faults={cell.key: faults[cell.key]} if cell.key in faults else {})
                ref = remote.options(num_cpus=node.cpus, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node.node_id, soft=False)).remote(cell, job)
                ran[node.node_id] = ran.get(node.node_id, 0) + 1
                running[ref] = _Running(attempt, node, now_iso(), time.monotonic(),
                                        time.monotonic() + _deadline_s(cell))
                warm.setdefault(node.node_id, set()).add(placement.model_key(cell))
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                run = running.pop(ref)
                try:
                    on_node: CellOnNode = ray.get(ref)
                    result = on_node.result
                except node_faults as e:
                    if isinstance(e, ray.exceptions.NodeDiedError) or not _is_alive(ray, run.node.node_id):
                        alive.pop(run.node.node_id, None)
                    why = f"node {run.node.name} failed during the cell ({_one_line(e)})"
                    run.attempt.notes.append(why)
                    run.attempt.avoid.add(run.node.node_id)
                    if len(run.attempt.avoid) <= cluster.options.retries:
                        pending.insert(0, run.attempt)  # retried first, on another node
                        continue
                    result = cell_result(run.attempt.cell, [], "failed", "; ".join(run.attempt.notes), run.started,
                                         now_iso(), time.monotonic() - run.t0)
                    result.node = run.node
                    rec.record(result)
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. the node's Python lacks a package the cell needs
                    result = cell_result(run.attempt.cell, [], "failed", f"on node {run.node.name}: {_one_line(e)}",
                                         run.started, now_iso(), time.monotonic() - run.t0)
                    result.node = run.node
                else:
                    write_exports_from_node(rec.run_dir, on_node, result)
                    for f in on_node.preparation_failures:
                        failed.record(run.attempt.cell, f)
                if run.attempt.notes:
                    result.notes += [f"retried on node {run.node.name} after: " + "; ".join(run.attempt.notes)]
                rec.record(result)
            now = time.monotonic()
            for ref, run in list(running.items()):
                if now > run.deadline:
                    ray.cancel(ref, force=True)
                    running.pop(ref)
                    result = cell_result(run.attempt.cell, [], "timeout", f"no result from node {run.node.name} "
                                         f"within {_deadline_s(run.attempt.cell):g} s", run.started, now_iso(),
                                         now - run.t0)
                    result.node = run.node
                    rec.record(result)
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise


def _is_alive(ray: Any, node_id: str) -> bool:
    return any(n.node_id == node_id for n in ray_nodes(ray))
