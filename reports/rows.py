"""Flat per-cell rows shared by the renderers: one place that picks what a report shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.schema import CellResult, Summary


# Metrics every tabular report shows, in order.
@dataclass(frozen=True)
class Column:
    """One metric column of a scenario table: `stat` is "spread" (median ± sd) or a Summary field."""

    header: str
    metric: str
    stat: str = "spread"
    digits: int = 1

    def text(self, summaries: dict[str, Summary]) -> str:
        s = summaries.get(self.metric)
        if self.stat == "spread":
            return fmt_spread(s, self.digits)
        return "—" if s is None else fmt_value(getattr(s, self.stat), self.digits)


_GENERATE = (Column("TTFT ms", "ttft_ms", digits=2), Column("TPOT ms", "tpot_ms", digits=2),
             Column("tok/s", "output_tps"), Column("peak MiB", "peak_rss_mb", digits=0),
             Column("tok/step", "tokens_per_chunk", "mean", 2))
_DRAFTED = (*_GENERATE[:4], Column("accept %", "acceptance_rate_pct"), _GENERATE[4])
# The columns that fit each scenario kind, shared by every tabular renderer.
KIND_COLUMNS: dict[str, tuple[Column, ...]] = {
    "generate": _GENERATE,
    "optimum": _GENERATE,
    "pytorch": _GENERATE,
    "speech": (Column("RTF", "rtf", digits=3), Column("latency ms", "e2e_ms"), Column("TTFT ms", "ttft_ms", digits=2),
               Column("TPOT ms", "tpot_ms", digits=2), Column("encoder ms", "speech_encode_ms", digits=2),
               Column("tok/s", "output_tps"), Column("peak MiB", "peak_rss_mb", digits=0)),
    "serving": (Column("req/s", "request_rps", digits=2), Column("goodput req/s", "goodput_rps", digits=2),
                Column("out tok/s", "batch_output_tps"), Column("total tok/s", "batch_total_tps"),
                Column("TTFT p50 ms", "ttft_ms", "median"), Column("TTFT p90 ms", "ttft_ms", "p90"),
                Column("TTFT p99 ms", "ttft_ms", "p99"), Column("TPOT p50 ms", "tpot_ms", "median", 2),
                Column("TPOT p90 ms", "tpot_ms", "p90", 2), Column("TPOT p99 ms", "tpot_ms", "p99", 2),
                Column("errors %", "error_rate_pct", "max", 1), Column("busiest s tok/s", "peak_output_tps", "max"),
                Column("client CPU %", "client_cpu_pct", "max", 1)),
    "text2image": (Column("s/image", "image_s", digits=3), Column("step ms", "step_ms", digits=2),
                   Column("UNet ms", "unet_ms", digits=1), Column("VAE dec. ms", "vae_decoder_ms", digits=1),
                   Column("peak MiB", "peak_rss_mb", digits=0),
                   Column("pixel sim. vs fp16 %", "image_similarity_pct", "max", 1)),
    "vlm": (*_GENERATE[:2], Column("image emb. ms", "vlm_embeddings_ms", digits=2), *_GENERATE[2:4]),
    "speculative": _DRAFTED,
    "prompt_lookup": _DRAFTED,
    "continuous_batching": (
        Column("total tok/s", "batch_output_tps"), Column("req/s", "request_rps", digits=2),
        Column("TTFT p50 ms", "ttft_ms", "median"), Column("TTFT p90 ms", "ttft_ms", "p90"),
        Column("TPOT p50 ms", "tpot_ms", "median", 2), Column("TPOT p90 ms", "tpot_ms", "p90", 2),
        Column("e2e p90 ms", "e2e_ms", "p90"), Column("KV peak %", "kv_cache_peak_pct", "max"),
        Column("peak MiB", "peak_rss_mb", digits=0)),
    "tokenizer": (
        Column("OV encode tok/s", "ov_encode_tps", digits=0), Column("HF encode tok/s", "hf_encode_tps", digits=0),
        Column("OV decode tok/s", "ov_decode_tps", digits=0), Column("HF decode tok/s", "hf_decode_tps", digits=0),
        Column("encode mismatches", "tokenizer_encode_mismatches", "max", 0),
        Column("decode mismatches", "tokenizer_decode_mismatches", "max", 0)),
    "embeddings": (
        Column("docs/s", "documents_per_s"), Column("latency ms", "e2e_ms", digits=2),
        Column("latency p90 ms", "e2e_ms", "p90", 2), Column("input tok/s", "input_tps", digits=0),
        Column("peak MiB", "peak_rss_mb", digits=0), Column("cosine vs fp16", "embedding_cosine", "max", 4)),
    "rerank": (
        Column("docs/s", "documents_per_s"), Column("latency ms", "e2e_ms", digits=2),
        Column("latency p90 ms", "e2e_ms", "p90", 2), Column("input tok/s", "input_tps", digits=0),
        Column("peak MiB", "peak_rss_mb", digits=0), Column("rank corr. vs fp16", "rerank_spearman", "max", 3)),
}
KIND_TITLES = {"generate": "Plain generation", "speculative": "Speculative decoding",
               "prompt_lookup": "Prompt lookup decoding", "continuous_batching": "Continuous batching",
               "optimum": "Optimum Intel (OVModelForCausalLM.generate)",
               "pytorch": "PyTorch reference (original Hugging Face model, f32)", "vlm": "Vision-language (VLMPipeline)",
               "speech": "Speech to text (WhisperPipeline)", "serving": "Serving (OpenAI-compatible endpoint)", "text2image": "Text to image (Text2ImagePipeline)",
               "tokenizer": "OpenVINO Tokenizers vs Hugging Face", "embeddings": "Text embeddings",
               "rerank": "Text rerank"}
KIND_NOTES = {
    "serving": "Load on the suite's server (OVMS paths; `local` = harness serve on loopback): closed loop at "
    "`concurrency` or open loop at `rate`. TTFT = first content chunk; TPOT = (e2e − TTFT) / (usage tokens − 1); "
    "req/s (completed requests), out and total (in + out) tok/s over the whole load; goodput = completed requests "
    "meeting every per-request limit of the suite's `slo:` per second; client CPU = the generator's own CPU share.",
    "text2image": "One Text2ImagePipeline.generate call per iteration (fixed width, height, steps and seed); step ms = "
    "time per image / steps; UNet and VAE decoder times from openvino-genai's ImageGenerationPerfMetrics.",
    "speech": "One WhisperPipeline.generate call per iteration on a generated speech-like clip; RTF = latency / clip "
    "length; encoder = openvino-genai's encoder inference time.",
    "vlm": "One VLMPipeline.generate(prompt, images) call per iteration with generated images; TTFT includes image "
    "preprocessing and the vision encoder (image emb. = openvino-genai's prepare-embeddings time, part of TTFT).",
    "optimum": "The same IR, prompts and generation settings through Optimum Intel; timed from tokenization to the "
    "decoded text like GenAI's generate(str), tokens timed by a transformers streamer.",
    "embeddings": "One TextEmbeddingPipeline.embed_documents call of `batch_size` documents per iteration; latency "
    "is the call's e2e. Cosine vs fp16: mean over the first measured call's documents.",
    "rerank": "One TextRerankPipeline.rerank call (a query and `batch_size` documents) per iteration; latency is the "
    "call's e2e. Rank correlation vs fp16: Spearman rho of the documents' scores.",
    "tokenizer": "Every text of the fixed multilingual corpus (harness/tokenizer_corpus.py) encoded one by one, and "
    "the Hugging Face ids decoded, by each tokenizer; mismatches count texts whose ids (with and without special "
    "tokens) or decoded text differ.",
    "continuous_batching": "Each iteration submits `concurrency` requests at once to ContinuousBatchingPipeline; "
    "TTFT, TPOT and e2e are per request from the batch start (p50/p90 over all measured requests); total tok/s "
    "and req/s are per batch; KV peak = highest KV-cache usage after a step.",
}


def columns_for(kind: str) -> tuple[Column, ...]:
    return KIND_COLUMNS.get(kind, _GENERATE)


def by_kind(cells: list[CellResult]) -> dict[str, list[CellResult]]:
    """Cells grouped by scenario kind, in order of first appearance."""
    out: dict[str, list[CellResult]] = {}
    for c in cells:
        out.setdefault(c.spec.scenario.kind, []).append(c)
    return out


@dataclass
class CellRow:
    key: str
    model: str
    precision: str
    device: str
    scenario: str
    params: str
    status: str
    error: str | None
    input_tokens: float | None
    output_tokens: float | None
    summaries: dict[str, Summary]
    checks: dict[str, str] = field(default_factory=dict)


def _params(r: CellResult) -> str:
    spec = r.spec
    parts = [f"{k}={v}" for k, v in sorted(spec.scenario.params.items())]
    parts += [f"{k}={v}" for k, v in sorted(spec.properties.items())]
    g = spec.generation
    if g.mode != "greedy":
        parts.append(f"mode={g.mode}")
    if spec.environment:
        parts.append(f"env={spec.environment}")
    return " ".join(parts)


def cell_row(r: CellResult) -> CellRow:
    s = r.summaries
    return CellRow(
        key=r.key, model=r.spec.model.name, precision=r.spec.precision, device=r.spec.device,
        scenario=r.spec.scenario.name, params=_params(r), status=r.status, error=r.error,
        input_tokens=s["input_tokens"].median if "input_tokens" in s else None,
        output_tokens=s["output_tokens"].median if "output_tokens" in s else None,
        summaries=s, checks={c.name: c.status for c in r.checks},
    )


_MD_ESCAPES = str.maketrans({"|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " ", "`": "'"})
_CODE_ESCAPES = str.maketrans({"|": "\\|", "\n": " ", "\r": " ", "`": "'"})


def md_text(text: object) -> str:
    """User text (names, parameters, errors, check details) in Markdown: it cannot break a table row or
    pass HTML through."""
    return str(text).translate(_MD_ESCAPES)


def md_code(text: object) -> str:
    """User text (cell keys) as a `code span`; text with angle brackets as escaped plain text instead, since
    a code span shows entities literally and would keep raw HTML in the file."""
    text = str(text)
    if "<" in text or ">" in text:
        return md_text(text)
    return "`" + text.translate(_CODE_ESCAPES) + "`"


def fmt_value(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_spread(s: Summary | None, digits: int = 1) -> str:
    """'median ± sample sd' (sd omitted for a single value); '—' when not measured."""
    if s is None:
        return "—"
    if s.stdev is None or s.n < 2:
        return fmt_value(s.median, digits)
    return f"{s.median:.{digits}f} ± {s.stdev:.{digits}f}"
