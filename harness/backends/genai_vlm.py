"""Vision-language generation through openvino-genai's VLMPipeline, with generated images.

One generate(prompt, images) call per iteration, timed like text generation: TTFT on the harness
clock includes image preprocessing and the vision encoder (openvino-genai's own figure for that
part, VLMPerfMetrics' prepare-embeddings duration, is kept beside it)."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from harness.backends import CellModels, Emit
from harness.backends.genai_llm import (
    _genai_readings,
    check_clock,
    genai_step_times,
    generation_config,
    prompt_texts,
    timing_streamer_class,
)
from harness.backends.process_memory import peak_rss_mb, rss_mb
from harness.schema import CellSpec, Sample


def synthetic_image(index: int, size: int) -> np.ndarray:
    """A deterministic RGB picture (gradients, rings and a checkerboard; not noise, so image codecs
    and resizers see ordinary content), shape (size, size, 3), uint8."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    phase = index * 0.7
    r = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + phase))
    g = 0.5 + 0.5 * np.cos(2 * np.pi * (8 * np.hypot(x - 0.5, y - 0.5) - phase))
    b = ((np.floor(x * 8) + np.floor(y * 8) + index) % 2).astype(np.float32)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def _images(index: int, count: int, size: int) -> list[Any]:
    import openvino as ov

    return [ov.Tensor(synthetic_image(index * count + k, size)[None]) for k in range(count)]


def _build(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    props: dict[str, Any] = {k: v for k, v in cell.properties.items() if k != "ATTENTION_BACKEND"}
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.VLMPipeline(str(models.target), cell.device, **props)


def measure_call(pipe: Any, prompt: str, images: list[Any], cfg: Any, streamer_cls: type | None, iteration: int,
                 warmup: bool, prompt_index: int) -> Sample:
    streamer = streamer_cls() if streamer_cls else None
    start = time.perf_counter_ns()
    res = pipe.generate(prompt, images=images, generation_config=cfg, streamer=streamer)
    end = time.perf_counter_ns()
    genai = _genai_readings(res)
    pm = res.perf_metrics
    if hasattr(pm, "get_prepare_embeddings_duration"):
        genai["prepare_embeddings_ms"] = pm.get_prepare_embeddings_duration().mean
    if streamer is not None:
        offsets = [(t - start) / 1e6 for t in streamer.times_ns]
        chunks, ids = list(streamer.tokens), list(streamer.ids)
    else:
        offsets, chunks = genai_step_times(res, start)
        ids = [int(x) for x in pipe.get_tokenizer().encode(res.texts[0], add_special_tokens=False).input_ids.data[0]]
    return Sample(iteration=iteration, warmup=warmup, prompt_index=prompt_index,
                  input_tokens=int(genai["input_tokens"] or 0), output_tokens=sum(chunks) if chunks else 0,
                  start_ns=start, end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunks, genai=genai,
                  output_text=res.texts[0], output_ids=ids, readings={"images": float(len(images))},
                  output_ids_source="generated" if streamer is not None else "reencoded")


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load (cold, then cached compile), warm up, measure; every call with its own generated image(s)."""
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

    cfg = generation_config(pipe, cell)
    n_images = int(cell.scenario.params.get("images", 1))
    size = int(cell.scenario.params.get("image_size", 224))
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    prompts = prompt_texts(cell, pipe.get_tokenizer(), total if vary else 1)
    use_streamer = cell.token_timing == "streamer"
    streamer_cls = timing_streamer_class() if use_streamer else None
    if not use_streamer:
        check_clock()
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        pidx = i % len(prompts) if vary else 0
        sample = measure_call(pipe, prompts[pidx], _images(pidx, n_images, size), cfg, streamer_cls, i,
                              i < cell.warmup, pidx)
        i += 1
        emit({"event": "sample", "sample": sample.model_dump(), "of": max(total, i + 1)})
    check_outputs: dict[str, str] = {}
    if cell.generation.mode in ("greedy", "sampling"):
        pidx = cell.warmup if vary else 0
        again = measure_call(pipe, prompts[pidx], _images(pidx, n_images, size), cfg, None, -1, True, pidx)
        check_outputs[f"repeat:{pidx}"] = again.output_text
    cell_values["peak_rss_mb"] = peak_rss_mb()
    emit({"event": "done", "cell_values": cell_values, "check_outputs": check_outputs})
