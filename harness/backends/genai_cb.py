"""Continuous batching through openvino-genai's ContinuousBatchingPipeline (paged attention).

Each iteration submits `concurrency` requests at once and drives the scheduler step by step, so
every request's tokens are timed on the harness clock as the step that produced them returns:
a request is a Sample (TTFT, TPOT, e2e from the batch's start), the batch a BatchRecord
(total output tok/s, requests/s, KV-cache usage from the pipeline's own metrics)."""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Iterator
from typing import Any

from harness import validation
from harness.backends import CellModels, Emit
from harness.backends.genai_llm import generation_config, prompt_texts
from harness.backends.process_memory import peak_rss_mb, rss_mb
from harness.schema import BatchRecord, CellSpec, Sample


def scheduler_fields(cell: CellSpec) -> dict[str, Any]:
    """SchedulerConfig fields from the cell's scenario parameters (the rest keep openvino-genai's defaults)."""
    p = cell.scenario.params
    fields: dict[str, Any] = {}
    if "cache_size_gb" in p:
        fields["cache_size"] = int(p["cache_size_gb"])  # whole GB; 0 (the default) lets the cache grow as needed
    fields.update({name: bool(p[name]) for name in ("enable_prefix_caching", "dynamic_split_fuse") if name in p})
    fields.update({name: int(p[name]) for name in ("max_num_batched_tokens", "max_num_seqs", "num_kv_blocks")
                   if name in p})
    return fields


def scheduler_config(cell: CellSpec) -> Any:
    import openvino_genai as ov_genai

    sc = ov_genai.SchedulerConfig()
    for name, value in scheduler_fields(cell).items():
        setattr(sc, name, value)
    return sc


def pipeline_properties(cell: CellSpec) -> dict[str, Any]:
    """ContinuousBatchingPipeline is paged attention by construction: ATTENTION_BACKEND is not its property."""
    return {k: v for k, v in cell.properties.items() if k != "ATTENTION_BACKEND"}


def build_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    props = pipeline_properties(cell)
    if cache_dir is not None:
        props["CACHE_DIR"] = str(cache_dir)
    return ov_genai.ContinuousBatchingPipeline(str(models.target), scheduler_config(cell), cell.device, props)


def _cache_usage(pipe: Any) -> tuple[float, float | None]:
    m = pipe.get_metrics()
    size = getattr(m, "kv_cache_size_in_bytes", None)
    return float(m.cache_usage), (float(size) / 2**20 if size else None)


def run_batch(pipe: Any, tok: Any, prompts: list[str], cfg: Any, iteration: int, warmup: bool,
              first_prompt: int, request_ids: Iterator[int]) -> tuple[BatchRecord, list[Sample]]:
    """Submit every prompt at once, step the scheduler until all finish, time each request's tokens."""
    import openvino_genai as ov_genai

    running = ov_genai.GenerationStatus.RUNNING
    n = len(prompts)
    input_tokens = [len(tok.encode(p).input_ids.data[0]) for p in prompts]
    offsets: list[list[float]] = [[] for _ in range(n)]
    chunks: list[list[int]] = [[] for _ in range(n)]
    ids: list[list[int]] = [[] for _ in range(n)]
    end_ns: list[int | None] = [None] * n
    usage: list[float] = []
    kv_mb = None
    start = time.perf_counter_ns()
    handles = [pipe.add_request(next(request_ids), prompts[r], cfg) for r in range(n)]
    steps = 0
    while pipe.has_non_finished_requests():
        pipe.step()
        now = time.perf_counter_ns()
        steps += 1
        u, kv_mb = _cache_usage(pipe)
        usage.append(u)
        for r, h in enumerate(handles):
            if h.can_read():
                new = [int(t) for out in h.read().values() for t in out.generated_ids]
                if new:
                    offsets[r].append((now - start) / 1e6)
                    chunks[r].append(len(new))
                    ids[r].extend(new)
            if end_ns[r] is None and h.get_status() != running:
                end_ns[r] = now
    done = time.perf_counter_ns()
    samples = []
    for r in range(n):
        samples.append(Sample(
            iteration=iteration, warmup=warmup, request=r, prompt_index=first_prompt + r,
            input_tokens=input_tokens[r], output_tokens=len(ids[r]), start_ns=start, end_ns=end_ns[r] or done,
            chunk_offsets_ms=offsets[r], chunk_tokens=chunks[r], output_ids=ids[r],
            output_text=tok.decode(ids[r], skip_special_tokens=True),
        ))
    batch = BatchRecord(
        iteration=iteration, warmup=warmup, requests=n, start_ns=start, end_ns=max(s.end_ns for s in samples),
        output_tokens=sum(len(x) for x in ids), input_tokens=sum(input_tokens), steps=steps,
        cache_usage_max_pct=max(usage) if usage else None,
        cache_usage_mean_pct=sum(usage) / len(usage) if usage else None, kv_cache_size_mb=kv_mb,
    )
    return batch, samples


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load, warm up, measure batches of `concurrency` requests; emit samples, batches and cell figures."""
    rss_before = rss_mb()
    cell_values: dict[str, float] = {}
    compile_cache = models.workdir / "compile-cache" if cell.load_twice else None
    t0 = time.perf_counter()
    pipe = build_pipeline(cell, models, compile_cache)
    cell_values["load_cold_ms"] = (time.perf_counter() - t0) * 1000
    cell_values["model_memory_mb"] = rss_mb() - rss_before
    if cell.load_twice:
        del pipe
        gc.collect()
        t0 = time.perf_counter()
        pipe = build_pipeline(cell, models, compile_cache)
        cell_values["load_cached_ms"] = (time.perf_counter() - t0) * 1000
    emit({"event": "loaded", "cell_values": cell_values})

    concurrency = int(cell.scenario.params.get("concurrency", 1))
    cfg = generation_config(pipe, cell)
    tok = pipe.get_tokenizer()
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    # Distinct prompts for every request (and every iteration unless told otherwise): identical
    # prompts in one batch would share their prefix blocks when prefix caching is on.
    n_prompts = concurrency * (total if vary else 1)
    prompts = prompt_texts(cell, tok, n_prompts)
    request_ids = itertools.count()  # unique over the pipeline's life
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        first = (i * concurrency) % len(prompts) if vary else 0
        batch_prompts = [prompts[(first + r) % len(prompts)] for r in range(concurrency)]
        batch, samples = run_batch(pipe, tok, batch_prompts, cfg, i, i < cell.warmup, first, request_ids)
        i += 1
        for s in samples:
            emit({"event": "sample", "sample": s.model_dump(), "of": max(total, i + 1)})
        emit({"event": "batch", "batch": batch.model_dump()})

    check_outputs: dict[str, str] = {}
    if cell.generation.mode in ("greedy", "sampling"):
        # Untimed repeat of the first measured batch: its outputs must come back identical.
        first = (cell.warmup * concurrency) % len(prompts) if vary else 0
        _, again = run_batch(pipe, tok, [prompts[(first + r) % len(prompts)] for r in range(concurrency)], cfg,
                             -1, True, first, request_ids)
        check_outputs.update({f"repeat:{first + s.request}": s.output_text for s in again})
    cell_values["peak_rss_mb"] = peak_rss_mb()
    if validation.wanted(cell):
        del pipe
        gc.collect()
        check_outputs.update(validation_outputs(cell, models, prompts, request_ids))
    emit({"event": "done", "cell_values": cell_values, "check_outputs": check_outputs})


def validation_outputs(cell: CellSpec, models: CellModels, prompts: list[str],
                       request_ids: Iterator[int]) -> dict[str, str]:
    """The f32 validation pass (harness/validation.py): its prompts in one batch of a fresh pipeline."""
    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        pipe = build_pipeline(vcell, models, None)
        _, samples = run_batch(pipe, pipe.get_tokenizer(), [prompts[p] for p in indices],
                               generation_config(pipe, vcell), -1, True, 0, request_ids)
        return [s.output_ids for s in samples]

    return validation.outputs(cell, len(prompts), decode)
