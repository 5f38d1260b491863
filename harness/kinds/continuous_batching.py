"""Continuous batching: `concurrency` requests at once to ContinuousBatchingPipeline."""

from __future__ import annotations

from pydantic import Field

from harness.core.metrics import (
    TPOT,
    TTFT,
    BatchOutputThroughput,
    E2ELatency,
    KVCachePeakUsage,
    PeakRSS,
    RequestThroughput,
)
from harness.kinds.base import LLM_PROPERTY_KNOBS, Column, KindSpec, Knob, Params, ReportTable
from harness.kinds.text import ACCURACY


class ContinuousBatchingParams(Params):
    keyed = ("concurrency",)
    concurrency: int = Field(1, gt=0, description="requests submitted together per iteration")
    # SchedulerConfig fields; None leaves openvino-genai's default
    cache_size_gb: int | None = Field(None, gt=0)
    num_kv_blocks: int | None = Field(None, gt=0)
    enable_prefix_caching: bool | None = None
    max_num_batched_tokens: int | None = Field(None, gt=0)
    dynamic_split_fuse: bool | None = None
    max_num_seqs: int | None = Field(None, gt=0)

    def requests_per_call(self) -> int:
        return self.concurrency


KIND = KindSpec(
    name="continuous_batching", params=ContinuousBatchingParams, backend="harness.execute.backends.genai_cb:BACKEND",
    bare_reference="harness.execute.backends.genai_cb:bare_reference_fields",
    same_as_greedy=True, throughput_metric=BatchOutputThroughput.tag,
    # the scheduler's budget per step and how a long prompt's prefill shares steps with decoding
    tune_space=(*LLM_PROPERTY_KNOBS, Knob("params.max_num_batched_tokens", (None, 64, 128, 256, 512, 1024, 2048)),
                Knob("params.max_num_seqs", (None, 2, 4, 8, 16, 64, 256)),
                Knob("params.dynamic_split_fuse", (None, True, False)),
                Knob("params.cache_size_gb", (None, 1, 2, 4))),
    report=ReportTable(
        title="Continuous batching",
        columns=(Column("total tok/s", BatchOutputThroughput.tag), Column("req/s", RequestThroughput.tag, digits=2),
                 Column("TTFT p50 ms", TTFT.tag, "median"), Column("TTFT p90 ms", TTFT.tag, "p90"),
                 Column("TPOT p50 ms", TPOT.tag, "median", 2), Column("TPOT p90 ms", TPOT.tag, "p90", 2),
                 Column("e2e p90 ms", E2ELatency.tag, "p90"), Column("KV peak %", KVCachePeakUsage.tag, "max"),
                 Column("peak MiB", PeakRSS.tag, digits=0)),
        headline=(Column("total tok/s", BatchOutputThroughput.tag), Column("ms TTFT p90", TTFT.tag, "p90")),
        note="Each iteration submits `concurrency` requests at once to ContinuousBatchingPipeline; TTFT, TPOT and "
        "e2e are per request from the batch start (p50/p90 over all measured requests); total tok/s and req/s are "
        "per batch; KV peak = highest KV-cache usage after a step.",
        speed=(Column("TTFT p90 ms", TTFT.tag, "p90"), Column("TPOT ms", TPOT.tag, "median", 2),
               Column("total tok/s", BatchOutputThroughput.tag, "median")),
        speedup_metric=BatchOutputThroughput.tag, accuracy=ACCURACY))
