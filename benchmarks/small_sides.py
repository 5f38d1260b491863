"""The A/B detection benchmarks' cell, the small model's shape greedy at int8 (32 -> 64 tokens), and its sides
prepared once each, as `harness ab` prepares its two."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.core.schema import CellSpec
    from harness.execute.run_options import RunOptions
    from harness.execute.runner import PreparedCell


def greedy_cell(source: str, key: str, **fields: Any) -> CellSpec:
    """The benchmarks' greedy cell on `source` (`fields`: CellSpec fields to change, e.g. timeout_s)."""
    from harness.core.schema import CellSpec, GenerationSpec, ModelRef, PromptSpec, ScenarioSpec

    return CellSpec(key=key, model=ModelRef(name="small", source=source), precision="int8", device="CPU",
                    scenario=ScenarioSpec(name="greedy", kind="generate"),
                    generation=GenerationSpec(max_new_tokens=64, ignore_eos=True),
                    prompts=PromptSpec(source="synthetic", input_tokens=32), warmup=1, iterations=3,
                    load_twice=False, **fields)


def prepare_sides(sides: dict[str, str], work: Path, **fields: Any) -> tuple[dict[str, PreparedCell], RunOptions]:
    """Each side's greedy cell (side -> model source) prepared under `work`, and the options they were prepared
    with; a side that cannot be prepared stops the benchmark."""
    import openvino as ov

    from harness.execute.run_options import RunOptions
    from harness.execute.runner import prepare_cell
    from harness.execute.worker_process import ProgressSink
    from harness.models.cache import default_cache_dir

    options = RunOptions(cache_dir=default_cache_dir(), available_devices=list(ov.Core().available_devices))
    prepared = {}
    for side, source in sides.items():
        prepared[side] = prepare_cell(greedy_cell(source, f"small/{side}", **fields), work / side, options,
                                      ProgressSink())
        assert prepared[side].status == "ok", prepared[side].error
    return prepared, options
