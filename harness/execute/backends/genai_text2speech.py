"""Text to speech through openvino-genai's Text2SpeechPipeline (SpeechT5 and its vocoder).

One generate call on one text per iteration, with one fixed seeded speaker embedding for every cell, precision
and run. The call's seconds of audio (samples / output sample rate) are its reading: RTF and samples/s come
from them and the harness clock. The first measured clip is kept, as every STRIDE-th sample of its start, so
int8/int4 can be compared with fp16 on the waveform itself."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.core.backend import CellModels
from harness.core.metrics import TokenizationTime
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend, prompt_index
from harness.execute.backends.genai_common import pipeline_builder, prompt_texts
from harness.kinds.text2speech import SpeechGenerationParams

SPEAKER_SEED = 1234  # the speaker embedding: the same for every cell, precision and run
# The kept clip: every STRIDE-th sample from the start, at most KEPT_POINTS of them (1 s at 16 kHz), rounded
# to DECIMALS. A fixed stride puts the points at the same sample positions in every cell whatever the clip's
# length, so an SNR over them is the full waveform's SNR estimated on a regular subset (the error and signal
# energies are summed at the same positions) while results.json holds ~20 kB instead of ~200 kB per second.
# At 5 decimals the rounding error (< 5e-6) is ~100 dB below a clip of 0.1 RMS: far under what int8 moves.
STRIDE = 8
KEPT_POINTS = 2000
DECIMALS = 5


def speaker_embedding(shape: list[int]) -> np.ndarray:
    """A seeded unit-norm Gaussian vector of `shape` (SpeechT5's x-vector speaker input, [1, 512])."""
    v = np.random.default_rng(SPEAKER_SEED).standard_normal(shape).astype(np.float32)
    return v / np.linalg.norm(v)


def kept_waveform(audio: np.ndarray) -> list[float]:
    """The points of a clip kept for the comparison with fp16 (see STRIDE)."""
    return [round(float(x), DECIMALS) for x in audio.ravel()[::STRIDE][:KEPT_POINTS]]


def _perf(res: Any) -> dict[str, float | None]:
    pm = res.perf_metrics
    return {"generate_ms": float(pm.generate_duration.mean),
            TokenizationTime.tag: float(pm.get_tokenization_duration().mean)}


class SpeechSession:
    """One text per call (the pipeline takes one at a time), the cell's length and stop settings."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        import openvino as ov
        import openvino_genai as ov_genai

        self.pipe, self.cell, self.params = pipe, cell, SpeechGenerationParams.of(cell)
        self.speaker = ov.Tensor(speaker_embedding(list(pipe.get_speaker_embedding_shape())))
        total = cell.warmup + cell.iterations
        tok = ov_genai.Tokenizer(str(models.target))
        self.prompts = prompt_texts(cell, tok, total if cell.prompts.vary_per_iteration else 1)
        self.kept: dict[int, Any] = {}

    def _speak(self, pidx: int) -> tuple[np.ndarray, int, Any]:
        """The clip (copied: the pipeline overwrites its output tensor on the next call), its rate and the result."""
        p = self.params
        res = self.pipe.generate(self.prompts[pidx], self.speaker, minlenratio=p.minlenratio,
                                 maxlenratio=p.maxlenratio, threshold=p.threshold)
        return np.array(res.speeches[0].data, copy=True), int(res.output_sample_rate), res

    def call(self, iteration: int, warmup: bool) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        start = time.perf_counter_ns()
        audio, rate, res = self._speak(pidx)
        end = time.perf_counter_ns()
        if iteration == self.cell.warmup:  # the first measured clip, for the comparison with fp16
            self.kept[pidx] = kept_waveform(audio)
        return Sample(iteration=iteration, warmup=warmup, prompt_index=pidx, input_tokens=0, output_tokens=0,
                      start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[], genai=_perf(res),
                      readings={"generated_samples": float(audio.size), "generated_audio_s": audio.size / rate})

    def repeat(self, iteration: int) -> CheckOutputs:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        return CheckOutputs(repeat_outputs={pidx: kept_waveform(self._speak(pidx)[0])})

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        return {}, CheckOutputs(first_outputs=self.kept)


TEXT2SPEECH = Backend(build=pipeline_builder("Text2SpeechPipeline"), start=SpeechSession)
