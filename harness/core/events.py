"""What a worker process reports to the runner, one JSON line per event: a tagged union of typed models.

Cell values are keyed by the metric registry: a `loaded`, `done` or `runner` event naming a tag the
registry does not have is refused where it is made, not found missing in a report. A line that does not
parse (a worker of another harness version, a torn write) becomes an `Unreadable` event with the reason,
so the runner keeps every record it can read and the cell says what it could not."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from harness.core.metrics import unknown_readings, unknown_tags
from harness.core.schema import (
    BatchRecord,
    CheckOutputs,
    ReferenceRecord,
    Sample,
    ServerInfo,
    SloSearch,
    TransformersReference,
)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CellValues(_Event):
    """An event carrying cell values: one figure per metric tag of the registry."""

    cell_values: dict[str, float] = Field(default_factory=dict)

    @field_validator("cell_values")
    @classmethod
    def _registry_keys(cls, values: dict[str, float]) -> dict[str, float]:
        unknown = unknown_tags(values)
        if unknown:
            raise ValueError(f"cell values must be metric tags of the registry; unknown: {', '.join(unknown)}")
        return values


class Log(_Event):
    event: Literal["log"] = "log"
    message: str


class Phase(_Event):
    event: Literal["phase"] = "phase"
    phase: str


class Prepared(_Event):
    event: Literal["prepared"] = "prepared"
    model_dir: str = Field(description="the prepared model's folder; empty: no local model (a remote server)")
    model_size_mb: float | None = None
    cache_hit: bool = False
    export_s: float | None = None
    draft_dir: str | None = None
    baseline_dir: str | None = Field(None, description="the model's fp16 IR, for kinds whose logits are held to it")
    weight_bytes_per_token: int | None = Field(
        None, description="bytes of weights a decoding step reads, from the IR (harness.analyze.roofline); kinds the "
        "memory roofline applies to only")
    notes: list[str] = Field(default_factory=list, description="what preparing the models decided")
    source_dir: str | None = Field(
        None, description="the Hugging Face folder the model was exported from, for the transformers reference "
        "(harness.execute.transformers_reference); cells it applies to only, None for an IR folder")
    source_error: str | None = Field(None, description="why the prepare phase named no Hugging Face folder where "
                                     "the transformers reference wanted one (other than an IR folder source)")


class Runtime(_Event):
    event: Literal["runtime"] = "runtime"
    versions: dict[str, str | None]


class Loaded(_CellValues):
    event: Literal["loaded"] = "loaded"


class SampleEvent(_Event):
    event: Literal["sample"] = "sample"
    sample: Sample
    of: int | None = Field(None, description="calls the cell will make at least (for progress)")

    @field_validator("sample")
    @classmethod
    def _declared_readings(cls, sample: Sample) -> Sample:
        unknown = unknown_readings(sample.readings)
        if unknown:
            raise ValueError(f"sample readings must be declared in the metric registry (READINGS); unknown: "
                             f"{', '.join(unknown)}")
        return sample


class BatchEvent(_Event):
    event: Literal["batch"] = "batch"
    batch: BatchRecord


class Done(_CellValues):
    event: Literal["done"] = "done"
    check_outputs: CheckOutputs = Field(default_factory=CheckOutputs)


class RunnerValues(_CellValues):
    """The runner's own figures about a cell (its CPU while the workers ran)."""

    event: Literal["runner"] = "runner"


class ServerReport(_Event):
    """What a serving cell's server said about itself."""

    event: Literal["server"] = "server"
    server: ServerInfo


class SloSearchReport(_Event):
    """A serving cell's SLO search: the rates it tried and what it found."""

    event: Literal["slo_search"] = "slo_search"
    search: SloSearch


class Reference(_Event):
    event: Literal["reference"] = "reference"
    records: list[ReferenceRecord]


class ReferenceError(_Event):
    event: Literal["reference_error"] = "reference_error"
    error: str


class TransformersDone(_Event):
    """The transformers reference of a plain greedy cell's f32 outputs (or why it did not run), from the runner."""

    event: Literal["transformers"] = "transformers"
    reference: TransformersReference


class Error(_Event):
    event: Literal["error"] = "error"
    error: str
    traceback: str = ""


class Unreadable(_Event):
    """A line that was not a readable event: kept with why, never silently dropped."""

    event: Literal["unreadable"] = "unreadable"
    kind: str | None = Field(description="the event tag the line claimed, if any")
    reason: str
    line: str = Field("", description="the start of the line as read")


Event = Annotated[Log | Phase | Prepared | Runtime | Loaded | SampleEvent | BatchEvent | Done | RunnerValues
                  | ServerReport | SloSearchReport | Reference | ReferenceError | TransformersDone | Error | Unreadable,
                  Field(discriminator="event")]
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_EXCERPT = 120  # characters of an unreadable line kept with it: enough to recognise, not a whole sample


def parse_event(line: str | bytes | dict[str, Any]) -> Event:
    """One event from its JSON line (or decoded object); an Unreadable event when it is not one."""
    try:
        if isinstance(line, dict):
            return _ADAPTER.validate_python(line)
        return _ADAPTER.validate_json(line)
    except ValidationError as e:
        reason = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" if err["loc"] else err["msg"]
                           for err in e.errors(include_url=False)[:3])
    obj: Any = line
    if not isinstance(line, dict):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
    kind = obj.get("event") if isinstance(obj, dict) else None
    text = json.dumps(line, default=str) if isinstance(line, dict) else (
        line.decode("utf-8", "replace") if isinstance(line, bytes) else line)
    return Unreadable(kind=None if kind is None else str(kind), reason=reason[:300], line=text[:_EXCERPT])
