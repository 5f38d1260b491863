"""Hand-made specs, samples and runs for unit tests (no OpenVINO needed)."""

from __future__ import annotations

from harness.analyze.aggregate import cell_result
from harness.core.events import BatchEvent, Done, Event, SampleEvent
from harness.core.schema import (
    BatchRecord,
    CellSpec,
    CheckOutputs,
    GenerationSpec,
    HostInfo,
    LoadTimeline,
    MetricsScrape,
    ModelRef,
    PromptSpec,
    RunMetadata,
    RunResults,
    Sample,
    ScenarioSpec,
)

S = 1_000_000_000  # ns per second


def spec(kind: str = "generate", precision: str = "fp16", key: str | None = None, **gen) -> CellSpec:
    params = {"num_assistant_tokens": 3} if kind != "generate" else {}
    s = CellSpec(key="", model=ModelRef(name="m", source="synthetic:tiny", draft="synthetic:tiny-draft"),
                 precision=precision, device="CPU", scenario=ScenarioSpec(name=kind, kind=kind, params=params),
                 generation=GenerationSpec(max_new_tokens=4, **gen), prompts=PromptSpec(input_tokens=8))
    s.key = key or f"m/{precision}/CPU/{kind}/in8-out4"
    return s


def sample(i: int, warmup: bool = False, text: str = "abc", chunks=(10.0, 12.0, 14.0, 16.0), tokens=None,
           e2e_ms: float = 17.0, prompt_index: int | None = None) -> Sample:
    start = 1_000_000_000
    return Sample(iteration=i, warmup=warmup, prompt_index=i if prompt_index is None else prompt_index,
                  input_tokens=8, output_tokens=sum(tokens) if tokens else len(chunks), start_ns=start,
                  end_ns=start + int(e2e_ms * 1e6), chunk_offsets_ms=list(chunks),
                  chunk_tokens=list(tokens) if tokens else [1] * len(chunks),
                  genai={"ttft_ms": 9.5, "tpot_ms": 2.0}, output_text=text)


def result(s: CellSpec, samples: list[Sample], status: str = "ok", error: str | None = None,
           check_outputs: CheckOutputs | None = None):
    events: list[Event] = [SampleEvent(sample=x) for x in samples]
    events.append(Done(cell_values={"peak_rss_mb": 500.0, "load_cold_ms": 100.0},
                       check_outputs=check_outputs or CheckOutputs()))
    return cell_result(s, events, status, error, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0)


def run(cells) -> RunResults:
    meta = RunMetadata(run_id="r1", suite_name="t", suite_file=None, suite_sha256=None,
                       started_at="2026-01-01T00:00:00",
                       host=HostInfo(hostname="h", os="Linux", python="3.11", cpu_model="cpu", cpu_flags=["avx2"],
                                     physical_cores=1, logical_cores=2, memory_total_mb=1024.0),
                       versions={"openvino": "x"}, harness_commit=None, devices=[])
    return RunResults(metadata=meta, cells=cells)


def serving_cell(requests: int = 1000, rate: float = 10.0, slow_after_s: float = 70.0, key: str = "m/fp16/CPU/load",
                 window_s: float = 10.0):
    """A constructed open-loop load through the aggregate step: `requests` at `rate`/s, 32 output tokens each
    (TTFT 50 ms, 10 ms a token), everything twice as slow from `slow_after_s`; /metrics scraped every second."""
    cell = spec(key=key)
    cell.scenario = ScenarioSpec(name="load", kind="serving", params={"api": "chat", "rate": rate,
                                                                      "window_s": window_s})
    t0 = 5 * S
    samples = []
    for i in range(requests):
        at = i / rate
        f = 2.0 if at >= slow_after_s else 1.0
        ttft, tok = 0.05 * f, 0.01 * f
        offsets = [1000 * (ttft + k * tok) for k in range(32)]
        start = t0 + round(at * S)
        samples.append(Sample(iteration=i, warmup=False, request=i, prompt_index=i, input_tokens=64, output_tokens=32,
                              start_ns=start, end_ns=start + round((offsets[-1] + 1) * 1e6),
                              chunk_offsets_ms=offsets, chunk_tokens=[], scheduled_ns=start - 1_000_000))
    end = samples[-1].end_ns
    batch = BatchRecord(iteration=0, warmup=False, requests=requests, start_ns=t0, end_ns=end, output_tokens=32 * requests,
                        input_tokens=64 * requests, steps=0)
    scrapes = [MetricsScrape(t_ns=t0 + k * S, values={'reqs_total{name="m"}': float(k * rate),
                                                      'running{name="m"}': float(k % 4)})
               for k in range(int((end - t0) / S) + 2)]
    timeline = LoadTimeline(interval_s=1, scrapes=scrapes, types={"reqs": "counter", "running": "gauge"},
                            scraper_cpu_s=0.05, failed_start_ns=[t0 + 50 * S], failed_end_ns=[t0 + 51 * S])
    events = [*(SampleEvent(sample=s) for s in samples), BatchEvent(batch=batch),
              Done(cell_values={}, check_outputs=CheckOutputs(load_timeline=timeline))]
    return cell_result(cell, events, "ok", None, "2026-01-01T00:00:00", "2026-01-01T00:02:00", 120.0)
