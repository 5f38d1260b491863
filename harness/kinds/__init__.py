"""The registry of scenario kinds: one `KindSpec` per kind. Adding a kind is a module and an entry here."""

from __future__ import annotations

from harness.kinds import (
    continuous_batching,
    image2image,
    inpainting,
    quality,
    serving,
    speech,
    text,
    text2image,
    text2speech,
    text2video,
    text_encoders,
    tokenizer,
    vlm,
)
from harness.kinds.base import Column, KindSpec, Params, ReportTable

KINDS: dict[str, KindSpec] = {k.name: k for k in (
    text.GENERATE, text.SPECULATIVE, text.PROMPT_LOOKUP, continuous_batching.KIND, text.OPTIMUM, text.PYTORCH,
    vlm.KIND, speech.KIND, text2image.KIND, image2image.KIND, inpainting.KIND, text2speech.KIND, text2video.KIND, tokenizer.KIND,
    text_encoders.EMBEDDINGS, text_encoders.RERANK, serving.KIND, quality.KIND,
)}


def kind_spec(name: str) -> KindSpec:
    """The registry entry of a kind (ValueError naming the known kinds when there is none)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown scenario kind {name!r}; known: {', '.join(KINDS)}") from None


__all__ = ["KINDS", "Column", "KindSpec", "Params", "ReportTable", "kind_spec"]
