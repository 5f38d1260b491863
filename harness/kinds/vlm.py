"""Vision-language generation: VLMPipeline.generate(prompt, images) with generated images."""

from __future__ import annotations

from pydantic import Field

from harness.core.metrics import VLMEmbeddingsTime
from harness.kinds.base import LLM_PROPERTY_KNOBS, Column, KindSpec, Params
from harness.kinds.text import GENERATE_COLUMNS, text_table


class VLMParams(Params):
    images: int = Field(1, gt=0, description="generated images per prompt")
    image_size: int = Field(224, gt=0, description="side of each image in pixels")


KIND = KindSpec(
    name="vlm", params=VLMParams, backend="harness.execute.backends.genai_vlm:BACKEND", reference="same_kind", streamed_ids=True,
    tune_space=LLM_PROPERTY_KNOBS,
    report=text_table(
        "Vision-language (VLMPipeline)",
        (*GENERATE_COLUMNS[:2], Column("image emb. ms", VLMEmbeddingsTime.tag, digits=2), *GENERATE_COLUMNS[2:4]),
        note="One VLMPipeline.generate(prompt, images) call per iteration with generated images; TTFT includes "
        "image preprocessing and the vision encoder (image emb. = openvino-genai's prepare-embeddings time, part "
        "of TTFT)."))
