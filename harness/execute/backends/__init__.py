"""Backends run one cell inside a worker process.

Each backend is a function `run(cell, models, emit)`, named by its kind's registry entry (harness.kinds),
that reports through `emit` as typed events (harness/core/events.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.core.events import Event
from harness.core.schema import CellSpec

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class CellModels:
    """Prepared model directories of one cell."""

    target: Path
    draft: Path | None
    workdir: Path
    source: Path | None = None  # the original Hugging Face directory (for the PyTorch reference)


def backend_for(kind: str) -> Callable[[CellSpec, CellModels, Emit], None]:
    from harness.kinds import kind_spec

    return kind_spec(kind).run()
