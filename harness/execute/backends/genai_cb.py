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

from harness.core.backend import CellModels
from harness.core.schema import BatchRecord, CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend, BatchCall, pipeline_properties
from harness.execute.backends.genai_common import generation_config, generation_fields, prompt_texts
from harness.kinds.continuous_batching import ContinuousBatchingParams
from harness.plan import validation


def scheduler_fields(cell: CellSpec) -> dict[str, Any]:
    """SchedulerConfig fields from the cell's scenario parameters (the rest keep openvino-genai's defaults)."""
    p = ContinuousBatchingParams.of(cell)
    given = {name: getattr(p, name) for name in ("enable_prefix_caching", "dynamic_split_fuse", "max_num_batched_tokens",
                                                 "max_num_seqs", "num_kv_blocks") if getattr(p, name) is not None}
    if p.cache_size_gb is not None:
        given["cache_size"] = p.cache_size_gb  # whole GB; unset, the cache grows as needed
    return given


def bare_reference_fields(cell: CellSpec) -> dict[str, Any]:
    """The bare loop's settings for a continuous-batching cell: its pipeline properties, scheduler and batch."""
    return {"pipeline": "continuous_batching", "iterations": cell.iterations, "generation": generation_fields(cell),
            "properties": pipeline_properties(cell), "scheduler": scheduler_fields(cell),
            "concurrency": ContinuousBatchingParams.of(cell).concurrency}


def scheduler_config(cell: CellSpec) -> Any:
    import openvino_genai as ov_genai

    sc = ov_genai.SchedulerConfig()
    for name, value in scheduler_fields(cell).items():
        setattr(sc, name, value)
    return sc


def build_pipeline(cell: CellSpec, models: CellModels, cache_dir: Any) -> Any:
    import openvino_genai as ov_genai

    return ov_genai.ContinuousBatchingPipeline(str(models.target), scheduler_config(cell), cell.device,
                                               pipeline_properties(cell, cache_dir=cache_dir))


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


class BatchSession:
    """Each iteration one batch of `concurrency` requests, every request with its own prompt: identical
    prompts in one batch would share their prefix blocks when prefix caching is on."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        self.pipe, self.cell, self.models = pipe, cell, models
        self.concurrency = ContinuousBatchingParams.of(cell).concurrency
        self.cfg = generation_config(pipe, cell)
        self.tok = pipe.get_tokenizer()
        total = cell.warmup + cell.iterations
        self.prompts = prompt_texts(cell, self.tok, self.concurrency * (total if cell.prompts.vary_per_iteration else 1))
        self.request_ids = itertools.count()  # unique over the pipeline's life

    def _batch(self, iteration: int, label: int, warmup: bool) -> tuple[BatchRecord, list[Sample]]:
        first = (iteration * self.concurrency) % len(self.prompts) if self.cell.prompts.vary_per_iteration else 0
        batch_prompts = [self.prompts[(first + r) % len(self.prompts)] for r in range(self.concurrency)]
        return run_batch(self.pipe, self.tok, batch_prompts, self.cfg, label, warmup, first, self.request_ids)

    def call(self, iteration: int, warmup: bool) -> BatchCall:
        batch, samples = self._batch(iteration, iteration, warmup)
        return BatchCall(samples=samples, batch=batch)

    def repeat(self, iteration: int) -> CheckOutputs:
        _, again = self._batch(iteration, -1, True)
        return CheckOutputs(repeat_texts={s.prompt_index: s.output_text for s in again})

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        if not validation.wanted(self.cell):
            return {}, CheckOutputs()
        self.pipe = self.tok = None  # the f32 validation pass loads the model again: free this one first
        gc.collect()
        return {}, validation_outputs(self.cell, self.models, self.prompts, self.request_ids)


BACKEND = Backend(build=build_pipeline, start=BatchSession)


def validation_outputs(cell: CellSpec, models: CellModels, prompts: list[str],
                       request_ids: Iterator[int]) -> CheckOutputs:
    """The f32 validation pass (harness/plan/validation.py): its prompts in one batch of a fresh pipeline."""
    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        pipe = build_pipeline(vcell, models, None)
        _, samples = run_batch(pipe, pipe.get_tokenizer(), [prompts[p] for p in indices],
                               generation_config(pipe, vcell), -1, True, 0, request_ids)
        return [s.output_ids for s in samples]

    return validation.outputs(cell, len(prompts), decode)
