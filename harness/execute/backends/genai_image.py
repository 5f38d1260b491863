"""Image generation through openvino-genai: Text2ImagePipeline, Image2ImagePipeline and InpaintingPipeline.

One generate call per iteration with a fixed seed: e2e is seconds per image, e2e / denoising steps run the
time per step; openvino-genai's ImageGenerationPerfMetrics give the text encoder, UNet (or transformer) and
VAE times. Image to image and inpainting start from one fixed generated image (and mask), the same for every
precision. The first measured image is kept (as a small array summary) so int8/int4 can be compared with
fp16 in pixel space."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from harness.core.backend import CellModels
from harness.core.metrics import UNetTime, VAEDecoderTime
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend, prompt_index
from harness.execute.backends.genai_common import pipeline_builder, prompt_texts
from harness.kinds.base import Params
from harness.kinds.image2image import Image2ImageParams
from harness.kinds.inpainting import InpaintingParams
from harness.kinds.text2image import ImageParams

THUMB = 32  # the kept image is downsampled to THUMB x THUMB for the pixel comparison
INPUT_SEED = 1234  # the generated input image: the same for every cell, precision and run


def thumbnail(image: np.ndarray, size: int = THUMB) -> list[list[list[int]]]:
    """Block-mean downsample of an HxWx3 uint8 image to size x size (H and W multiples of size, or cropped)."""
    h, w = image.shape[0] // size * size, image.shape[1] // size * size
    img = image[:h, :w].astype(np.float32)
    small = img.reshape(size, h // size, size, w // size, 3).mean(axis=(1, 3))
    return np.round(small).astype(int).tolist()


def input_image(width: int, height: int) -> np.ndarray:
    """A 1xHxWx3 uint8 picture with structure (a colour gradient) and texture (seeded noise)."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1),
                     np.full(x.shape, 128.0)], axis=-1)
    noise = np.random.default_rng(INPUT_SEED).normal(0, 24, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)[None]


def centre_mask(width: int, height: int, fraction: float) -> np.ndarray:
    """A 1xHxWx3 uint8 mask, 255 over a centred rectangle `fraction` of each side, 0 elsewhere."""
    mask = np.zeros((1, height, width, 3), dtype=np.uint8)
    mh, mw = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - mh) // 2, (width - mw) // 2
    mask[:, top:top + mh, left:left + mw, :] = 255
    return mask


def measured_ms(value: Any) -> float | None:
    """A duration openvino-genai gives as a float or a MeanStdPair, in ms; None when not measured (absent or 0)."""
    v = getattr(value, "mean", value)
    return float(v) if v is not None and float(v) > 0 else None


def _perf(pipe: Any) -> dict[str, float | None]:
    pm = pipe.get_performance_metrics()
    out: dict[str, float | None] = {}
    for name, getter in (("text_encoder_ms", "get_text_encoder_infer_duration"),
                         (UNetTime.tag, "get_unet_infer_duration"), (VAEDecoderTime.tag, "get_vae_decoder_infer_duration")):
        try:
            out[name] = measured_ms(getattr(pm, getter)())
        except Exception:  # noqa: BLE001 - not every pipeline has every part (e.g. a transformer, no UNet)
            out[name] = None
    return out


def steps_run(steps: int, strength: float) -> int:
    """Denoising steps a pipeline runs when it starts from a noised image (diffusers' and openvino-genai's rule)."""
    return max(1, min(steps, int(steps * strength)))


P = TypeVar("P", bound=Params)


class DiffusionSession(Generic[P]):
    """One generated output per call with the cell's parameters and seed; a subclass says what is kept of it
    for the comparison with fp16 (`summary`), what the harness reads of a call (`readings`) and what
    openvino-genai's perf metrics give (`genai`)."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels, params: P,
                 generate: Callable[[Any, str, P, int], Any], steps: int) -> None:
        import openvino_genai as ov_genai

        self.pipe, self.cell, self.params, self.fn, self.steps = pipe, cell, params, generate, steps
        total = cell.warmup + cell.iterations
        tok = ov_genai.Tokenizer(str(models.target / "tokenizer"))
        self.prompts = prompt_texts(cell, tok, total if cell.prompts.vary_per_iteration else 1)
        self.kept: dict[int, Any] = {}

    def summary(self, result: Any) -> Any:
        """What is kept of one call's output for the comparison with fp16 (JSON-serialisable)."""
        raise NotImplementedError

    def readings(self) -> dict[str, float]:
        """The harness's own readings of one call (what the metrics divide by)."""
        raise NotImplementedError

    def genai(self, result: Any) -> dict[str, float | None]:
        """openvino-genai's part times of the call that returned `result`."""
        raise NotImplementedError

    def _generate(self, pidx: int) -> Any:
        return self.fn(self.pipe, self.prompts[pidx], self.params, self.cell.generation.seed)

    def call(self, iteration: int, warmup: bool) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        start = time.perf_counter_ns()
        result = self._generate(pidx)
        end = time.perf_counter_ns()
        if iteration == self.cell.warmup:  # the first measured output, for the comparison with fp16
            self.kept[pidx] = self.summary(result)
        return Sample(iteration=iteration, warmup=warmup, prompt_index=pidx, input_tokens=0, output_tokens=0,
                      start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                      genai=self.genai(result), readings=self.readings())

    def repeat(self, iteration: int) -> CheckOutputs:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        return CheckOutputs(repeat_outputs={pidx: self.summary(self._generate(pidx))})

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        return {}, CheckOutputs(first_outputs=self.kept)


class ImageSession(DiffusionSession[ImageParams]):
    """One image per call at the cell's width, height and steps; keeps a 32x32 thumbnail."""

    def summary(self, result: Any) -> Any:
        return thumbnail(result.data[0])

    def genai(self, result: Any) -> dict[str, float | None]:
        return _perf(self.pipe)  # an image result is a bare tensor: the pipeline keeps the last call's metrics

    def readings(self) -> dict[str, float]:
        return {"images": 1.0, "steps": float(self.steps),
                "pixels": float(self.params.width * self.params.image_height)}


def _text2image(pipe: Any, prompt: str, p: ImageParams, seed: int) -> Any:
    return pipe.generate(prompt, width=p.width, height=p.image_height, num_inference_steps=p.steps, rng_seed=seed)


def _image2image(pipe: Any, prompt: str, p: Image2ImageParams, seed: int) -> Any:
    import openvino as ov

    return pipe.generate(prompt, ov.Tensor(input_image(p.width, p.image_height)), strength=p.strength,
                         num_inference_steps=p.steps, rng_seed=seed)


def _inpainting(pipe: Any, prompt: str, p: InpaintingParams, seed: int) -> Any:
    import openvino as ov

    return pipe.generate(prompt, ov.Tensor(input_image(p.width, p.image_height)),
                         ov.Tensor(centre_mask(p.width, p.image_height, p.mask_fraction)), strength=p.strength,
                         num_inference_steps=p.steps, rng_seed=seed)


def _start(generate: Callable[..., Any], params: type[ImageParams]) -> Callable[[Any, CellSpec, CellModels], Any]:
    def start(pipe: Any, cell: CellSpec, models: CellModels) -> ImageSession:
        p = params.of(cell)
        strength = getattr(p, "strength", 1.0)
        return ImageSession(pipe, cell, models, p, generate, steps_run(p.steps, strength))
    return start


TEXT2IMAGE = Backend(build=pipeline_builder("Text2ImagePipeline"), start=_start(_text2image, ImageParams))
IMAGE2IMAGE = Backend(build=pipeline_builder("Image2ImagePipeline"), start=_start(_image2image, Image2ImageParams))
INPAINTING = Backend(build=pipeline_builder("InpaintingPipeline"), start=_start(_inpainting, InpaintingParams))
