"""Inpainting: InpaintingPipeline.generate(prompt, image, mask) repainting the centre of a generated image."""

from __future__ import annotations

from pydantic import Field

from harness.kinds.text2image import ImageParams, image_kind, image_table


class InpaintingParams(ImageParams):
    strength: float = Field(1.0, gt=0, le=1, description="how far the masked region is noised")
    mask_fraction: float = Field(0.5, gt=0, le=1, description="side of the centred square mask, as a share of the "
                                 "image's sides")


KIND = image_kind("inpainting", InpaintingParams, "harness.execute.backends.genai_image:INPAINTING", image_table(
    "Inpainting (InpaintingPipeline)",
    "One InpaintingPipeline.generate call per iteration on a fixed generated image with a centred square mask "
    "(`mask_fraction` of each side); step ms = time per image / denoising steps run."))
