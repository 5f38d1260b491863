"""What a backend function `run(cell, models, emit)` is given, the cell's prepared model folders, and how it
reports: an emitter of typed events. The kind registry names such functions; a worker calls them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.core.events import Event

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class CellModels:
    """Prepared model directories of one cell."""

    target: Path
    draft: Path | None
    workdir: Path
    source: Path | None = None  # the original Hugging Face directory (for the PyTorch reference)
    baseline: Path | None = None  # the model's fp16 IR (kinds with a logits baseline)
    cache: Path | None = None  # the harness cache (what a backend keeps across runs, e.g. baseline logits)
