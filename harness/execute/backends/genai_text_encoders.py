"""Text embeddings (TextEmbeddingPipeline) and rerank (TextRerankPipeline) from openvino-genai.

One call per iteration: `batch_size` documents embedded, or one query reranked against
`batch_size` documents. A call is a Sample (e2e = the call's latency; readings: documents and
their tokens). The first measured call's vectors or scores are kept for the accuracy comparison
with the fp16 cell, and recomputed untimed to check that a repeat gives the same result."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from harness.core.backend import CellModels
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend, pipeline_properties
from harness.execute.backends.genai_common import prompt_texts
from harness.kinds.text_encoders import EmbeddingsParams, RerankParams

POOLING = {"cls": "CLS", "mean": "MEAN", "last_token": "LAST_TOKEN"}
DIGITS = 6  # kept vectors and scores are rounded: enough for cosine and rank comparisons


def _embedding_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    cfg = ov_genai.TextEmbeddingPipeline.Config()
    p = EmbeddingsParams.of(cell)
    if p.pooling is not None:
        cfg.pooling_type = getattr(ov_genai.TextEmbeddingPipeline.PoolingType, POOLING[p.pooling])
    if p.normalize is not None:
        cfg.normalize = p.normalize
    return ov_genai.TextEmbeddingPipeline(str(models.target), cell.device, cfg,
                                          **pipeline_properties(cell, cache_dir=cache_dir))


def _rerank_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    cfg = ov_genai.TextRerankPipeline.Config()
    # every document's score is kept (for accuracy against fp16) unless the suite asks for fewer
    p = RerankParams.of(cell)
    cfg.top_n = p.top_n or p.batch_size
    return ov_genai.TextRerankPipeline(str(models.target), cell.device, cfg,
                                       **pipeline_properties(cell, cache_dir=cache_dir))


def _embed(pipe: Any, docs: list[str], query: str | None) -> list[list[float]]:
    return [list(v) for v in pipe.embed_documents(docs)]


def _rerank(pipe: Any, docs: list[str], query: str | None) -> list[list[float]]:
    # (document index, score) pairs, best first
    return [[float(i), float(s)] for i, s in pipe.rerank(query or "", docs)]


def _rounded(rows: list[list[float]]) -> list[list[float]]:
    return [[round(float(x), DIGITS) for x in row] for row in rows]


class EncoderSession:
    """`batch_size` documents per call (rerank: a query, then its documents); the first measured call's
    vectors or scores are kept for the comparison with fp16."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels, call: Any,
                 params: type[EmbeddingsParams] | type[RerankParams], with_query: bool) -> None:
        import openvino_genai as ov_genai

        self.pipe, self.cell, self.fn, self.with_query = pipe, cell, call, with_query
        self.tok = ov_genai.Tokenizer(str(models.target))
        self.per_call = params.of(cell).batch_size + (1 if with_query else 0)
        total = cell.warmup + cell.iterations
        self.texts = prompt_texts(cell, self.tok, self.per_call * (total if cell.prompts.vary_per_iteration else 1))
        self.kept: dict[int, Any] = {}

    def _batch(self, i: int) -> tuple[list[str], str | None, int]:
        first = (i * self.per_call) % len(self.texts) if self.cell.prompts.vary_per_iteration else 0
        chunk = [self.texts[(first + j) % len(self.texts)] for j in range(self.per_call)]
        return (chunk[1:], chunk[0], first) if self.with_query else (chunk, None, first)

    def _tokens(self, docs: list[str]) -> int:
        return sum(len(self.tok.encode(d, add_special_tokens=True).input_ids.data[0]) for d in docs)

    def call(self, iteration: int, warmup: bool) -> Sample:
        docs, query, first = self._batch(iteration)
        tokens = self._tokens(docs) + (self._tokens([query]) if query else 0)
        start = time.perf_counter_ns()
        out = self.fn(self.pipe, docs, query)
        end = time.perf_counter_ns()
        if iteration == self.cell.warmup:
            self.kept[first] = _rounded(out)
        return Sample(iteration=iteration, warmup=warmup, prompt_index=first, input_tokens=tokens, output_tokens=0,
                      start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                      readings={"documents": float(len(docs)), "tokens": float(tokens)})

    def repeat(self, iteration: int) -> CheckOutputs:
        docs, query, first = self._batch(iteration)
        return CheckOutputs(repeat_outputs={first: _rounded(self.fn(self.pipe, docs, query))})

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        return {}, CheckOutputs(first_outputs=self.kept)


EMBEDDINGS = Backend(build=_embedding_pipeline, start=partial(EncoderSession, call=_embed, params=EmbeddingsParams,
                                                                        with_query=False))
RERANK = Backend(build=_rerank_pipeline, start=partial(EncoderSession, call=_rerank, params=RerankParams,
                                                                  with_query=True))
