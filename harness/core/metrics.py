"""Every metric the harness reports, defined once.

One small class per metric: its tag (the key in results.json), unit, direction and, in the
docstring, its formula. Per-sample metrics compute from a `Sample`'s raw clock readings;
per-cell metrics are measured once per cell by the worker and only declared here.
`docs/metrics.md` is generated from this module (`harness metrics --markdown`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar, Literal

from harness.core.schema import BatchRecord, Sample


class Metric:
    """A metric: its tag (the key in results.json), title, unit and direction; its docstring is its definition.
    A metric is one of the scopes below, and code names it by its class (`TTFT.tag`), never by a string."""

    tag: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str]
    higher_is_better: ClassVar[bool]
    # "sample": per generate() call or request; "batch": per batch of concurrent requests; "cell": once per cell
    scope: ClassVar[str]

    @classmethod
    def formula(cls) -> str:
        return " ".join((cls.__doc__ or "").split())


class SampleMetric(Metric):
    """Computed from one sample's own clock readings and recorded values."""

    scope: ClassVar[str] = "sample"

    @classmethod
    def compute(cls, sample: Sample) -> list[float]:
        """Values contributed by one sample ([] when the metric does not apply)."""
        raise NotImplementedError


class DerivedMetric(Metric):
    """Computed from the values of the metrics it `requires` for the same sample; evaluated after them."""

    scope: ClassVar[str] = "sample"
    requires: ClassVar[tuple[type[Metric], ...]]

    @classmethod
    def derive(cls, values: Mapping[str, list[float]]) -> list[float]:
        raise NotImplementedError


METRICS: dict[str, type[Metric]] = {}

# the per-request metrics a serving suite's `slo:` may limit (goodput, SLO search)
SloMetric = Literal["ttft_ms", "tpot_ms", "e2e_ms"]


def metric(cls: type[Metric]) -> type[Metric]:
    """Register a metric. A derived metric's requirements must be registered before it, so the registry's order
    is an order in which every metric can be evaluated."""
    if cls.tag in METRICS:
        raise ValueError(f"metric tag {cls.tag!r} defined twice")
    missing = [r.tag for r in getattr(cls, "requires", ()) if r.tag not in METRICS]
    if missing:
        raise ValueError(f"metric {cls.tag!r} requires {', '.join(missing)}, not registered before it")
    METRICS[cls.tag] = cls
    return cls


# What a backend may record in a Sample's `readings` beside its clock readings: the inputs of the per-sample
# metrics that divide by them, and what checks compare with. A worker's sample naming anything else is refused.
READINGS: dict[str, str] = {
    "tokens": "tokens the call processed (encoders, tokenizer passes)",
    "texts": "texts per call (tokenizer parity)",
    "documents": "documents per call or request (embeddings, rerank)",
    "images": "images per call (a VLM's input, an image pipeline's output)",
    "pixels": "pixels per generated image",
    "steps": "denoising steps per call",
    "frames": "video frames per call",
    "audio_s": "seconds of input audio (speech to text)",
    "generated_samples": "audio samples generated (text to speech)",
    "generated_audio_s": "seconds of audio generated (text to speech)",
    "ov_encode_ms": "OpenVINO tokenizer: encoding time of the call's texts",
    "hf_encode_ms": "Hugging Face tokenizer: encoding time of the call's texts",
    "ov_decode_ms": "OpenVINO detokenizer: decoding time of the call's ids",
    "hf_decode_ms": "Hugging Face tokenizer: decoding time of the call's ids",
    "http_connect_ms": "serving: TCP (and TLS) connect, on a new connection",
    "http_send_ms": "serving: request headers start to body sent",
    "http_wait_ms": "serving: body sent to response headers received",
    "http_receive_ms": "serving: headers received to the last body byte",
    "connection_reused": "serving: 1 when the request opened no connection",
    "conversation": "serving: the request's conversation",
    "turn": "serving: the request's turn in its conversation (1-based)",
    "max_tokens": "serving: output tokens the request asked for",
    "window_tokens": "quality pass: tokens of the window the call ran forward",
}


def unknown_readings(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n not in READINGS)


def unknown_tags(tags: Iterable[str]) -> list[str]:
    """The tags the registry lacks: the one rule for a value keyed by something that is no metric (a worker's event,
    a cell's figures, a run-level check) is to refuse it, naming them."""
    return sorted(t for t in tags if t not in METRICS)


def _e2e_ms(s: Sample) -> float:
    return (s.end_ns - s.start_ns) / 1e6


def _generates(s: Sample) -> bool:
    """A call that produced tokens (embeddings, rerank and tokenizer passes produce none)."""
    return s.output_tokens > 0 or bool(s.chunk_tokens)


def _ttft_ms(s: Sample) -> float | None:
    return s.chunk_offsets_ms[0] if s.chunk_offsets_ms else None


# ---------------------------------------------------------------- harness clock (per sample)


@metric
class InputTokens(SampleMetric):
    """Prompt length in tokens, as counted by the pipeline's tokenizer (PerfMetrics num_input_tokens);
    absent when none was reported (0: e.g. text-to-image, speech, a rerank server without usage)."""

    tag, title, unit, higher_is_better = "input_tokens", "input tokens", "tokens", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [float(s.input_tokens)] if s.input_tokens > 0 else []


@metric
class OutputTokens(SampleMetric):
    """Generated tokens: the sum of tokens delivered to the streamer over the call."""

    tag, title, unit, higher_is_better = "output_tokens", "output tokens", "tokens", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        if not _generates(s):
            return []
        return [float(s.output_tokens)]


@metric
class E2ELatency(SampleMetric):
    """End-to-end latency: generate() return − generate() call, on the harness's monotonic clock."""

    tag, title, unit, higher_is_better = "e2e_ms", "e2e latency", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [_e2e_ms(s)]


@metric
class TTFT(SampleMetric):
    """Time to first token: arrival of the first streamer chunk − generate() call. Includes tokenization and prefill."""

    tag, title, unit, higher_is_better = "ttft_ms", "TTFT", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        return [] if t is None else [t]


@metric
class TPOT(SampleMetric):
    """Time per output token after the first: (e2e − TTFT) / (output tokens − 1). Undefined for one token."""

    tag, title, unit, higher_is_better = "tpot_ms", "TPOT", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        if t is None or s.output_tokens < 2:
            return []
        return [(_e2e_ms(s) - t) / (s.output_tokens - 1)]


@metric
class InterChunkLatency(SampleMetric):
    """Inter-token latency per streamer chunk: gaps between consecutive chunk arrivals (all gaps of all
    samples pooled). With speculative decoding or prompt lookup one chunk can carry several tokens, so
    this is not TPOT."""

    tag, title, unit, higher_is_better = "itl_ms", "inter-chunk latency", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        o = s.chunk_offsets_ms
        return [b - a for a, b in zip(o, o[1:], strict=False)]


@metric
class OutputThroughput(SampleMetric):
    """Output tokens per second over the whole call: output tokens / e2e seconds."""

    tag, title, unit, higher_is_better = "output_tps", "output tok/s per request", "tokens/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        if not _generates(s):
            return []
        e2e = _e2e_ms(s)
        return [s.output_tokens / (e2e / 1000.0)] if e2e > 0 else []


@metric
class DecodeThroughput(DerivedMetric):
    """Decode tokens per second: (output tokens − 1) / (e2e − TTFT) seconds; 1000 / TPOT."""

    tag, title, unit, higher_is_better = "decode_tps", "decode tok/s per request", "tokens/s", True
    requires = (TPOT,)

    @classmethod
    def derive(cls, values: Mapping[str, list[float]]) -> list[float]:
        return [1000.0 / v for v in values.get(TPOT.tag, []) if v > 0]


@metric
class TokensPerChunk(SampleMetric):
    """Tokens carried per streamer chunk (1 for plain decoding; more when drafts are accepted)."""

    tag, title, unit, higher_is_better = "tokens_per_chunk", "tokens per chunk", "tokens", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [float(n) for n in s.chunk_tokens]


@metric
class ExtraStepTokens(SampleMetric):
    """Tokens delivered beyond one per generation step: sum over streamed steps of (tokens in step − 1).
    0 for plain decoding; with speculative decoding or prompt lookup it counts tokens gained from
    accepted proposals. Read off the stream, so it exists for prompt lookup, where openvino-genai
    reports no acceptance figures; it can differ from genai's accepted count by the step boundaries."""

    tag, title, unit, higher_is_better = "extra_step_tokens", "extra tokens per call (steps)", "tokens", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [float(sum(n - 1 for n in s.chunk_tokens if n > 1))] if s.chunk_tokens else []


# ---------------------------------------------------------------- serving client: TTST and HTTP phases (per request)


@metric
class TTST(SampleMetric):
    """Time to second token (aiperf's definition): arrival of the second content chunk − arrival of the first;
    absent for a response of one chunk. The first inter-chunk gap: the first decode step after prefill."""

    tag, title, unit, higher_is_better = "ttst_ms", "time to second token", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        o = s.chunk_offsets_ms
        return [o[1] - o[0]] if len(o) > 1 else []


class _Recorded(SampleMetric):
    """Base for a value the backend recorded on the sample: `reading` in its `readings` or its `genai` dict."""

    reading: ClassVar[str]
    genai: ClassVar[bool] = False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        v = (s.genai if cls.genai else s.readings).get(cls.reading)
        return [] if v is None else [float(v)]


class _HttpPhase(_Recorded):
    """Base for a serving request's HTTP phase, read from httpcore's trace events (readings http_*_ms)."""


@metric
class HttpConnect(_HttpPhase):
    """Serving: TCP connect start → connected (with TLS: handshake done); only requests that opened a
    connection have it (see connection_reused_pct)."""

    tag, title, unit, higher_is_better = "http_connect_ms", "HTTP connect", "ms", False
    reading = "http_connect_ms"


@metric
class HttpSend(_HttpPhase):
    """Serving: request headers start → request body sent."""

    tag, title, unit, higher_is_better = "http_send_ms", "HTTP send", "ms", False
    reading = "http_send_ms"


@metric
class HttpWait(_HttpPhase):
    """Serving: request body sent → response headers received (the server's queueing before it answers;
    `harness serve` and OVMS send the headers before the first token)."""

    tag, title, unit, higher_is_better = "http_wait_ms", "HTTP wait", "ms", False
    reading = "http_wait_ms"


@metric
class HttpReceive(_HttpPhase):
    """Serving: response headers received → last body byte read (a stream: the whole generation)."""

    tag, title, unit, higher_is_better = "http_receive_ms", "HTTP receive", "ms", False
    reading = "http_receive_ms"


# ---------------------------------------------------------------- openvino-genai PerfMetrics (per sample)


class _GenAIReading(_Recorded):
    """Base for values read from openvino-genai's PerfMetrics of the same call."""

    genai = True


@metric
class GenAITTFT(_GenAIReading):
    """openvino-genai PerfMetrics.get_ttft().mean for the call (its own clock; cross-check for ttft_ms)."""

    tag, title, unit, higher_is_better, reading = "genai_ttft_ms", "GenAI TTFT", "ms", False, "ttft_ms"


@metric
class GenAITPOT(_GenAIReading):
    """openvino-genai PerfMetrics.get_tpot().mean: mean gap between tokens from the second on."""

    tag, title, unit, higher_is_better, reading = "genai_tpot_ms", "GenAI TPOT", "ms", False, "tpot_ms"


@metric
class GenAIThroughput(_GenAIReading):
    """openvino-genai PerfMetrics.get_throughput().mean = 1000 / its TPOT (decode-only tokens/s)."""

    tag, title, unit, higher_is_better, reading = (
        "genai_throughput_tps", "GenAI throughput", "tokens/s", True, "throughput_tps")


@metric
class GenAIGenerateDuration(_GenAIReading):
    """openvino-genai PerfMetrics.get_generate_duration().mean: generate() time on its clock."""

    tag, title, unit, higher_is_better, reading = (
        "genai_generate_ms", "GenAI generate duration", "ms", False, "generate_ms")


@metric
class TokenizationTime(_GenAIReading):
    """openvino-genai PerfMetrics.get_tokenization_duration().mean: prompt tokenization time."""

    tag, title, unit, higher_is_better, reading = (
        "tokenization_ms", "tokenization", "ms", False, "tokenization_ms")


@metric
class DetokenizationTime(_GenAIReading):
    """openvino-genai PerfMetrics.get_detokenization_duration().mean: output detokenization time."""

    tag, title, unit, higher_is_better, reading = (
        "detokenization_ms", "detokenization", "ms", False, "detokenization_ms")


@metric
class VLMEmbeddingsTime(_GenAIReading):
    """VLM: openvino-genai VLMPerfMetrics.get_prepare_embeddings_duration().mean — image preprocessing, vision
    encoder and merging the embeddings, part of TTFT."""

    tag, title, unit, higher_is_better, reading = (
        "vlm_embeddings_ms", "image embeddings", "ms", False, "prepare_embeddings_ms")


class _SecondsPerAudioSecond(SampleMetric):
    """Base for real-time factors: e2e latency in seconds / the seconds of audio in the reading `audio`."""

    audio: ClassVar[str]

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        seconds = s.readings.get(cls.audio)
        return [_e2e_ms(s) / 1000.0 / seconds] if seconds else []


@metric
class RealTimeFactor(_SecondsPerAudioSecond):
    """Speech to text: e2e latency / audio clip length (below 1 = faster than real time)."""

    tag, title, unit, higher_is_better, audio = "rtf", "real-time factor", "x", False, "audio_s"


@metric
class WhisperFeatures(_GenAIReading):
    """Speech to text: openvino-genai WhisperPerfMetrics.get_features_extraction_duration().mean (log-mel)."""

    tag, title, unit, higher_is_better, reading = (
        "speech_features_ms", "feature extraction", "ms", False, "features_ms")


@metric
class WhisperEncode(_GenAIReading):
    """Speech to text: openvino-genai WhisperPerfMetrics.get_encode_inference_duration().mean (audio encoder)."""

    tag, title, unit, higher_is_better, reading = ("speech_encode_ms", "encoder", "ms", False, "encode_ms")


@metric
class SecondsPerImage(SampleMetric):
    """Image generation (text to image, image to image, inpainting): e2e of one generate() call (one image at the
    cell's width, height and steps), in seconds."""

    tag, title, unit, higher_is_better = "image_s", "time per image", "s", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [_e2e_ms(s) / 1000.0] if s.readings.get("images") and s.readings.get("steps") else []


@metric
class SecondsPerVideo(SampleMetric):
    """Text to video: e2e of one generate() call (one video at the cell's width, height, frames and steps), in
    seconds."""

    tag, title, unit, higher_is_better = "video_s", "time per video", "s", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [_e2e_ms(s) / 1000.0] if s.readings.get("frames") and s.readings.get("steps") else []


@metric
class FrameTime(SampleMetric):
    """Text to video: e2e / frames of the video (all of one call's work shared over its frames), in ms."""

    tag, title, unit, higher_is_better = "frame_ms", "time per frame", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        frames = s.readings.get("frames")
        return [_e2e_ms(s) / frames] if frames else []


@metric
class StepTime(SampleMetric):
    """Image and video generation: e2e / denoising steps run (image to image and inpainting run
    int(steps · strength) of them; includes the text encoder and VAE share), in ms."""

    tag, title, unit, higher_is_better = "step_ms", "time per step", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        steps = s.readings.get("steps")
        return [_e2e_ms(s) / steps] if steps else []


@metric
class GeneratedAudio(SampleMetric):
    """Text to speech: seconds of audio one generate() call produced = samples / the pipeline's output sample
    rate (SpeechT5: 512 samples, 32 ms, per decoder step)."""

    tag, title, unit, higher_is_better = "tts_audio_s", "audio generated", "s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        audio = s.readings.get("generated_audio_s")
        return [] if audio is None else [audio]


@metric
class SpeechRealTimeFactor(_SecondsPerAudioSecond):
    """Text to speech: e2e latency of the generate() call / seconds of audio it produced (below 1 = speaks
    faster than real time). Not speech to text's `rtf`, which divides by the input clip's length."""

    tag, title, unit, higher_is_better, audio = ("tts_rtf", "real-time factor (TTS)", "x", False,
                                                 "generated_audio_s")


@metric
class SpeechSampleThroughput(SampleMetric):
    """Text to speech: audio samples the generate() call produced / its e2e latency in seconds (openvino-genai's
    SpeechGenerationPerfMetrics.throughput is the same ratio on its own clock)."""

    tag, title, unit, higher_is_better = "tts_samples_per_s", "audio samples per second", "samples/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        samples = s.readings.get("generated_samples")
        return [samples / (_e2e_ms(s) / 1000.0)] if samples else []


@metric
class UNetTime(_GenAIReading):
    """Image generation: openvino-genai ImageGenerationPerfMetrics.get_unet_infer_duration().mean, the UNet's
    inference time per denoising step (measured: 10 steps of 59 ms in a 760 ms image), in ms."""

    tag, title, unit, higher_is_better, reading = ("unet_ms", "UNet inference", "ms", False, "unet_ms")


@metric
class TransformerTime(_GenAIReading):
    """Text to video: the transformer's inference time summed over all its calls in one generate() (openvino-genai
    VideoGenerationPerfMetrics raw_metrics.transformer_inference_durations), in ms."""

    tag, title, unit, higher_is_better, reading = ("transformer_ms", "transformer inference", "ms", False,
                                                   "transformer_ms")


@metric
class VAEDecoderTime(_GenAIReading):
    """Text to image and text to video: openvino-genai's get_vae_decoder_infer_duration() (Image- or
    VideoGenerationPerfMetrics), in ms."""

    tag, title, unit, higher_is_better, reading = ("vae_decoder_ms", "VAE decoder", "ms", False, "vae_decoder_ms")


@metric
class AcceptanceRate(_GenAIReading):
    """Speculative decoding / prompt lookup: share of proposed draft tokens the main model accepted,
    in percent. Speculative: ExtendedPerfMetrics.get_draft_acceptance_rate(). Prompt lookup, for which
    openvino-genai returns no such figure: accepted / proposed from its per-step token counts
    (raw_metrics.m_batch_sizes), each step after the first proposing num_assistant_tokens (it pads the
    lookup's candidates to that many and verifies them all, and counts its own statistics so)."""

    tag, title, unit, higher_is_better, reading = (
        "acceptance_rate_pct", "acceptance rate", "%", True, "acceptance_rate_pct")


@metric
class AcceptedTokens(_GenAIReading):
    """Speculative decoding / prompt lookup: draft tokens accepted by the main model in the call."""

    tag, title, unit, higher_is_better, reading = (
        "accepted_tokens", "accepted tokens", "tokens", True, "accepted_tokens")


@metric
class ProposedTokens(_GenAIReading):
    """Speculative decoding: draft tokens proposed in the call (tokens the draft model generated); prompt
    lookup: num_assistant_tokens per verification step (see acceptance rate)."""

    tag, title, unit, higher_is_better, reading = (
        "proposed_tokens", "proposed tokens", "tokens", True, "proposed_tokens")


# ---------------------------------------------------------------- tokenizers (per sample, from readings)


class _TokenizerSpeed(SampleMetric):
    """Base: corpus tokens / one pass's time in seconds, for one tokenizer and direction."""

    reading: ClassVar[str]

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        ms, tokens = s.readings.get(cls.reading), s.readings.get("tokens")
        return [tokens / (ms / 1000.0)] if ms and tokens else []


@metric
class OVEncodeSpeed(_TokenizerSpeed):
    """OpenVINO Tokenizers encode speed: corpus tokens / time to encode every corpus text one by one
    (openvino_genai.Tokenizer.encode, no special tokens)."""

    tag, title, unit, higher_is_better, reading = "ov_encode_tps", "OV encode", "tokens/s", True, "ov_encode_ms"


@metric
class HFEncodeSpeed(_TokenizerSpeed):
    """Hugging Face tokenizer encode speed: corpus tokens / time to encode every corpus text one by one
    (AutoTokenizer.encode, no special tokens)."""

    tag, title, unit, higher_is_better, reading = "hf_encode_tps", "HF encode", "tokens/s", True, "hf_encode_ms"


@metric
class OVDecodeSpeed(_TokenizerSpeed):
    """OpenVINO Tokenizers decode speed: corpus tokens / time to decode the Hugging Face ids of every text."""

    tag, title, unit, higher_is_better, reading = "ov_decode_tps", "OV decode", "tokens/s", True, "ov_decode_ms"


@metric
class HFDecodeSpeed(_TokenizerSpeed):
    """Hugging Face tokenizer decode speed: corpus tokens / time to decode the ids of every text."""

    tag, title, unit, higher_is_better, reading = "hf_decode_tps", "HF decode", "tokens/s", True, "hf_decode_ms"


# ---------------------------------------------------------------- embeddings and rerank (per call, from readings)


@metric
class DocumentThroughput(SampleMetric):
    """Embeddings / rerank: documents in the call / e2e seconds (e2e_ms is the call's latency)."""

    tag, title, unit, higher_is_better = "documents_per_s", "documents/s", "documents/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        docs, e2e = s.readings.get("documents"), _e2e_ms(s)
        return [docs / (e2e / 1000.0)] if docs and e2e > 0 else []


@metric
class EncoderTokenThroughput(SampleMetric):
    """Embeddings / rerank: tokens of all texts in the call (with special tokens) / e2e seconds."""

    tag, title, unit, higher_is_better = "input_tps", "input tok/s", "tokens/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        docs, e2e = s.readings.get("documents"), _e2e_ms(s)
        return [s.input_tokens / (e2e / 1000.0)] if docs and e2e > 0 else []


# ---------------------------------------------------------------- serving conversations (per request, by turn)


@metric
class TTFTFirstTurn(SampleMetric):
    """Serving with `turns` > 1: TTFT of a conversation's first turn, whose prompt has no history (the
    request's `turn` reading is 1)."""

    tag, title, unit, higher_is_better = "ttft_first_turn_ms", "TTFT, first turns", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        return [t] if t is not None and s.readings.get("turn") == 1 else []


@metric
class TTFTLaterTurns(SampleMetric):
    """Serving with `turns` > 1: TTFT of turns 2 and later, whose prompts carry the conversation so far (earlier
    user turns and the server's answers); against ttft_first_turn_ms it shows what the history costs, or what
    a prefix cache saves of it."""

    tag, title, unit, higher_is_better = "ttft_later_turns_ms", "TTFT, later turns", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        return [t] if t is not None and s.readings.get("turn", 0) > 1 else []


# ---------------------------------------------------------------- per batch of concurrent requests


class BatchMetric(Metric):
    """Computed from one batch record (a load of concurrent requests, a continuous-batching call)."""

    scope: ClassVar[str] = "batch"

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        raise NotImplementedError


def _batch_s(b: BatchRecord) -> float:
    return (b.end_ns - b.start_ns) / 1e9


@metric
class BatchOutputThroughput(BatchMetric):
    """Continuous batching: output tokens of all requests of a batch / batch duration (first request
    added → last request finished), in tokens per second."""

    tag, title, unit, higher_is_better = "batch_output_tps", "total output tok/s (whole load)", "tokens/s", True

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        return [b.output_tokens / _batch_s(b)] if b.output_tokens is not None and b.end_ns > b.start_ns else []


@metric
class BatchTotalThroughput(BatchMetric):
    """Continuous batching and serving: input + output tokens of all requests of a batch / batch duration."""

    tag, title, unit, higher_is_better = "batch_total_tps", "total tok/s (in + out)", "tokens/s", True

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        if b.input_tokens is None or b.end_ns <= b.start_ns:
            return []
        return [(b.input_tokens + (b.output_tokens or 0)) / _batch_s(b)]


@metric
class Goodput(BatchMetric):
    """Serving: completed requests that met every per-request SLO of the suite (`slo:` TTFT, TPOT, e2e
    limits) / load duration, in requests per second (vLLM's goodput). Absent when the suite sets no SLO."""

    tag, title, unit, higher_is_better = "goodput_rps", "goodput", "requests/s", True

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        return [b.good_requests / _batch_s(b)] if b.good_requests is not None and b.end_ns > b.start_ns else []


@metric
class RequestThroughput(BatchMetric):
    """Continuous batching and serving: completed requests of a batch / batch duration, in requests per
    second (failed serving requests are counted as errors, not here)."""

    tag, title, unit, higher_is_better = "request_rps", "request throughput", "requests/s", True

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        return [b.requests / _batch_s(b)] if b.end_ns > b.start_ns else []


@metric
class BatchDuration(BatchMetric):
    """Continuous batching: time from adding the first request of a batch to the step that finished its
    last one."""

    tag, title, unit, higher_is_better = "batch_ms", "batch duration", "ms", False

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        return [_batch_s(b) * 1000]


@metric
class KVCachePeakUsage(BatchMetric):
    """Continuous batching: highest KV-cache usage the pipeline reported after any step of the batch
    (ContinuousBatchingPipeline.get_metrics().cache_usage), in percent of the allocated cache."""

    tag, title, unit, higher_is_better = "kv_cache_peak_pct", "KV-cache peak usage", "%", False

    @classmethod
    def compute_batch(cls, b: BatchRecord) -> list[float]:
        return [] if b.cache_usage_max_pct is None else [b.cache_usage_max_pct]


# ---------------------------------------------------------------- per cell


class CellMetric(Metric):
    """One figure per cell, given by the worker, the runner or the run's analysis (declared here, not computed)."""

    scope: ClassVar[str] = "cell"


@metric
class LoadTimeCold(CellMetric):
    """Wall time of the pipeline constructor with an empty compile cache (read + compile)."""

    tag, title, unit, higher_is_better = "load_cold_ms", "load (cold compile)", "ms", False


@metric
class LoadTimeCached(CellMetric):
    """Wall time of the pipeline constructor when the compile cache (CACHE_DIR) already holds the blob."""

    tag, title, unit, higher_is_better = "load_cached_ms", "load (cached compile)", "ms", False


@metric
class GenAILoadTime(CellMetric):
    """openvino-genai PerfMetrics.get_load_time() of the pipeline used for measurement."""

    tag, title, unit, higher_is_better = "genai_load_ms", "GenAI load time", "ms", False


@metric
class PeakRSS(CellMetric):
    """Peak resident set size of the cell's own process (getrusage ru_maxrss), in MiB."""

    tag, title, unit, higher_is_better = "peak_rss_mb", "peak RSS", "MiB", False


@metric
class ModelMemory(CellMetric):
    """Memory added by the model: RSS after the first pipeline load − RSS before it, in MiB."""

    tag, title, unit, higher_is_better = "model_memory_mb", "model memory", "MiB", False


@metric
class ReferenceTPOT(CellMetric):
    """Fidelity check: median PerfMetrics TPOT of the bare reference loop (harness/execute/reference.py) on the
    cell's IR, prompts and settings, in a fresh process with nothing of the harness."""

    tag, title, unit, higher_is_better = "reference_tpot_ms", "reference TPOT", "ms", False


@metric
class ReferenceTTFT(CellMetric):
    """Fidelity check: median PerfMetrics TTFT of the bare reference loop."""

    tag, title, unit, higher_is_better = "reference_ttft_ms", "reference TTFT", "ms", False


@metric
class ReferenceOutputThroughput(CellMetric):
    """Fidelity check: median output tokens / generate() wall seconds of the bare reference loop."""

    tag, title, unit, higher_is_better = "reference_output_tps", "reference output tok/s", "tokens/s", True


@metric
class FidelityTPOT(CellMetric):
    """Fidelity check: the cell's TPOT / the reference's, geometric mean over the interleaved pairs (each
    pair: one worker process and one reference process, ratio of their medians). 1 = no harness cost."""

    tag, title, unit, higher_is_better = "fidelity_tpot_ratio", "TPOT harness/reference", "ratio", False


@metric
class FidelityTTFT(CellMetric):
    """Fidelity check: the cell's TTFT / the reference's, as fidelity_tpot_ratio."""

    tag, title, unit, higher_is_better = "fidelity_ttft_ratio", "TTFT harness/reference", "ratio", False


@metric
class FidelityThroughput(CellMetric):
    """Fidelity check: the cell's output tok/s / the reference's, as fidelity_tpot_ratio."""

    tag, title, unit, higher_is_better = "fidelity_tps_ratio", "tok/s harness/reference", "ratio", True


@metric
class ModelSizeOnDisk(CellMetric):
    """Size of the model's IR on disk (every openvino*model.xml + .bin: one file pair, or the parts of a
    VLM / speech / diffusion pipeline; tokenizers excluded), in MiB."""

    tag, title, unit, higher_is_better = "model_size_mb", "model size on disk", "MiB", False


@metric
class ExportTime(CellMetric):
    """Wall time of export + compression to OpenVINO IR (measured when the cache entry was built)."""

    tag, title, unit, higher_is_better = "export_s", "export time", "s", False


@metric
class TokenizerEncodeMismatches(CellMetric):
    """Corpus texts (each with and without special tokens) whose OpenVINO Tokenizers ids differ from the
    Hugging Face tokenizer's."""

    tag, title, unit, higher_is_better = "tokenizer_encode_mismatches", "encode mismatches", "texts", False


@metric
class TokenizerDecodeMismatches(CellMetric):
    """Corpus texts whose Hugging Face ids decode to different text in OpenVINO Tokenizers and Hugging Face."""

    tag, title, unit, higher_is_better = "tokenizer_decode_mismatches", "decode mismatches", "texts", False


@metric
class ErrorRate(CellMetric):
    """Serving: failed requests (connection, timeout, HTTP 4xx/5xx, malformed or cut SSE, no usage) / all
    measured requests, in %."""

    tag, title, unit, higher_is_better = "error_rate_pct", "error rate", "%", False


@metric
class ConnectionReused(CellMetric):
    """Serving: measured requests sent on a connection already open (no TCP connect event in httpcore's
    trace) / measured requests, in %."""

    tag, title, unit, higher_is_better = "connection_reused_pct", "connections reused", "%", True


@metric
class CancelledRequests(CellMetric):
    """Serving: measured requests the client cancelled on purpose (cancel_fraction: stream closed after
    cancel_after_tokens content chunks); neither errors nor completions."""

    tag, title, unit, higher_is_better = "cancelled_requests", "cancelled requests", "requests", False


@metric
class CancelledServerTokens(CellMetric):
    """Serving: tokens the server generated per cancelled request = (rise of its generated-token counter
    `harness_generated_tokens` over the load, warm-up included − usage tokens of the completed requests) /
    cancelled requests. Near cancel_after_tokens: the server stopped when the client left; near the
    requests' max_tokens: it generated the rest for nobody. Absent without that counter (OVMS) or with failures."""

    tag, title, unit, higher_is_better = "cancelled_server_tokens", "server tokens per cancelled request", \
        "tokens", False


@metric
class ClientCPU(CellMetric):
    """Serving: the load generator's own CPU time (user + system) / load wall time, in % of one core; near 100%
    means the client, not the server, may be the bottleneck."""

    tag, title, unit, higher_is_better = "client_cpu_pct", "client CPU", "%", False


@metric
class RunnerCPU(CellMetric):
    """The harness's own process (runner, event reading, progress display) while the cell's worker
    processes ran: its CPU time (user + system, all threads) / that wall time, in % of one core. What the
    harness itself takes from the machine during a measurement."""

    tag, title, unit, higher_is_better = "runner_cpu_pct", "runner CPU", "%", False


@metric
class PeakOutputThroughput(CellMetric):
    """Serving: the most output tokens delivered in any one-second window of the load (each request's usage
    token count spread evenly over its streamed chunks)."""

    tag, title, unit, higher_is_better = "peak_output_tps", "busiest second", "tokens/s", True


# ---------------------------------------------------------------- serving load analysis (harness/analyze/load_analysis.py)


@metric
class PrefillThroughput(SampleMetric):
    """Prefill tokens per second of one request: input tokens / TTFT seconds (aiperf's per-request prefill
    throughput). TTFT is what the client saw, so it holds queueing, tokenization and the network as well as the
    engine's prefill. Not the whole load's figure (load_prefill_tps)."""

    tag, title, unit, higher_is_better = "prefill_tps", "prefill tok/s per request", "tokens/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        return [s.input_tokens / (t / 1000.0)] if t and s.input_tokens > 0 else []


@metric
class SendLag(SampleMetric):
    """Serving, open loop: how late the generator sent the request against its arrival schedule: send time −
    scheduled time (Sample.start_ns − scheduled_ns). Absent in a closed loop, which has no schedule."""

    tag, title, unit, higher_is_better = "send_lag_ms", "send lag behind schedule", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [] if s.scheduled_ns is None else [(s.start_ns - s.scheduled_ns) / 1e6]


@metric
class CorrectedE2E(SampleMetric):
    """Serving, open loop: e2e latency corrected for coordinated omission: response end − the time the arrival
    schedule meant the request to be sent (end_ns − scheduled_ns), so a stall that delayed sending counts against
    the latency (aiperf's effective_latency, which measures from its credit issue). Absent in a closed loop."""

    tag, title, unit, higher_is_better = "e2e_co_ms", "e2e from schedule (CO-corrected)", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        return [] if s.scheduled_ns is None else [(s.end_ns - s.scheduled_ns) / 1e6]


@metric
class CorrectedTTFT(SampleMetric):
    """Serving, open loop: TTFT corrected for coordinated omission: first content chunk − scheduled send time
    (start_ns + TTFT − scheduled_ns). Absent in a closed loop and for requests without a streamed chunk."""

    tag, title, unit, higher_is_better = "ttft_co_ms", "TTFT from schedule (CO-corrected)", "ms", False

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        t = _ttft_ms(s)
        return [] if s.scheduled_ns is None or t is None else [(s.start_ns - s.scheduled_ns) / 1e6 + t]


@metric
class EffectiveConcurrency(CellMetric):
    """Serving: requests in flight (sent, not yet answered or failed), as a step function of time over the load
    (first measured send → last end), time-weighted mean: ∫ n(t) dt / load duration (aiperf's
    effective_concurrency). Warm-up excluded; failed requests count while they ran (since 1.9 results)."""

    tag, title, unit, higher_is_better = "concurrency_mean", "effective concurrency (time-weighted)", "requests", True


@metric
class PeakConcurrency(CellMetric):
    """Serving: the most requests in flight at any instant of the load (the maximum of the step function
    behind concurrency_mean)."""

    tag, title, unit, higher_is_better = "concurrency_max", "peak requests in flight", "requests", True


@metric
class LoadPrefillThroughput(CellMetric):
    """Serving: input tokens of all completed requests / the time at least one request was in prefill (between
    its send and its first content chunk), in tokens per second: aiperf's active_prefill_throughput, the
    prefill rate while prefill was going on. Not the per-request prefill_tps and not the whole load's token rate."""

    tag, title, unit, higher_is_better = "load_prefill_tps", "load prefill tok/s (while prefilling)", "tokens/s", True


@metric
class LoadDecodeThroughput(CellMetric):
    """Serving: Σ (output tokens − 1) of the completed requests / the time at least one request was decoding
    (between its first content chunk and its end), in tokens per second: aiperf's active_decode_throughput.
    Not the per-request decode_tps (1000 / TPOT) and not `batch_output_tps`, which divides all output tokens by
    the whole load's duration."""

    tag, title, unit, higher_is_better = "load_decode_tps", "load decode tok/s (while decoding)", "tokens/s", True


# ---------------------------------------------------------------- memory roofline (per cell; harness/analyze/roofline.py)


@metric
class WeightBytesPerToken(CellMetric):
    """Plain decoding (`generate`): bytes of weights one decoding step reads, from the IR, in MB (10^6 bytes):
    every Constant that reaches a MatMul only through decompression ops (Convert, Subtract, Multiply, Reshape,
    Transpose, ...), so int8/int4 weights count with their scales and zero points, a weight shared by two
    MatMuls once. The embedding table, read by a Gather one row per token, is left out, as are the KV cache
    and activations: real traffic per token is higher. Not for speculative decoding or prompt lookup, which
    read the weights once per several tokens."""

    tag, title, unit, higher_is_better = "weight_bytes_per_token", "weight MB per token", "MB", False


@metric
class HostMemoryBandwidth(CellMetric):
    """The memory bandwidth of the host the cell ran on: the best STREAM-style triad a = b + s·c (24 bytes per
    float64 element) over arrays several times the last-level cache, all logical cores, in GB/s (10^9 bytes/s).
    Best of the host's measurements, cached under its fingerprint: a full one the first time, a short check every
    run, since other work only lowers a reading (run metadata `host.memory_bandwidth`, with this run's own)."""

    tag, title, unit, higher_is_better = "memory_bandwidth_gbs", "host memory bandwidth (triad)", "GB/s", True


@metric
class AchievedBandwidth(CellMetric):
    """Plain decoding: weight traffic the cell sustained = weight_bytes_per_token × decode tokens/s, in GB/s;
    decode tokens/s = 1000 / the mean TPOT over the measured samples (the first token's prefill left out)."""

    tag, title, unit, higher_is_better = "achieved_bandwidth_gbs", "achieved weight bandwidth", "GB/s", True


@metric
class RooflinePercent(CellMetric):
    """Plain decoding: achieved_bandwidth_gbs / memory_bandwidth_gbs × 100, the share of its host's measured
    memory bandwidth the decode's weight reads reach. KV cache and activations are not counted, so it understates
    the memory system's real use (docs/roofline.md). Absent without a measured bandwidth, and above 100: a decode
    reading weights faster than the host's triad reads them from the CPU's cache (weights smaller than it) or the
    triad was measured under load (the cell's note says which)."""

    tag, title, unit, higher_is_better = "roofline_pct", "memory roofline", "%", True


# ---------------------------------------------------------------- accuracy against the fp16 reference (per cell)


@metric
class TokenMatch(CellMetric):
    """Greedy output against the reference of the same run (harness/analyze/accuracy.py: the PyTorch cell when the suite
    has one, else the fp16 greedy cell): share of token positions (over the longer output) holding the same
    token id, in %, averaged over the prompts."""

    tag, title, unit, higher_is_better = "token_match_pct", "token match vs fp16", "%", True


@metric
class FirstDivergence(CellMetric):
    """Greedy output against the reference of the same run (PyTorch or fp16): index of the first token that
    differs (the output length when identical), median over the prompts."""

    tag, title, unit, higher_is_better = "first_divergence_tokens", "first divergence vs fp16", "tokens", True


@metric
class OutputSimilarity(CellMetric):
    """Greedy output text against the reference's (PyTorch or fp16): difflib SequenceMatcher ratio × 100, averaged
    over the prompts (100 = identical text)."""

    tag, title, unit, higher_is_better = "output_similarity_pct", "text similarity vs fp16", "%", True


@metric
class EmbeddingCosine(CellMetric):
    """Embeddings at int8/int4 against the fp16 cell of the same run: cosine similarity of each document's
    vector with its fp16 vector, mean over the first measured call's documents."""

    tag, title, unit, higher_is_better = "embedding_cosine", "cosine vs fp16", "cosine", True


@metric
class RerankAgreement(CellMetric):
    """Rerank at int8/int4 against the fp16 cell of the same run: Spearman rank correlation of the documents'
    scores with the fp16 scores (first measured query)."""

    tag, title, unit, higher_is_better = "rerank_spearman", "rank correlation vs fp16", "rho", True


@metric
class ImageSimilarity(CellMetric):
    """Image generation (text to image, image to image, inpainting) and text to video at int8/int4 against the fp16 cell of the same run (same prompt and seed):
    100 × (1 − mean absolute pixel difference / 255) on block-mean thumbnails of the first measured output: 32×32
    of the image, 16×16 of up to 9 evenly spaced frames of the video."""

    tag, title, unit, higher_is_better = "image_similarity_pct", "pixel similarity vs fp16", "%", True



@metric
class AudioSNR(CellMetric):
    """Text to speech at int8/int4 against the fp16 cell of the same run (same text and speaker embedding):
    10 · log10(Σ ref² / Σ (x − ref)²) in dB over the first measured clip's kept waveform points (every 8th
    sample, the first 2000 of them: 1 s at 16 kHz; the same positions in both). Absent when they are identical."""

    tag, title, unit, higher_is_better = "audio_snr_db", "audio SNR vs fp16", "dB", True


@metric
class AudioCosine(CellMetric):
    """Text to speech at int8/int4 against the fp16 cell of the same run: cosine similarity Σ x·ref /
    (‖x‖ · ‖ref‖) of the first measured clip's kept waveform points with fp16's (1 = same waveform up to scale)."""

    tag, title, unit, higher_is_better = "audio_cosine", "audio cosine vs fp16", "cosine", True

def batch_values(batch: BatchRecord) -> dict[str, list[float]]:
    """All per-batch metric values of one batch."""
    out: dict[str, list[float]] = {}
    for tag, m in METRICS.items():
        if issubclass(m, BatchMetric):
            vals = m.compute_batch(batch)
            if vals:
                out[tag] = vals
    return out


def sample_values(sample: Sample) -> dict[str, list[float]]:
    """All per-sample metric values of one sample, in the registry's (dependency) order."""
    out: dict[str, list[float]] = {}
    for tag, m in METRICS.items():
        if issubclass(m, SampleMetric):
            vals = m.compute(sample)
        elif issubclass(m, DerivedMetric):
            vals = m.derive(out)
        else:
            continue
        if vals:
            out[tag] = vals
    return out


def genai_call_durations() -> frozenset[str]:
    """The openvino-genai readings of one call that are a duration (ms) or a rate per second, timed by its own
    clock: what a paused call's times cannot be taken out of (sliced pairing, harness/execute/paired.py)."""
    return frozenset(m.reading for m in METRICS.values() if issubclass(m, _Recorded) and m.genai
                     and (m.unit == "ms" or m.unit.endswith("/s")))


# ---------------------------------------------------------------- quality from logits (harness/analyze/logit_quality.py)
# The quality kind runs the model once forward over fixed windows of a text set (n_ctx tokens each, llama.cpp's
# `llama-perplexity` layout) and scores the second half of every window: the predictions at positions n_ctx/2 ..
# n_ctx-2 of the tokens after them. "Base" is the model's fp16 IR on the same token ids, its log-probabilities
# saved once per model, text set and window layout. Standard errors are llama.cpp's: of a mean over scored
# tokens, sqrt(var / (N - 1)).


@metric
class Perplexity(CellMetric):
    """exp(mean negative log-likelihood of the scored tokens): llama-perplexity's "Final estimate: PPL"."""

    tag, title, unit, higher_is_better = "ppl", "perplexity", "perplexity", False


@metric
class PerplexitySE(CellMetric):
    """Standard error of the perplexity: PPL · sqrt(var(NLL) / (N − 1)), llama-perplexity's "+/-"."""

    tag, title, unit, higher_is_better = "ppl_se", "perplexity ± se", "perplexity", False


@metric
class BasePerplexity(CellMetric):
    """The fp16 IR's perplexity on the same scored tokens (llama.cpp's PPL(base))."""

    tag, title, unit, higher_is_better = "ppl_base", "perplexity fp16", "perplexity", False


@metric
class LnPerplexityRatio(CellMetric):
    """Mean of ln p_base(token) − ln p(token) over the scored tokens: ln(PPL / PPL(base)), llama.cpp's
    "Mean ln(PPL(Q)/PPL(base))"; its standard error is `ln_ppl_ratio_se`."""

    tag, title, unit, higher_is_better = "ln_ppl_ratio", "ln(PPL/PPL fp16)", "nats", False


@metric
class LnPerplexityRatioSE(CellMetric):
    """Standard error of ln_ppl_ratio: sqrt(var / (N − 1)) of the per-token differences (paired, so it is far
    smaller than either perplexity's own error)."""

    tag, title, unit, higher_is_better = "ln_ppl_ratio_se", "ln(PPL ratio) ± se", "nats", False


@metric
class KLDMean(CellMetric):
    """Mean over scored tokens of KL(base ‖ model) = Σ_v p_base(v) · (ln p_base(v) − ln p(v)), in nats, over the
    whole vocabulary: llama.cpp's "Mean KLD"."""

    tag, title, unit, higher_is_better = "kld_mean", "KLD mean", "nats", False


@metric
class KLDSE(CellMetric):
    """Standard error of kld_mean: sqrt(var / (N − 1)) (llama.cpp's "±")."""

    tag, title, unit, higher_is_better = "kld_se", "KLD ± se", "nats", False


@metric
class KLDMedian(CellMetric):
    """Median of the per-token KL divergences."""

    tag, title, unit, higher_is_better = "kld_median", "KLD median", "nats", False


@metric
class KLDP99(CellMetric):
    """99th percentile of the per-token KL divergences (llama.cpp's "99.0%": the sorted value at index
    floor(0.99 · (N − 1)))."""

    tag, title, unit, higher_is_better = "kld_p99", "KLD p99", "nats", False


@metric
class KLDP999(CellMetric):
    """99.9th percentile of the per-token KL divergences (index floor(0.999 · (N − 1)) of the sorted values)."""

    tag, title, unit, higher_is_better = "kld_p999", "KLD p99.9", "nats", False


@metric
class KLDMax(CellMetric):
    """Largest per-token KL divergence."""

    tag, title, unit, higher_is_better = "kld_max", "KLD max", "nats", False


@metric
class Top1Agreement(CellMetric):
    """Share of scored tokens whose most likely next token is the base model's most likely one, in %
    (llama.cpp's "Same top p")."""

    tag, title, unit, higher_is_better = "top1_agree_pct", "same top-1", "%", True


@metric
class Top1AgreementSE(CellMetric):
    """Standard error of top1_agree_pct: 100 · sqrt(p (1 − p) / (N − 1))."""

    tag, title, unit, higher_is_better = "top1_agree_se", "same top-1 ± se", "%", False


@metric
class DeltaPAbsMean(CellMetric):
    """Mean over scored tokens of |p(t*) − p_base(t*)|, t* the base model's most likely token, in percentage
    points (llama.cpp reports the signed mean and the RMS of the same difference; the signed mean is `dp_mean`)."""

    tag, title, unit, higher_is_better = "dp_abs_mean", "mean |Δp|", "%", False


@metric
class DeltaPMean(CellMetric):
    """Mean over scored tokens of p(t*) − p_base(t*), t* the base model's most likely token, in percentage points:
    llama.cpp's "Mean Δp" (negative: the model is less sure of the base model's choice)."""

    tag, title, unit, higher_is_better = "dp_mean", "mean Δp", "%", True


@metric
class ScoredTokens(CellMetric):
    """Tokens scored by the quality pass: windows × (n_ctx − 1 − n_ctx/2)."""

    tag, title, unit, higher_is_better = "scored_tokens", "scored tokens", "tokens", True


@metric
class LogitsThroughput(SampleMetric):
    """Quality pass: tokens of one window / seconds of its one forward pass (the runtime alone: no tokenizer, no
    sampling, logits of every position returned)."""

    tag, title, unit, higher_is_better = "eval_tps", "forward tok/s", "tokens/s", True

    @classmethod
    def compute(cls, s: Sample) -> list[float]:
        n, e2e = s.readings.get("window_tokens"), _e2e_ms(s)
        return [n / (e2e / 1000.0)] if n and e2e > 0 else []
