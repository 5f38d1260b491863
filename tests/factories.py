"""Hand-made specs, samples and runs for unit tests (no OpenVINO needed)."""

from __future__ import annotations

from harness.analyze.aggregate import cell_result
from harness.core.events import Done, Event, SampleEvent
from harness.core.schema import (
    CellSpec,
    CheckOutputs,
    GenerationSpec,
    HostInfo,
    ModelRef,
    PromptSpec,
    RunMetadata,
    RunResults,
    Sample,
    ScenarioSpec,
)


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
