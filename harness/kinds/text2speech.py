"""Text to speech: Text2SpeechPipeline.generate (SpeechT5) on one text per call with a fixed speaker embedding."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from harness.core.metrics import (
    AudioCosine,
    AudioSNR,
    E2ELatency,
    GeneratedAudio,
    PeakRSS,
    SpeechRealTimeFactor,
    SpeechSampleThroughput,
)
from harness.kinds.base import DEVICE_KNOBS, Column, KindSpec, Params, ReportTable


class SpeechGenerationParams(Params):
    # SpeechT5 decodes two mel frames (512 samples, 32 ms) per step and stops at the first step whose stop
    # probability reaches `threshold`, but not before int(input tokens · minlenratio / 2) steps: a model that
    # would stop at once (the random tiny-tts) still speaks ~1 s for a 32-token prompt at the default.
    minlenratio: float = Field(2.0, ge=0, le=100, description="least audio frames per input token")
    maxlenratio: float = Field(20.0, gt=0, le=100, description="most audio frames per input token")
    threshold: float = Field(0.5, ge=0, le=1, description="stop probability that ends the speech")

    @classmethod
    def check_axes(cls, axes: dict[str, list[Any]]) -> None:
        # openvino-genai rejects maxlenratio <= minlenratio only at generate(); say so when the suite loads.
        # Every pair of the two axes makes a cell.
        lows = axes.get("minlenratio", [cls.model_fields["minlenratio"].default])
        highs = axes.get("maxlenratio", [cls.model_fields["maxlenratio"].default])
        if max(lows) >= min(highs):
            raise ValueError(f"maxlenratio must be greater than minlenratio in every cell, got minlenratio "
                             f"{max(lows):g} with maxlenratio {min(highs):g}")


def compare_audio(a: Any, b: Any) -> tuple[dict[str, float], str] | None:
    """Waveform agreement of the two cells' kept clips over their common samples: SNR in dB of `a` against the
    reference `b` and their cosine. An exact match has no finite SNR: only the cosine is given then."""
    n = min(len(a), len(b))
    if n == 0:
        return None
    x, ref = [float(v) for v in a[:n]], [float(v) for v in b[:n]]
    signal = math.fsum(r * r for r in ref)
    noise = math.fsum((v - r) ** 2 for v, r in zip(x, ref, strict=True))
    norm = math.sqrt(math.fsum(v * v for v in x) * signal)
    if norm == 0:
        return {}, "a silent clip: no waveform comparison"
    values = {AudioCosine.tag: math.fsum(v * r for v, r in zip(x, ref, strict=True)) / norm}
    if noise > 0:
        values[AudioSNR.tag] = 10 * math.log10(signal / noise)
    lengths = "same length" if len(a) == len(b) else f"lengths {len(a)} and {len(b)} kept points, first {n} compared"
    return values, f"{n} waveform points, {lengths}" + ("" if noise > 0 else ", identical")


_ACCURACY = (Column("SNR vs fp16 dB", AudioSNR.tag, "max", 1), Column("cosine vs fp16", AudioCosine.tag, "max", 4))

KIND = KindSpec(
    name="text2speech", params=SpeechGenerationParams, backend="harness.execute.backends.genai_text2speech:TEXT2SPEECH",
    generates_text=False, reference="same_kind", compare_outputs=compare_audio, tune_space=DEVICE_KNOBS,
    # the kept waveform is rounded to 5 significant digits: a repeat computing the same audio keeps the same
    # points, a repeat off by float noise may move one in its last digit
    repeat_tolerance=1e-4,
    report=ReportTable(
        title="Text to speech (Text2SpeechPipeline)",
        columns=(Column("RTF", SpeechRealTimeFactor.tag, digits=3), Column("latency ms", E2ELatency.tag),
                 Column("audio s", GeneratedAudio.tag, digits=2), Column("samples/s", SpeechSampleThroughput.tag, digits=0),
                 Column("peak MiB", PeakRSS.tag, digits=0), *_ACCURACY),
        headline=(Column("RTF", SpeechRealTimeFactor.tag, digits=3), Column("ms", E2ELatency.tag)),
        speed=(Column("RTF", SpeechRealTimeFactor.tag, "median", 3), Column("latency ms", E2ELatency.tag, "median"),
               Column("samples/s", SpeechSampleThroughput.tag, "median", 0)),
        speedup_metric=SpeechRealTimeFactor.tag, accuracy=_ACCURACY,
        note="One Text2SpeechPipeline.generate call per iteration (one text, a fixed seeded speaker embedding); "
        "RTF = latency / seconds of audio generated; samples/s = audio samples / latency. SNR and cosine vs "
        "fp16 on the first measured clip's waveform (every 8th sample of its first second, the same positions in "
        "both)."))
