"""What the schema's models cannot say alone, because it needs the kind registry: a record's kind must be one
the registry knows, older records are upgraded with their kind's facts, and the exported JSON Schema lists
the kinds."""

from __future__ import annotations

from typing import Any

from harness.core.schema import SCHEMA_VERSION, CellResult, RunResults
from harness.kinds import KINDS, kind_spec


def unknown_kind(cell: CellResult) -> str | None:
    """Why a record cannot be read by this harness (a kind its registry lacks), or None."""
    kind = cell.spec.scenario.kind
    if kind in KINDS:
        return None
    return f"unknown scenario kind {kind!r}; known: {', '.join(KINDS)}"


def upgraded(cell: CellResult) -> CellResult:
    """Schema <= 1.1 had no output_ids_source: its LLMPipeline / VLMPipeline samples taken without a streamer
    (token_timing genai, or beam search) held re-encoded ids."""
    s = cell.spec
    no_streamer = s.token_timing == "genai" or s.generation.mode == "beam"
    if no_streamer and kind_spec(s.scenario.kind).streamed_ids:
        for x in cell.samples:
            if "output_ids_source" not in x.model_fields_set and x.output_ids:
                x.output_ids_source = "reencoded"
    return cell


def read_cell(data: Any) -> CellResult:
    """A cell record (parsed JSON or its text), checked and upgraded (ValueError for an unknown kind)."""
    cell = CellResult.model_validate_json(data) if isinstance(data, str | bytes) else CellResult.model_validate(data)
    why = unknown_kind(cell)
    if why:
        raise ValueError(why)
    return upgraded(cell)


def json_schema() -> dict[str, Any]:
    """JSON Schema of results.json."""
    schema = RunResults.model_json_schema()
    schema["$id"] = f"ov-genai-harness/results/{SCHEMA_VERSION}"
    schema["$defs"]["ScenarioSpec"]["properties"]["kind"]["enum"] = list(KINDS)
    return schema
