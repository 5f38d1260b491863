"""Speech to text through openvino-genai's WhisperPipeline, on a generated audio clip.

One generate(raw_speech) call per iteration. Latency is the call's e2e on the harness clock; the
real-time factor is e2e / clip length; tokens are timed like text generation (streamer or
openvino-genai's per-step timestamps). Feature extraction and encoder times come from
WhisperPerfMetrics."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from harness.backends import CellModels, Emit
from harness.backends.genai_llm import _genai_readings, check_clock, genai_step_times, timing_streamer_class
from harness.backends.process_memory import peak_rss_mb, rss_mb
from harness.schema import CellSpec, Sample

SAMPLE_RATE = 16000  # Whisper's input rate


def synthetic_speech(index: int, seconds: float) -> np.ndarray:
    """A deterministic speech-like clip at 16 kHz in [-1, 1]: voiced syllables (a 110–180 Hz fundamental
    with formant-like harmonics, 4 syllables a second) separated by short pauses, plus faint noise."""
    rng = np.random.default_rng(10_000 + index)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 110 + 70 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t + index))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(a * np.sin(k * phase) for k, a in ((1, 1.0), (2, 0.6), (3, 0.4), (5, 0.25), (8, 0.1)))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, np.pi)), 0, None) ** 2
    audio = 0.25 * voice * envelope + 0.005 * rng.standard_normal(n)
    return np.clip(audio, -1, 1).astype(np.float32)


def _build(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    props: dict[str, Any] = {k: v for k, v in cell.properties.items() if k != "ATTENTION_BACKEND"}
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.WhisperPipeline(str(models.target), cell.device, **props)


def _config(pipe: Any, cell: CellSpec) -> Any:
    cfg = pipe.get_generation_config()
    g = cell.generation
    cfg.max_new_tokens = g.max_new_tokens
    cfg.ignore_eos = g.ignore_eos
    if g.mode == "sampling":
        cfg.do_sample, cfg.temperature, cfg.top_p, cfg.top_k, cfg.rng_seed = True, g.temperature, g.top_p, g.top_k, g.seed
    return cfg


def measure_call(pipe: Any, audio: np.ndarray, cfg: Any, streamer_cls: type | None, iteration: int, warmup: bool,
                 prompt_index: int) -> Sample:
    speech = audio.tolist()  # the pipeline takes a list of floats; converting it is not part of the call
    streamer = streamer_cls() if streamer_cls else None
    start = time.perf_counter_ns()
    res = pipe.generate(speech, cfg, streamer) if streamer is not None else pipe.generate(speech, cfg)
    end = time.perf_counter_ns()
    genai = _genai_readings(res)
    pm = res.perf_metrics
    for name, getter in (("features_ms", "get_features_extraction_duration"),
                         ("encode_ms", "get_encode_inference_duration")):
        if hasattr(pm, getter):
            genai[name] = getattr(pm, getter)().mean
    if streamer is not None:
        offsets = [(t - start) / 1e6 for t in streamer.times_ns]
        chunks, ids = list(streamer.tokens), list(streamer.ids)
    else:
        offsets, chunks = genai_step_times(res, start)
        ids = []
    return Sample(iteration=iteration, warmup=warmup, prompt_index=prompt_index, input_tokens=0,
                  output_tokens=sum(chunks) if chunks else int(genai["generated_tokens"] or 0), start_ns=start,
                  end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunks, genai=genai,
                  output_text=res.texts[0], output_ids=ids, readings={"audio_s": len(audio) / SAMPLE_RATE})


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load (cold, then cached compile), warm up, measure; each iteration transcribes its own clip."""
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

    cfg = _config(pipe, cell)
    seconds = float(cell.scenario.params.get("audio_s", 5.0))
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    streamer_cls = timing_streamer_class() if cell.token_timing == "streamer" else None
    if streamer_cls is None:
        check_clock()
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        idx = i if vary else 0
        sample = measure_call(pipe, synthetic_speech(idx, seconds), cfg, streamer_cls, i, i < cell.warmup, idx)
        i += 1
        emit({"event": "sample", "sample": sample.model_dump(), "of": max(total, i + 1)})
    check_outputs: dict[str, str] = {}
    if cell.generation.mode in ("greedy", "sampling"):
        idx = cell.warmup if vary else 0
        check_outputs[f"repeat:{idx}"] = measure_call(pipe, synthetic_speech(idx, seconds), cfg, None, -1, True,
                                                      idx).output_text
    cell_values["peak_rss_mb"] = peak_rss_mb()
    emit({"event": "done", "cell_values": cell_values, "check_outputs": check_outputs})
