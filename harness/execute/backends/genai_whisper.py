"""Speech to text through openvino-genai's WhisperPipeline, on a generated audio clip.

One generate(raw_speech) call per iteration. Latency is the call's e2e on the harness clock; the
real-time factor is e2e / clip length; tokens are timed like text generation (streamer or
openvino-genai's per-step timestamps). Feature extraction and encoder times come from
WhisperPerfMetrics."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.core.backend import CellModels
from harness.core.schema import CellSpec, Sample
from harness.execute.backends.driver import Backend, TextSession, prompt_index
from harness.execute.backends.genai_common import (
    genai_readings,
    generation_config,
    pipeline_builder,
    streamer_for,
    token_timeline,
)
from harness.kinds.speech import SpeechParams

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


def measure_call(pipe: Any, audio: np.ndarray, cfg: Any, streamer_cls: type | None, iteration: int, warmup: bool,
                 prompt_index: int) -> Sample:
    speech = audio.tolist()  # the pipeline takes a list of floats; converting it is not part of the call
    streamer = streamer_cls() if streamer_cls else None
    start = time.perf_counter_ns()
    res = pipe.generate(speech, cfg, streamer) if streamer is not None else pipe.generate(speech, cfg)
    end = time.perf_counter_ns()
    genai = genai_readings(res)
    pm = res.perf_metrics
    for name, getter in (("features_ms", "get_features_extraction_duration"),
                         ("encode_ms", "get_encode_inference_duration")):
        if hasattr(pm, getter):
            genai[name] = getattr(pm, getter)().mean
    offsets, chunks, ids = token_timeline(res, start, streamer)
    return Sample(iteration=iteration, warmup=warmup, prompt_index=prompt_index, input_tokens=0,
                  output_tokens=sum(chunks) if chunks else int(genai["generated_tokens"] or 0), start_ns=start,
                  end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunks, genai=genai,
                  output_text=res.texts[0], output_ids=ids, readings={"audio_s": len(audio) / SAMPLE_RATE})


class WhisperSession(TextSession):
    """Each iteration transcribes its own clip when prompts vary (there is no prompt: the clip is the input)."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        self.pipe, self.cell = pipe, cell
        # the text generation settings, min_new_tokens and beam search included, as for every generating cell
        self.cfg = generation_config(pipe, cell)
        self.seconds = SpeechParams.of(cell).audio_s
        self.streamer_cls = streamer_for(cell)

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        idx = prompt_index(self.cell, iteration, None)
        return measure_call(self.pipe, synthetic_speech(idx, self.seconds), self.cfg, streamer_cls, label, warmup, idx)


BACKEND = Backend(build=pipeline_builder("WhisperPipeline"), start=WhisperSession)
