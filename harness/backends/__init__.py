"""Backends run one cell inside a worker process.

Each backend is a function `run(cell, models, emit)` that reports through `emit` as typed events
(harness/events.py); `BACKENDS` maps a scenario kind to it, so adding a kind is adding an entry, not a branch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.events import Event
from harness.schema import CellSpec

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class CellModels:
    """Prepared model directories of one cell."""

    target: Path
    draft: Path | None
    workdir: Path
    source: Path | None = None  # the original Hugging Face directory (for the PyTorch reference)


def backend_for(kind: str) -> Callable[[CellSpec, CellModels, Emit], None]:
    from harness.backends import (
        genai_cb,
        genai_llm,
        genai_text2image,
        genai_text_encoders,
        genai_vlm,
        genai_whisper,
        optimum_llm,
        serving,
        tokenizer_parity,
    )

    backends = {
        "vlm": genai_vlm.run,
        "speech": genai_whisper.run,
        "text2image": genai_text2image.run,
        "serving": serving.run,
        "optimum": optimum_llm.run,
        "pytorch": optimum_llm.run_pytorch,
        "embeddings": genai_text_encoders.run_embeddings,
        "rerank": genai_text_encoders.run_rerank,
        "tokenizer": tokenizer_parity.run,
        "continuous_batching": genai_cb.run,
        "generate": genai_llm.run,
        "speculative": genai_llm.run,
        "prompt_lookup": genai_llm.run,
    }
    return backends[kind]
