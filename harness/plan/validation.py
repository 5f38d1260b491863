"""The f32 validation pass: greedy outputs that are owed exactly.

At bf16 (the CPU's default inference precision where it has bf16 instructions) or f16, verifying several
draft tokens in one forward pass, or batching requests, rounds differently from decoding one token at a
time, so near-ties between the two best tokens can flip and the timed outputs of a correct speculative or
continuous-batching pipeline may differ from plain greedy. At f32 that rounding is 2^16 times smaller, so
only a tie that close could flip a token: there the outputs must be identical, and `checks.matches_greedy`
requires it. The pass runs after the timed calls (and after peak memory is read),
so it changes no timed figure."""

from __future__ import annotations

from collections.abc import Callable

from harness.core.errors import error_line
from harness.core.escaping import json_of
from harness.core.schema import CellSpec, CheckOutputs
from harness.kinds import kind_spec

# Dynamic quantization of activations (CPU, int8/int4 weights) takes another kernel for one token than for
# several, and a u8 KV cache (the CPU's default) quantizes keys computed in a batch of five differently from
# the same keys computed one by one (measured: int8 small model, greedy vs speculative at f32, 2 of 5 prompts
# parted with a u8 cache, none with an f32 one). Both go: the pass checks the decoding algorithm, the timed
# outputs show the numerics of the cell's own settings.
PROPERTIES = {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0, "KV_CACHE_PRECISION": "f32"}


TRANSFORMERS_WEIGHTS = "fp16"  # the one precision whose IR holds the Hugging Face weights (rounded to float16)


def wanted(cell: CellSpec) -> bool:
    return cell.generation.mode == "greedy" and cell.validation_prompts > 0


def transformers_scored(cell: CellSpec) -> bool:
    """Cells that record matches_transformers: plain greedy decoding (its kind's registry field) with f32 outputs
    (validation_prompts > 0) and the suite's transformers_check on (harness/execute/transformers_reference.py)."""
    return cell.transformers_check and kind_spec(cell.scenario.kind).transformers_reference and wanted(cell)


def transformers_source_wanted(cell: CellSpec) -> bool:
    """Whether the prepare phase should name the cell's Hugging Face folder (transformers scores this cell)."""
    return transformers_scored(cell) and cell.precision == TRANSFORMERS_WEIGHTS


def greedy_signature(cell: CellSpec) -> tuple:
    """What a cell held to plain greedy shares with its greedy cell."""
    return (cell.model.name, cell.model.source, cell.precision, cell.device, json_of(cell.prompts),
            json_of(cell.generation), tuple(sorted(cell.properties.items())), cell.environment, cell.runtime)


def unread_passes_dropped(cells: list[CellSpec]) -> list[CellSpec]:
    """The cells with `validation_prompts` 0 where nothing would read their f32 outputs: only a cell held to
    greedy, its plain greedy cell, and a cell the transformers reference scores read them. The pass
    is a second model load and decoding at f32, a third of a plain cell's time on a small model."""
    held = {greedy_signature(c) for c in cells if kind_spec(c.scenario.kind).same_as_greedy}
    out = []
    for c in cells:
        kind = kind_spec(c.scenario.kind)
        read = (kind.same_as_greedy or (kind.greedy_reference and greedy_signature(c) in held)
                or transformers_source_wanted(c))
        out.append(c if read or not c.validation_prompts else c.model_copy(update={"validation_prompts": 0}))
    return out


def validation_cell(cell: CellSpec) -> CellSpec:
    """The cell at f32 inference precision (its draft too: draft properties derive from the cell's)."""
    return cell.model_copy(update={"properties": {**cell.properties, **PROPERTIES}})


def prompt_indices(cell: CellSpec, n_prompts: int) -> list[int]:
    """The first `validation_prompts` measured prompts (every cell of one suite measures the same ones)."""
    if not cell.prompts.vary_per_iteration:
        return [0]
    return sorted({(cell.warmup + k) % n_prompts for k in range(cell.validation_prompts)})


def outputs(cell: CellSpec, n_prompts: int, decode: Callable[[CellSpec, list[int]], list[list[int]]]) -> CheckOutputs:
    """check_outputs of the pass: `decode(f32 cell, prompt indices)` gives each prompt's generated ids (a backend
    builds its pipeline from the f32 cell); a failure (e.g. a device without f32) is kept as the reason."""
    indices = prompt_indices(cell, n_prompts)
    try:
        ids = decode(validation_cell(cell), indices)
    except Exception as e:  # noqa: BLE001 - matches_greedy then says why it could not judge at f32
        return CheckOutputs(f32_error=error_line(e))
    return CheckOutputs(f32_ids=dict(zip(indices, ids, strict=True)))
