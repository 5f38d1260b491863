"""Image to image: Image2ImagePipeline.generate(prompt, image, strength) on a generated input image."""

from __future__ import annotations

from pydantic import Field

from harness.kinds.text2image import ImageParams, image_kind, image_table


class Image2ImageParams(ImageParams):
    strength: float = Field(0.8, gt=0, le=1, description="how far the input image is noised: steps run = "
                            "int(steps · strength)")


KIND = image_kind("image2image", Image2ImageParams, "harness.execute.backends.genai_image:IMAGE2IMAGE", image_table(
    "Image to image (Image2ImagePipeline)",
    "One Image2ImagePipeline.generate call per iteration on a fixed generated input image (width × height, seeded "
    "noise over a gradient); step ms = time per image / denoising steps run (int(steps · strength)); VAE encoder "
    "time is part of s/image."))
