"""Text to image through openvino-genai's Text2ImagePipeline at a fixed width, height and step count.

One generate(prompt) call per iteration with a fixed seed: e2e is seconds per image, e2e / steps the
time per denoising step; openvino-genai's ImageGenerationPerfMetrics give the text encoder, UNet (or
transformer) and VAE decoder times. The first measured image is kept (as a small array summary) so
int8/int4 can be compared with fp16 in pixel space."""

from __future__ import annotations

import gc
import json
import time
from typing import Any

import numpy as np

from harness.backends import CellModels, Emit
from harness.backends.genai_llm import prompt_texts
from harness.backends.process_memory import peak_rss_mb, rss_mb
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

    props: dict[str, Any] = {k: v for k, v in cell.properties.items() if k != "ATTENTION_BACKEND"}
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


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load (cold, then cached compile), warm up, measure one image per iteration."""
    import openvino_genai as ov_genai

    rss_before = rss_mb()
    cell_values: dict[str, float] = {}
    compile_cache = models.workdir / "compile-cache" if cell.load_twice else None
    t0 = time.perf_counter()
    pipe = _build(cell, models, compile_cache)
    cell_values["load_cold_ms"] = (time.perf_counter() - t0) * 1000
    cell_values["model_memory_mb"] = rss_mb() - rss_before
    if cell.load_twice:
        del pipe
        gc.collect()
        t0 = time.perf_counter()
        pipe = _build(cell, models, compile_cache)
        cell_values["load_cached_ms"] = (time.perf_counter() - t0) * 1000
    emit({"event": "loaded", "cell_values": cell_values})

    p = cell.scenario.params
    width, height = int(p.get("width", 512)), int(p.get("height", p.get("width", 512)))
    steps = int(p.get("steps", 20))
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    tok = ov_genai.Tokenizer(str(models.target / "tokenizer"))
    prompts = prompt_texts(cell, tok, total if vary else 1)
    kept: dict[str, str] = {}
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        pidx = i % len(prompts) if vary else 0
        start = time.perf_counter_ns()
        image = pipe.generate(prompts[pidx], width=width, height=height, num_inference_steps=steps,
                              rng_seed=cell.generation.seed)
        end = time.perf_counter_ns()
        pixels = image.data[0]
        if i == cell.warmup:
            kept[f"image:{pidx}"] = json.dumps(thumbnail(pixels))
        genai = _perf(pipe)
        sample = Sample(iteration=i, warmup=i < cell.warmup, prompt_index=pidx, input_tokens=0, output_tokens=0,
                        start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[], genai=genai,
                        readings={"images": 1.0, "steps": float(steps), "pixels": float(width * height)})
        i += 1
        emit({"event": "sample", "sample": sample.model_dump(), "of": max(total, i + 1)})
    pidx = cell.warmup % len(prompts) if vary else 0
    again = pipe.generate(prompts[pidx], width=width, height=height, num_inference_steps=steps,
                          rng_seed=cell.generation.seed)
    kept[f"image_repeat:{pidx}"] = json.dumps(thumbnail(again.data[0]))
    cell_values["peak_rss_mb"] = peak_rss_mb()
    emit({"event": "done", "cell_values": cell_values, "check_outputs": kept})
