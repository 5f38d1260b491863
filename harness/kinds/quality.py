"""Quality from logits: perplexity and KL divergence against the model's fp16 IR, llama-perplexity's way.

One call runs one window of `context` tokens of the text set forward through the runtime itself (an OpenVINO
compiled model, or llama.cpp), not a generation pipeline; the second half of each window is scored against the fp16
IR's log-probabilities on the same token ids, saved once per model, text set and window layout in the cache."""

from __future__ import annotations

from pydantic import Field

from harness.core.metrics import (
    KLDP999,
    KLDSE,
    KLDMean,
    LogitsThroughput,
    ModelSizeOnDisk,
    Perplexity,
    PerplexitySE,
    Top1Agreement,
)
from harness.kinds.base import MAX_PROMPT_TOKENS, Column, KindSpec, Params, ReportTable


class QualityParams(Params):
    keyed = ("text", "context", "tokens")
    text: str = Field("python-docs", min_length=1, description="a text set (python-docs, stdlib-heldout) or a text "
                      "file's path, relative to the suite file")
    context: int = Field(512, ge=8, le=131072, description="tokens per window (llama-perplexity's -c)")
    tokens: int = Field(16384, ge=8, le=MAX_PROMPT_TOKENS, description="tokens run forward: this many // context "
                        "windows, fewer when the text is shorter")

    def outputs_text(self) -> bool:
        return False

    def window_tokens(self) -> int | None:
        return self.context

    def windows(self) -> int:
        return max(1, self.tokens // self.context)


KIND = KindSpec(
    name="quality", params=QualityParams, backend="harness.execute.backends.logits:OPENVINO",
    peers=(("llama.cpp", "harness.execute.backends.logits:LLAMA_CPP"),),
    generates_text=False, reference="none", logits_baseline=True,
    cell_rules="harness.plan.quality_cells:quality_cell_rules",
    resolve_files="harness.plan.quality_cells:resolve_text",
    report=ReportTable(
        title="Quality from logits (perplexity, KL divergence vs fp16)",
        columns=(Column("PPL", Perplexity.tag, "max", 3), Column("± se", PerplexitySE.tag, "max", 3),
                 Column("KLD mean", KLDMean.tag, "max", 5), Column("± se", KLDSE.tag, "max", 5),
                 Column("KLD p99.9", KLDP999.tag, "max", 4), Column("same top-1 %", Top1Agreement.tag, "max", 2),
                 Column("weights MiB", ModelSizeOnDisk.tag, "max", 1),
                 Column("forward tok/s", LogitsThroughput.tag, digits=0)),
        headline=(Column("KLD mean", KLDMean.tag, "max", 5), Column("PPL", Perplexity.tag, "max", 3)),
        speed=(Column("forward tok/s", LogitsThroughput.tag, "median", 0),), speedup_metric=LogitsThroughput.tag,
        accuracy=(Column("KLD mean", KLDMean.tag, "max", 5), Column("same top-1 %", Top1Agreement.tag, "max", 2)),
        note="Windows of `context` tokens of the text set, run forward once each; the second half of every window "
        "scored (llama-perplexity's layout). KLD, same top-1 and Δp against the model's fp16 IR on the same token "
        "ids at f32 inference precision (docs/quality.md). ± is the standard error over scored tokens."))
