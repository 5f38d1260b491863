"""Text to video through openvino-genai's Text2VideoPipeline (LTX-Video).

One generate call per iteration with the cell's seed: e2e is seconds per video, e2e / frames the time per
frame, e2e / denoising steps the time per step; openvino-genai's perf metrics give the transformer (all its
calls), VAE decoder, text encoder and generate times. Up to KEPT_FRAMES evenly spaced frames of the first
measured video are kept as small thumbnails so int8/int4 can be compared with fp16 in pixel space."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.backend import CellModels
from harness.core.metrics import TransformerTime, VAEDecoderTime
from harness.core.schema import CellSpec
from harness.execute.backends.driver import Backend
from harness.execute.backends.genai_common import pipeline_builder
from harness.execute.backends.genai_image import DiffusionSession, measured_ms, thumbnail
from harness.kinds.text2video import VideoParams

FRAME_THUMB = 16  # each kept frame is downsampled to FRAME_THUMB x FRAME_THUMB (widths are multiples of 32)
KEPT_FRAMES = 9  # at most this many frames are kept, so a long video does not bloat results.json


def kept_frames(video: np.ndarray, count: int = KEPT_FRAMES, size: int = FRAME_THUMB) -> list[Any]:
    """Thumbnails of up to `count` evenly spaced frames (first and last included) of an F x H x W x 3 video."""
    frames = video.shape[0]
    picks = sorted({round(i) for i in np.linspace(0, frames - 1, min(count, frames))})
    return [thumbnail(video[f], size) for f in picks]


def video_readings(pm: Any) -> dict[str, float | None]:
    """Part times of one generate call from its VideoGenerationPerfMetrics: the transformer summed over its
    calls (get_transformer_infer_duration() is their mean), the text encoders summed over encoders."""
    transformer_us = [float(x) for x in pm.raw_metrics.transformer_inference_durations]
    text = pm.get_text_encoder_infer_duration()  # {encoder name: ms}
    return {TransformerTime.tag: sum(transformer_us) / 1000 if transformer_us else None,
            VAEDecoderTime.tag: measured_ms(pm.get_vae_decoder_infer_duration()),
            "text_encoder_ms": sum(text.values()) if text else None,
            "generate_ms": measured_ms(pm.get_generate_duration())}


class VideoSession(DiffusionSession[VideoParams]):
    """One video per call at the cell's width, height, frames, steps, guidance and frame rate."""

    def summary(self, result: Any) -> Any:
        return kept_frames(result.video.data[0])

    def genai(self, result: Any) -> dict[str, float | None]:
        return video_readings(result.perf_metrics)  # Text2VideoPipeline has no get_performance_metrics()

    def readings(self) -> dict[str, float]:
        p = self.params
        return {"frames": float(p.num_frames), "steps": float(self.steps),
                "pixels": float(p.width * p.height * p.num_frames)}


def _generate(pipe: Any, prompt: str, p: VideoParams, seed: int) -> Any:
    import openvino_genai as ov_genai

    # Text2VideoPipeline ignores rng_seed (openvino-genai 2026.4): a fresh seeded generator per call is what
    # makes every call, its repeat and every precision start from the same noise
    return pipe.generate(prompt, width=p.width, height=p.height, num_frames=p.num_frames,
                         num_inference_steps=p.steps, guidance_scale=p.guidance_scale, frame_rate=p.frame_rate,
                         generator=ov_genai.TorchGenerator(seed))


def _start(pipe: Any, cell: CellSpec, models: CellModels) -> VideoSession:
    p = VideoParams.of(cell)
    return VideoSession(pipe, cell, models, p, _generate, p.steps)


TEXT2VIDEO = Backend(build=pipeline_builder("Text2VideoPipeline"), start=_start)
