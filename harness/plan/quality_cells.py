"""The quality kind's suite rules: its text set resolved and read once as the suite expands, and the loop settings
that make one pass over the windows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError
from harness.core.schema import CellSpec
from harness.kinds.quality import QualityParams
from harness.models.texts import CALIBRATION, NAMES, text_of


def resolve_text(values: dict[str, Any], suite_file: Path) -> dict[str, Any]:
    """A text file relative to the suite file made absolute and read once (one line naming it when it cannot be)."""
    text = values.get("text")
    if text is None or text in NAMES:
        return values
    if text == CALIBRATION:
        raise HarnessInputError(str(suite_file), "text", text, "is what data-aware compression calibrates on; "
                                f"a quality pass reads {', '.join(NAMES)} or a text file")
    path = Path(str(text)).expanduser()
    path = path if path.is_absolute() else (suite_file.parent / path).resolve()
    try:
        read = text_of(str(path))
    except HarnessInputError as e:
        raise HarnessInputError(str(suite_file), "text", text, e.message) from None
    if not read.strip():
        raise HarnessInputError(str(suite_file), "text", text, f"{path} holds no text")
    return {**values, "text": str(path)}


def quality_cell_rules(cell: CellSpec, suite_file: Path, said: set[str]) -> CellSpec:
    """One warm-up window, then each window once, in one process: the figures are over the text, not repeats."""
    windows = QualityParams.of(cell).windows()
    if cell.processes > 1 and "quality.processes" not in said:
        logging.getLogger("harness.plan.suite").warning(
            "warning: scenarios.%s: a quality pass runs once per cell; processes: %d applies to the other cells",
            cell.scenario.name, cell.processes)
        said.add("quality.processes")
    return cell.model_copy(update={"warmup": 1, "iterations": windows, "max_iterations": windows, "min_measure_s": 0.0,
                                   "processes": 1, "validation_prompts": 0, "fidelity_check": False,
                                   "transformers_check": False})
