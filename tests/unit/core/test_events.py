"""Typed worker events (harness/core/events.py): the union, registry-keyed cell values, unreadable lines, and
what the runner and the cell record make of a line they cannot read."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest
from pydantic import ValidationError

from harness.analyze.aggregate import cell_result
from harness.core.events import (
    BatchEvent,
    Done,
    Error,
    Event,
    Loaded,
    Log,
    Phase,
    Prepared,
    Reference,
    ReferenceError,
    RunnerValues,
    Runtime,
    SampleEvent,
    ServerReport,
    SloSearchReport,
    TransformersDone,
    Unreadable,
    parse_event,
)
from harness.core.schema import (
    BatchRecord,
    ReferenceRecord,
    ServerInfo,
    SloProbe,
    SloSearch,
    TokenDisagreement,
    TransformersReference,
)
from harness.execute import worker_process
from harness.execute.worker import WorkerTask, _emitter
from tests import factories

EVERY_EVENT: list[Event] = [
    Log(message="exporting"), Phase(phase="run"),
    Prepared(model_dir="/m", model_size_mb=12.5, cache_hit=True, export_s=3.0, draft_dir="/d", source_dir="/hf"),
    Runtime(versions={"openvino": "2025.1", "openvino-tokenizers": None}),
    Loaded(cell_values={"load_cold_ms": 12.0}), SampleEvent(sample=factories.sample(0), of=3),
    BatchEvent(batch=BatchRecord(iteration=0, warmup=False, requests=2, start_ns=0, end_ns=1, output_tokens=4,
                                 input_tokens=8, steps=2)),
    Done(cell_values={"peak_rss_mb": 100.0}, check_outputs={"repeat:0": "abc"}),
    RunnerValues(cell_values={"runner_cpu_pct": 3.0}),
    ServerReport(server=ServerInfo(endpoint="http://h:8000", served_model="m", tokenizer="usage")),
    SloSearchReport(search=SloSearch(limits={"ttft": 500.0}, target_pct=90.0, probes=[
        SloProbe(rate_rps=2.0, requests=10, good=10, attainment_pct=100.0, passed=True)],
        max_rate_rps=2.0, first_failing_rps=None, chosen_probe=0)),
    Reference(records=[ReferenceRecord(process=0, iteration=0, warmup=False, ttft_ms=1.0, tpot_ms=2.0, e2e_ms=9.0,
                                       output_tokens=4)]),
    ReferenceError(error="no bare reference"),
    TransformersDone(reference=TransformersReference(source="/hf", tokens={0: 4}, seconds=3.0, disagreements={
        0: [TokenDisagreement(position=1, openvino=4, transformers=6, gap=7.5)]})),
    Error(error="RuntimeError: boom", traceback="Traceback ..."),
    Unreadable(kind="sample", reason="sample.iteration: not an integer", line='{"event": "sample"'),
]


def test_every_event_round_trips_through_its_json_line() -> None:
    assert {type(e) for e in EVERY_EVENT} == set(get_args(get_args(Event)[0]))
    for e in EVERY_EVENT:
        assert parse_event(e.model_dump_json()) == e


def test_the_worker_writes_one_line_per_event_and_the_runner_reads_them_back(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    emit = _emitter(path)
    for e in EVERY_EVENT:
        emit(e)
    assert path.read_text().count("\n") == len(EVERY_EVENT)
    events, offset = worker_process.read_new(path, 0)
    assert events == EVERY_EVENT and offset == path.stat().st_size


def test_cell_values_are_keyed_by_the_metric_registry() -> None:
    with pytest.raises(ValidationError, match="unknown: load_time"):
        Loaded(cell_values={"load_time": 1.0})
    with pytest.raises(ValidationError, match="unknown: peak_memory"):
        Done(cell_values={"peak_memory": 1.0, "peak_rss_mb": 2.0})
    with pytest.raises(ValidationError, match="unknown: runner_cpu"):
        RunnerValues(cell_values={"runner_cpu": 1.0})
    # a worker of another harness version may still write one: that line is unreadable, not a new figure
    bad = parse_event('{"event": "done", "cell_values": {"peak_memory": 1.0}}')
    assert isinstance(bad, Unreadable) and bad.kind == "done" and "peak_memory" in bad.reason


def test_unreadable_lines_say_what_they_claimed_and_why() -> None:
    bad = parse_event('{"event": "sample", "sample": {"iteration": "x"}}')
    assert isinstance(bad, Unreadable) and bad.kind == "sample" and "iteration" in bad.reason
    assert bad.line == '{"event": "sample", "sample": {"iteration": "x"}}'
    garbled = parse_event(b"not json")
    assert isinstance(garbled, Unreadable) and garbled.kind is None and garbled.line == "not json"
    unknown = parse_event('{"event": "telemetry"}')
    assert isinstance(unknown, Unreadable) and unknown.kind == "telemetry"
    assert parse_event({"event": "log", "message": "hi"}) == Log(message="hi")


def test_a_partial_last_line_waits_until_the_worker_is_over(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    whole = Log(message="a").model_dump_json() + "\n"
    path.write_text(whole + '{"event": "log", "mess')
    events, offset = worker_process.read_new(path, 0)
    assert events == [Log(message="a")] and offset == len(whole)
    events, offset = worker_process.read_new(path, offset, final=True)  # the worker ended mid-write: a torn line
    assert len(events) == 1 and isinstance(events[0], Unreadable) and offset == path.stat().st_size


def test_unreadable_lines_are_noted_and_only_lost_measurements_fail_the_cell() -> None:
    s = factories.spec()
    samples: list[Event] = [SampleEvent(sample=factories.sample(i)) for i in range(3)]
    harmless = [parse_event('{"event": "telemetry", "x": 1}'), parse_event("garbage")]
    r = cell_result(s, [*samples, *harmless, Done(cell_values={"peak_rss_mb": 5.0})], "ok", None, "t0", "t1", 1.0)
    assert r.status == "ok" and r.error is None and len(r.samples) == 3 and r.cell_values["peak_rss_mb"] == 5.0
    assert any(n.startswith("2 record(s) could not be read") and "telemetry" in n for n in r.notes)

    lost = parse_event('{"event": "done", "cell_values": {"peak_memory": 1.0}}')
    r = cell_result(s, [*samples, lost], "ok", None, "t0", "t1", 1.0)
    assert r.status == "failed" and "done record unreadable" in (r.error or "")
    assert len(r.samples) == 3 and r.summaries["ttft_ms"].n == 3  # what was measured stays


def test_a_torn_or_garbled_worker_line_keeps_the_readable_samples_and_says_so(tmp_path: Path) -> None:
    """Through the runner's own worker handling: a stand-in interpreter writes the events file."""
    lines = [SampleEvent(sample=factories.sample(0)).model_dump_json(),
             '{"event": "sample", "sample": {"iterat\x00\x17',  # garbled mid-file
             SampleEvent(sample=factories.sample(1)).model_dump_json(),
             Done(cell_values={"peak_rss_mb": 7.0}).model_dump_json()]
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(lines) + '\n{"event": "log", "mess')  # and torn at the end
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\ncat "{source}" > "$4"\n')  # called as: python -m harness.execute.worker TASK EVENTS
    python.chmod(0o755)
    cell = factories.spec()
    task = WorkerTask(mode="measure", cell=cell, cache_dir=str(tmp_path), workdir=str(tmp_path), model_dir="m")
    seen: list[Event] = []

    class Seen(worker_process.ProgressSink):
        def cell_event(self, cell, event):
            seen.append(event)

    env = SimpleNamespace(python=str(python), worker_env=lambda: None)
    events, status, error = worker_process.run_worker(task, tmp_path, 60, cell, Seen(), env)  # type: ignore[arg-type]

    r = cell_result(cell, events, status, error, "t0", "t1", 1.0)
    assert r.status == "ok" and r.error is None
    assert [s.iteration for s in r.samples] == [0, 1] and r.summaries["ttft_ms"].n == 2
    assert r.cell_values["peak_rss_mb"] == 7.0
    [note] = [n for n in r.notes if "could not be read" in n]
    assert note.startswith("2 record(s)") and "iterat" in note
    assert sum(isinstance(e, Unreadable) for e in seen) >= 1  # progress saw the garbled line as it came


def test_a_sample_with_an_undeclared_reading_is_refused():
    from harness.core.events import SampleEvent

    s = factories.sample(0).model_copy(update={"readings": {"tokens": 3.0, "mystery": 1.0}})
    with pytest.raises(ValidationError, match="unknown: mystery"):
        SampleEvent(sample=s)
    assert SampleEvent(sample=s.model_copy(update={"readings": {"tokens": 3.0}})).sample.readings == {"tokens": 3.0}
