"""Text embeddings (TextEmbeddingPipeline) and rerank (TextRerankPipeline): `batch_size` documents per call."""

from __future__ import annotations

import math
import statistics
from typing import Any, Literal

from pydantic import Field

from harness.core.metrics import (
    DocumentThroughput,
    E2ELatency,
    EmbeddingCosine,
    EncoderTokenThroughput,
    PeakRSS,
    RerankAgreement,
)
from harness.kinds.base import DEVICE_KNOBS, Column, CompareOutputs, KindSpec, Params, ReportTable


class EmbeddingsParams(Params):
    keyed = ("batch_size",)
    batch_size: int = Field(8, gt=0, description="documents per call")
    pooling: Literal["cls", "mean", "last_token"] | None = None  # None: the pipeline's default
    normalize: bool | None = None


class RerankParams(Params):
    keyed = ("batch_size",)
    batch_size: int = Field(8, gt=0, description="documents per call, with one query")
    top_n: int | None = Field(None, gt=0, description="scores returned (default: batch_size)")


def cosine(a: list[float], b: list[float]) -> float:
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb) if na and nb else 0.0


def compare_embeddings(a: Any, b: Any) -> tuple[dict[str, float], str]:
    """Mean cosine between the two cells' vectors of the same documents."""
    cos = [cosine(x, y) for x, y in zip(a, b, strict=True)]
    return {EmbeddingCosine.tag: statistics.fmean(cos)}, f"{len(cos)} documents, cosine min {min(cos):.4f}"


def compare_rerank(a: Any, b: Any) -> tuple[dict[str, float], str] | None:
    """Spearman rho of the scores of the documents both cells ranked."""
    from scipy.stats import spearmanr

    sa, sb = {int(i): s for i, s in a}, {int(i): s for i, s in b}
    docs = sorted(set(sa) & set(sb))
    if len(docs) < 2:
        return None
    rho = float(spearmanr([sa[d] for d in docs], [sb[d] for d in docs]).statistic)
    if math.isnan(rho):
        return {}, "scores tied, rank correlation undefined"
    top_same = a[0][0] == b[0][0]
    return {RerankAgreement.tag: rho}, f"{len(docs)} documents, top document {'the same' if top_same else 'different'}"


_COLUMNS = (Column("docs/s", DocumentThroughput.tag), Column("latency ms", E2ELatency.tag, digits=2),
            Column("latency p90 ms", E2ELatency.tag, "p90", 2), Column("input tok/s", EncoderTokenThroughput.tag, digits=0),
            Column("peak MiB", PeakRSS.tag, digits=0))
_HEADLINE = (Column("docs/s", DocumentThroughput.tag), Column("ms", E2ELatency.tag, digits=2))
_SPEED = (Column("docs/s", DocumentThroughput.tag, "median"), Column("latency ms", E2ELatency.tag, "median", 2))



def _encoder_kind(name: str, params: type[Params], compare: CompareOutputs, title: str, accuracy: Column,
                  note: str) -> KindSpec:
    """A text-encoder kind: documents per call, no text, accuracy on the first call's kept outputs."""
    return KindSpec(
        name=name, params=params, backend=f"harness.execute.backends.genai_text_encoders:{name.upper()}", generates_text=False,
        reference="same_kind", compare_outputs=compare, tune_space=DEVICE_KNOBS,
        report=ReportTable(title=title, columns=(*_COLUMNS, accuracy), headline=_HEADLINE, speed=_SPEED,
                           speedup_metric=DocumentThroughput.tag, accuracy=(accuracy,), note=note))


EMBEDDINGS = _encoder_kind(
    "embeddings", EmbeddingsParams, compare_embeddings, "Text embeddings",
    Column("cosine vs fp16", EmbeddingCosine.tag, "max", 4),
    "One TextEmbeddingPipeline.embed_documents call of `batch_size` documents per iteration; latency is the call's "
    "e2e. Cosine vs fp16: mean over the first measured call's documents.")
RERANK = _encoder_kind(
    "rerank", RerankParams, compare_rerank, "Text rerank", Column("rank corr. vs fp16", RerankAgreement.tag, "max", 3),
    "One TextRerankPipeline.rerank call (a query and `batch_size` documents) per iteration; latency is the call's "
    "e2e. Rank correlation vs fp16: Spearman rho of the documents' scores.")
