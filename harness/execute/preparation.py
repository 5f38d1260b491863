"""Which models a cell needs prepared, and what a failed preparation means for the other cells.

A cell's models (its model, and a speculative cell's draft) are built or exported into the cache before it is
measured. Every cell that needs the same model (source, precision, compression) needs exactly the same work, so a
run does it once per `PrepareKey`: the local runner prepares each model before the first cell that needs it,
outside that cell's time limits (preparations.Preparations), and a preparation that failed fails every cell needing it
with the same error and a note, instead of being attempted again for each of them; on a cluster, where each cell's
node prepares its own models, the submitter keeps the failures (`FailedPreparations`) and sends no more cells that
need a model whose preparation failed. Nothing is remembered across invocations: `harness run --resume RUN
--retry-failed` attempts a failed preparation again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from harness.core.events import Event, Prepared
from harness.core.schema import CellResult, CellSpec, CellStatus, CompressionSpec, ExportPrecision
from harness.kinds import kind_spec

Role = Literal["model", "draft", "baseline"]


@dataclass(frozen=True)
class PrepareKey:
    """One model to prepare: cells whose keys are equal need exactly the same preparation."""

    source: str
    precision: ExportPrecision
    # pydantic models are unhashable; left out of the hash, equality still compares it
    compression: CompressionSpec = field(hash=False)
    host: str | None = None  # --each-node cells: the node they are pinned to, which prepares into its own cache

    def describe(self) -> str:
        c = self.compression
        extra = "".join(f", {name}" for name, on in (("sym", c.sym), ("awq", c.awq), ("scale estimation", c.scale_estimation),
                                                     ("data-aware", c.dataset)) if on)
        options = f" (group {c.group_size}, ratio {c.ratio:g}{extra})" if self.precision == "int4" else ""
        return f"{self.source or repr(self.source)} {self.precision}{options}" + (f" on {self.host}" if self.host else "")


def prepare_keys(cell: CellSpec) -> dict[Role, PrepareKey]:
    """The models a cell's prepare phase makes, by role; none for a cell that prepares no model (a serving cell
    against a remote server that names its own tokenizer: its prepare phase only loads that tokenizer, cheap and
    per cell)."""
    if not kind_spec(cell.scenario.kind).needs_local_model(cell):
        return {}
    # a remote server's cell prepares the model only for its tokenizer, which no precision changes
    precision: ExportPrecision = "fp16" if cell.remote or cell.precision == "served" else cell.precision
    keys: dict[Role, PrepareKey] = {"model": PrepareKey(cell.model.source, precision, cell.compression, cell.host)}
    if kind_spec(cell.scenario.kind).uses_draft:
        keys["draft"] = PrepareKey(cell.model.draft or "", cell.model.draft_precision or precision, cell.compression,
                                   cell.host)
    if kind_spec(cell.scenario.kind).logits_baseline:
        keys["baseline"] = PrepareKey(cell.model.source, "fp16", cell.compression, cell.host)
    return keys


class PreparationFailure(BaseModel):
    """A model whose preparation did not succeed (crosses from a cluster node to the submitter)."""

    role: Role
    status: CellStatus
    error: str
    what: str  # PrepareKey.describe()
    log: str  # the prepare worker's log (on a cluster: on `node`)
    node: str | None = None


def failed_preparation(cell: CellSpec, failure: PreparationFailure, started_at: str, finished_at: str) -> CellResult:
    """The record of a cell whose model could not be prepared: the preparation's status and one-line error, and
    a note that it was attempted once, not for each cell."""
    from harness.analyze.aggregate import cell_result

    result = cell_result(cell, [], failure.status, failure.error, started_at, finished_at, 0.0)
    where = f" on node {failure.node}" if failure.node else ""
    result.notes.append(f"not retried: preparing {failure.what} failed{where}; it is attempted once per run, and "
                        f"every cell that needs it fails with its error (log: {failure.log}); `harness run --resume "
                        "RUN_DIR --retry-failed` attempts it again")
    return result


class FailedPreparations:
    """The preparations that failed in this run, by key. One per run invocation, never global: a new invocation
    (`--resume --retry-failed`) starts with none."""

    def __init__(self) -> None:
        self._failed: dict[PrepareKey, PreparationFailure] = {}

    def record(self, cell: CellSpec, failure: PreparationFailure) -> None:
        key = prepare_keys(cell).get(failure.role)
        if key is not None:
            self._failed.setdefault(key, failure)

    def get(self, cell: CellSpec) -> PreparationFailure | None:
        """The failure of a model the cell needs, if one failed."""
        for role, key in prepare_keys(cell).items():
            if key in self._failed:
                return self._failed[key].model_copy(update={"role": role})
        return None


@dataclass
class Preparation:
    """One model's preparation in a run: what its prepare worker reported, shared by every cell that needs it."""

    key: PrepareKey
    events: list[Event]
    status: CellStatus
    error: str | None
    log: Path
    wall_s: float

    def prepared(self) -> Prepared | None:
        return next((e for e in reversed(self.events) if isinstance(e, Prepared)), None)

    def failure(self, role: Role, node: str | None = None) -> PreparationFailure | None:
        if self.status == "ok":
            return None
        return PreparationFailure(role=role, status=self.status, error=self.error or self.status,
                                  what=self.key.describe(), log=str(self.log), node=node)
