"""Text embeddings (TextEmbeddingPipeline) and rerank (TextRerankPipeline) from openvino-genai.

One call per iteration: `batch_size` documents embedded, or one query reranked against
`batch_size` documents. A call is a Sample (e2e = the call's latency; readings: documents and
their tokens). The first measured call's vectors or scores are kept for the accuracy comparison
with the fp16 cell, and recomputed untimed to check that a repeat gives the same result."""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from harness.backends import CellModels, Emit
from harness.backends.genai_llm import prompt_texts
from harness.backends.process_memory import peak_rss_mb, rss_mb
from harness.schema import CellSpec, Sample

POOLING = {"cls": "CLS", "mean": "MEAN", "last_token": "LAST_TOKEN"}
DIGITS = 6  # kept vectors and scores are rounded: enough for cosine and rank comparisons


def _embedding_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    cfg = ov_genai.TextEmbeddingPipeline.Config()
    p = cell.scenario.params
    if "pooling" in p:
        cfg.pooling_type = getattr(ov_genai.TextEmbeddingPipeline.PoolingType, POOLING[str(p["pooling"])])
    if "normalize" in p:
        cfg.normalize = bool(p["normalize"])
    props = dict(cell.properties)
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.TextEmbeddingPipeline(str(models.target), cell.device, cfg, **props)


def _rerank_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    cfg = ov_genai.TextRerankPipeline.Config()
    # every document's score is kept (for accuracy against fp16) unless the suite asks for fewer
    cfg.top_n = int(cell.scenario.params.get("top_n", cell.scenario.params.get("batch_size", 8)))
    props = dict(cell.properties)
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.TextRerankPipeline(str(models.target), cell.device, cfg, **props)


def _embed(pipe: Any, docs: list[str], query: str | None) -> list[list[float]]:
    return [list(v) for v in pipe.embed_documents(docs)]


def _rerank(pipe: Any, docs: list[str], query: str | None) -> list[list[float]]:
    # (document index, score) pairs, best first
    return [[float(i), float(s)] for i, s in pipe.rerank(query or "", docs)]


def _rounded(rows: list[list[float]]) -> list[list[float]]:
    return [[round(float(x), DIGITS) for x in row] for row in rows]


def _run(cell: CellSpec, models: CellModels, emit: Emit, build: Any, call: Any, kind: str) -> None:
    import openvino_genai as ov_genai

    rss_before = rss_mb()
    cell_values: dict[str, float] = {}
    compile_cache = models.workdir / "compile-cache" if cell.load_twice else None
    t0 = time.perf_counter()
    pipe = build(cell, models, compile_cache)
    cell_values["load_cold_ms"] = (time.perf_counter() - t0) * 1000
    cell_values["model_memory_mb"] = rss_mb() - rss_before
    if cell.load_twice:
        del pipe
        gc.collect()
        t0 = time.perf_counter()
        pipe = build(cell, models, compile_cache)
        cell_values["load_cached_ms"] = (time.perf_counter() - t0) * 1000
    emit({"event": "loaded", "cell_values": cell_values})

    tok = ov_genai.Tokenizer(str(models.target))
    bs = int(cell.scenario.params.get("batch_size", 8))
    per_call = bs + (1 if kind == "rerank" else 0)  # rerank: a query, then its documents
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    texts = prompt_texts(cell, tok, per_call * (total if vary else 1))

    def batch(i: int) -> tuple[list[str], str | None, int]:
        first = (i * per_call) % len(texts) if vary else 0
        chunk = [texts[(first + j) % len(texts)] for j in range(per_call)]
        return (chunk[1:], chunk[0], first) if kind == "rerank" else (chunk, None, first)

    def n_tokens(docs: list[str]) -> int:
        return sum(len(tok.encode(d, add_special_tokens=True).input_ids.data[0]) for d in docs)

    kept: dict[str, str] = {}
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        docs, query, first = batch(i)
        tokens = n_tokens(docs) + (n_tokens([query]) if query else 0)
        start = time.perf_counter_ns()
        out = call(pipe, docs, query)
        end = time.perf_counter_ns()
        if i == cell.warmup:
            kept = {f"{kind}:{first}": json.dumps(_rounded(out))}
        sample = Sample(iteration=i, warmup=i < cell.warmup, prompt_index=first, input_tokens=tokens, output_tokens=0,
                        start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                        readings={"documents": float(len(docs)), "tokens": float(tokens)})
        i += 1
        emit({"event": "sample", "sample": sample.model_dump(), "of": max(total, i + 1)})
    docs, query, first = batch(cell.warmup)
    kept[f"{kind}_repeat:{first}"] = json.dumps(_rounded(call(pipe, docs, query)))
    cell_values["peak_rss_mb"] = peak_rss_mb()
    emit({"event": "done", "cell_values": cell_values, "check_outputs": kept})


def run_embeddings(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Embed `batch_size` documents per call."""
    _run(cell, models, emit, _embedding_pipeline, _embed, "embeddings")


def run_rerank(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Rerank `batch_size` documents against one query per call."""
    _run(cell, models, emit, _rerank_pipeline, _rerank, "rerank")
