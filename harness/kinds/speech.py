"""Speech to text: WhisperPipeline.generate on a generated speech-like clip."""

from __future__ import annotations

from pydantic import Field

from harness.core.metrics import (
    TPOT,
    TTFT,
    E2ELatency,
    OutputThroughput,
    PeakRSS,
    RealTimeFactor,
    WhisperEncode,
)
from harness.kinds.base import DEVICE_KNOBS, Column, KindSpec, Params, ReportTable
from harness.kinds.text import ACCURACY


class SpeechParams(Params):
    audio_s: float = Field(5.0, gt=0, description="length of the generated audio clip in seconds")


KIND = KindSpec(
    name="speech", params=SpeechParams, backend="harness.execute.backends.genai_whisper:BACKEND", reference="same_kind",
    tune_space=DEVICE_KNOBS,
    report=ReportTable(
        title="Speech to text (WhisperPipeline)",
        columns=(Column("RTF", RealTimeFactor.tag, digits=3), Column("latency ms", E2ELatency.tag), Column("TTFT ms", TTFT.tag, digits=2),
                 Column("TPOT ms", TPOT.tag, digits=2), Column("encoder ms", WhisperEncode.tag, digits=2),
                 Column("tok/s", OutputThroughput.tag), Column("peak MiB", PeakRSS.tag, digits=0)),
        headline=(Column("RTF", RealTimeFactor.tag, digits=3), Column("ms", E2ELatency.tag)),
        note="One WhisperPipeline.generate call per iteration on a generated speech-like clip; RTF = latency / clip "
        "length; encoder = openvino-genai's encoder inference time.",
        speed=(Column("RTF", RealTimeFactor.tag, "median", 3), Column("latency ms", E2ELatency.tag, "median"),
               Column("TPOT ms", TPOT.tag, "median", 2)),
        speedup_metric=E2ELatency.tag, accuracy=ACCURACY))
