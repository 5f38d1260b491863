"""Speech to text: WhisperPipeline.generate on a generated speech-like clip."""

from __future__ import annotations

from pydantic import Field

from harness.kinds.base import Column, KindSpec, Params, ReportTable
from harness.kinds.text import ACCURACY


class SpeechParams(Params):
    audio_s: float = Field(5.0, gt=0, description="length of the generated audio clip in seconds")


KIND = KindSpec(
    name="speech", params=SpeechParams, backend="harness.execute.backends.genai_whisper:run", reference="same_kind",
    report=ReportTable(
        title="Speech to text (WhisperPipeline)",
        columns=(Column("RTF", "rtf", digits=3), Column("latency ms", "e2e_ms"), Column("TTFT ms", "ttft_ms", digits=2),
                 Column("TPOT ms", "tpot_ms", digits=2), Column("encoder ms", "speech_encode_ms", digits=2),
                 Column("tok/s", "output_tps"), Column("peak MiB", "peak_rss_mb", digits=0)),
        headline=(Column("RTF", "rtf", digits=3), Column("ms", "e2e_ms")),
        note="One WhisperPipeline.generate call per iteration on a generated speech-like clip; RTF = latency / clip "
        "length; encoder = openvino-genai's encoder inference time.",
        speed=(Column("RTF", "rtf", "median", 3), Column("latency ms", "e2e_ms", "median"),
               Column("TPOT ms", "tpot_ms", "median", 2)),
        speedup_metric="e2e_ms", accuracy=ACCURACY))
