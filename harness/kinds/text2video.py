"""Text to video: Text2VideoPipeline.generate (LTX-Video) at a fixed size, frame count, step count and seed."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from harness.core.metrics import (
    FrameTime,
    ImageSimilarity,
    PeakRSS,
    SecondsPerVideo,
    StepTime,
    TransformerTime,
    VAEDecoderTime,
)
from harness.kinds.base import DEVICE_KNOBS, Column, KindSpec, Params, ReportTable
from harness.kinds.text2image import IMAGE_ACCURACY, compare_images

# LTX-Video's VAE compresses 32x in space and 8x in time: other sizes are not refused by openvino-genai but
# silently changed (5 frames come back as 1), so the harness refuses them instead
SPATIAL_MULTIPLE = 32
TEMPORAL_MULTIPLE = 8


class VideoParams(Params):
    width: int = Field(256, gt=0, multiple_of=SPATIAL_MULTIPLE, description="frame width in pixels (multiple of 32)")
    height: int = Field(256, gt=0, multiple_of=SPATIAL_MULTIPLE,
                        description="frame height in pixels (multiple of 32)")
    num_frames: int = Field(9, gt=0, description="frames per video: 8k + 1 (1, 9, 17, ...)")
    steps: int = Field(10, gt=0, description="denoising steps")
    guidance_scale: float = Field(3.0, gt=0, description="classifier-free guidance scale (above 1 the transformer "
                                  "runs on a doubled batch)")
    frame_rate: float = Field(25.0, gt=0, description="frames per second the video is conditioned on")

    @field_validator("num_frames")
    @classmethod
    def _whole_latent_frames(cls, v: int) -> int:
        if v % TEMPORAL_MULTIPLE != 1:
            below = v - (v - 1) % TEMPORAL_MULTIPLE
            raise ValueError(f"Input should be 8k + 1 frames (the VAE compresses time 8x), e.g. {below} or "
                             f"{below + TEMPORAL_MULTIPLE}")
        return v


def compare_videos(a: Any, b: Any) -> tuple[dict[str, float], str]:
    """Pixel similarity of two cells' kept frame thumbnails (F x H x W x 3) as `compare_images`, plus the
    worst frame's difference: a divergence late in the video is not averaged away unseen."""
    import numpy as np

    values, detail = compare_images(a, b)
    per_frame = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean(axis=(1, 2, 3))
    return values, f"{detail} over {len(per_frame)} kept frames (worst frame {per_frame.max():.1f}/255)"


TABLE = ReportTable(
    title="Text to video (Text2VideoPipeline)",
    note="One Text2VideoPipeline.generate call per iteration (fixed width, height, frames, steps, guidance and "
         "seed); ms/frame = time per video / frames; step ms = time per video / denoising steps (text encoder "
         "and VAE included; with guidance above 1 the transformer runs on a doubled batch); transformer and VAE "
         "decoder times from openvino-genai's perf metrics; pixel similarity on 16x16 thumbnails of up to 9 "
         "evenly spaced frames of the first measured video.",
    columns=(Column("s/video", SecondsPerVideo.tag, digits=3), Column("ms/frame", FrameTime.tag, digits=1),
             Column("step ms", StepTime.tag, digits=2), Column("transformer ms", TransformerTime.tag, digits=1),
             Column("VAE dec. ms", VAEDecoderTime.tag, digits=1), Column("peak MiB", PeakRSS.tag, digits=0),
             Column("pixel sim. vs fp16 %", ImageSimilarity.tag, "max", 1)),
    headline=(Column("s/video", SecondsPerVideo.tag, digits=3), Column("ms/frame", FrameTime.tag, digits=1)),
    speed=(Column("s/video", SecondsPerVideo.tag, "median", 3), Column("ms/frame", FrameTime.tag, "median", 1)),
    speedup_metric=SecondsPerVideo.tag, accuracy=IMAGE_ACCURACY)

# kept thumbnails are block means rounded to whole pixel values: a repeat may move one by 1
KIND = KindSpec(name="text2video", params=VideoParams, backend="harness.execute.backends.genai_video:TEXT2VIDEO", report=TABLE,
                generates_text=False, reference="same_kind", compare_outputs=compare_videos,
                repeat_tolerance=1.0, tune_space=DEVICE_KNOBS)
