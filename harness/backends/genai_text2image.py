"""Text to image through openvino-genai's Text2ImagePipeline at a fixed width, height and step count.

One generate(prompt) call per iteration with a fixed seed: e2e is seconds per image, e2e / steps the
time per denoising step; openvino-genai's ImageGenerationPerfMetrics give the text encoder, UNet (or
transformer) and VAE decoder times. The first measured image is kept (as a small array summary) so
int8/int4 can be compared with fp16 in pixel space."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from harness.backends import CellModels, Emit
from harness.backends.driver import Backend, measure_cell, pipeline_properties, prompt_index
from harness.backends.genai_common import prompt_texts
from harness.schema import CellSpec, Sample

THUMB = 32  # the kept image is downsampled to THUMB x THUMB for the pixel comparison


def thumbnail(image: np.ndarray, size: int = THUMB) -> list[list[list[int]]]:
    """Block-mean downsample of an HxWx3 uint8 image to size x size (H and W multiples of size, or cropped)."""
    h, w = image.shape[0] // size * size, image.shape[1] // size * size
    img = image[:h, :w].astype(np.float32)
    small = img.reshape(size, h // size, size, w // size, 3).mean(axis=(1, 3))
    return np.round(small).astype(int).tolist()


def _build(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    props: dict[str, Any] = pipeline_properties(cell)
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.Text2ImagePipeline(str(models.target), cell.device, **props)


def _perf(pipe: Any) -> dict[str, float | None]:
    pm = pipe.get_performance_metrics()
    out: dict[str, float | None] = {}
    for name, getter in (("text_encoder_ms", "get_text_encoder_infer_duration"),
                         ("unet_ms", "get_unet_infer_duration"), ("vae_decoder_ms", "get_vae_decoder_infer_duration")):
        try:
            v = getattr(pm, getter)()
            v = getattr(v, "mean", v)
            out[name] = float(v) if v is not None and float(v) > 0 else None
        except Exception:  # noqa: BLE001 - not every pipeline has every part (e.g. a transformer, no UNet)
            out[name] = None
    return out


class Text2ImageSession:
    """One image per call at the cell's width, height and steps, with the cell's seed."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        import openvino_genai as ov_genai

        self.pipe, self.cell = pipe, cell
        p = cell.scenario.params
        self.width, self.height = int(p.get("width", 512)), int(p.get("height", p.get("width", 512)))
        self.steps = int(p.get("steps", 20))
        total = cell.warmup + cell.iterations
        tok = ov_genai.Tokenizer(str(models.target / "tokenizer"))
        self.prompts = prompt_texts(cell, tok, total if cell.prompts.vary_per_iteration else 1)
        self.kept: dict[str, str] = {}

    def _generate(self, pidx: int) -> Any:
        return self.pipe.generate(self.prompts[pidx], width=self.width, height=self.height,
                                  num_inference_steps=self.steps, rng_seed=self.cell.generation.seed)

    def call(self, iteration: int, warmup: bool) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        start = time.perf_counter_ns()
        image = self._generate(pidx)
        end = time.perf_counter_ns()
        if iteration == self.cell.warmup:  # the first measured image, for the comparison with fp16
            self.kept[f"image:{pidx}"] = json.dumps(thumbnail(image.data[0]))
        return Sample(iteration=iteration, warmup=warmup, prompt_index=pidx, input_tokens=0, output_tokens=0,
                      start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[], genai=_perf(self.pipe),
                      readings={"images": 1.0, "steps": float(self.steps),
                                "pixels": float(self.width * self.height)})

    def repeat(self, iteration: int) -> dict[str, str]:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        return {f"image_repeat:{pidx}": json.dumps(thumbnail(self._generate(pidx).data[0]))}

    def finish(self) -> tuple[dict[str, float], dict[str, str]]:
        return {}, self.kept


BACKEND = Backend(build=_build, start=Text2ImageSession)


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load (cold, then cached compile), warm up, measure one image per iteration."""
    measure_cell(cell, models, emit, BACKEND)
