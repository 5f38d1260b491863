"""Text to image: Text2ImagePipeline.generate at a fixed width, height, step count and seed."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.core.metrics import ImageSimilarity, PeakRSS, SecondsPerImage, StepTime, UNetTime, VAEDecoderTime
from harness.kinds.base import DEVICE_KNOBS, Column, KindSpec, Params, ReportTable


class ImageParams(Params):
    width: int = Field(512, gt=0, description="image width in pixels")
    height: int | None = Field(None, gt=0, description="image height in pixels (default: width)")
    steps: int = Field(20, gt=0, description="denoising steps asked for")

    @property
    def image_height(self) -> int:
        return self.height or self.width


def compare_images(a: Any, b: Any) -> tuple[dict[str, float], str]:
    """Pixel similarity of the two cells' kept thumbnails: 100 · (1 − mean absolute difference / 255)."""
    import numpy as np

    mae = float(np.mean(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))
    return {ImageSimilarity.tag: 100.0 * (1 - mae / 255.0)}, f"mean absolute pixel difference {mae:.1f}/255"


IMAGE_ACCURACY = (Column("pixel sim. %", ImageSimilarity.tag, "max", 1),)


def image_table(title: str, note: str) -> ReportTable:
    """The report table every image-generation kind shares."""
    return ReportTable(
        title=title, note=note,
        columns=(Column("s/image", SecondsPerImage.tag, digits=3), Column("step ms", StepTime.tag, digits=2),
                 Column("UNet ms", UNetTime.tag, digits=1), Column("VAE dec. ms", VAEDecoderTime.tag, digits=1),
                 Column("peak MiB", PeakRSS.tag, digits=0),
                 Column("pixel sim. vs fp16 %", ImageSimilarity.tag, "max", 1)),
        headline=(Column("s/image", SecondsPerImage.tag, digits=3), Column("ms/step", StepTime.tag, digits=1)),
        speed=(Column("s/image", SecondsPerImage.tag, "median", 3), Column("step ms", StepTime.tag, "median", 2)),
        speedup_metric=SecondsPerImage.tag, accuracy=IMAGE_ACCURACY)


def image_kind(name: str, params: type[Params], backend: str, table: ReportTable) -> KindSpec:
    """An image-generation kind: no text, accuracy as pixel similarity against the fp16 cell of the same kind."""
    # kept thumbnails are block means rounded to whole pixel values: a repeat may move one by 1
    return KindSpec(name=name, params=params, backend=backend, report=table, generates_text=False,
                    reference="same_kind", compare_outputs=compare_images, repeat_tolerance=1.0,
                    tune_space=DEVICE_KNOBS)


KIND = image_kind("text2image", ImageParams, "harness.execute.backends.genai_image:TEXT2IMAGE", image_table(
    "Text to image (Text2ImagePipeline)",
    "One Text2ImagePipeline.generate call per iteration (fixed width, height, steps and seed); step ms = time per "
    "image / denoising steps run; UNet and VAE decoder times from openvino-genai's ImageGenerationPerfMetrics."))
