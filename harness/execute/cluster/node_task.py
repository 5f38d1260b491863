"""What runs on a cluster node for one cell: the local runner's `run_cell`, in a node-local run directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from harness.core.schema import FAILED_STATUSES, CellResult, CellSpec, NodeIdentity
from harness.execute.preparation import PreparationFailure
from harness.execute.preparations import Preparations
from harness.execute.run_options import RunOptions
from harness.execute.runner import run_cell
from harness.execute.worker_process import ProgressSink, cell_workdir
from harness.load.exports import exported_files


class NodeJob(BaseModel):
    """Everything a node needs besides the cell (crosses from the submitter to the node)."""

    run_id: str
    node: NodeIdentity
    cache_dir: str
    faults: dict[str, str] = Field(default_factory=dict)


def node_run_dir(run_id: str) -> Path:
    """Where the node keeps a run's worker files (logs, events): its own temporary folder."""
    return Path(tempfile.gettempdir()) / "ov-genai-harness-cluster" / run_id


class CellOnNode(BaseModel):
    """What a node sends back for one cell: its result, and the files it exported into the run directory
    (serving's requests/ and payloads/; path relative to the run directory -> content)."""

    result: CellResult
    files: dict[str, bytes] = Field(default_factory=dict)
    # the cell's models whose preparation failed here: the submitter sends no other cell that needs them
    preparation_failures: list[PreparationFailure] = Field(default_factory=list)


def run_cell_on_node(cell: CellSpec, job: NodeJob) -> CellOnNode:
    """Run one cell on this node; the result names the node. Never raises for the cell's own failures."""
    run_dir = node_run_dir(job.run_id)
    bandwidth = job.node.host.memory_bandwidth
    options = RunOptions(cache_dir=Path(job.cache_dir), available_devices=[d.name for d in job.node.devices],
                         faults=job.faults, memory_bandwidth_gbs=bandwidth.triad_gbs if bandwidth else None)
    # The cell's prepare timeout limits its preparations as a whole here, as the submitter's deadline for the task
    # counts on it. A preparation cut off by it is not reported as failed: it may have been progressing, and the
    # next cell needing the model continues it (training resumes from its checkpoint).
    preparations = Preparations(run_dir, options, ProgressSink(), limit="total")
    result = run_cell(cell, run_dir, options, ProgressSink(), preparations)
    result.node = job.node
    if result.status in FAILED_STATUSES:
        result.notes.append(f"worker logs are on node {job.node.name} under {run_dir / 'work'}")
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in exported_files(cell_workdir(run_dir, cell.key))}
    failures = [f for f in preparations.failures(cell, node=job.node.name) if f.status != "timeout"]
    return CellOnNode(result=result, files=files, preparation_failures=failures)
