"""The fidelity check: harness readings against the bare reference loop (hand-built records, a fake
runner, and one real run on the tiny model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.analyze import fidelity
from harness.analyze.aggregate import cell_result
from harness.core.events import (
    BatchEvent,
    Done,
    Event,
    Prepared,
    Reference,
    ReferenceError,
    SampleEvent,
    parse_event,
)
from harness.core.schema import BatchRecord, PromptSpec, ReferenceRecord
from harness.core.stats import geomean_ratio_ci
from harness.execute import bare_reference, runner, worker_process
from harness.execute.reference import ReferenceTask
from harness.records.store import load_results
from tests.conftest import run_cli
from tests.factories import sample, spec

TPOT_MS = 7 / 3  # the factory's samples: chunks at 10, 12, 14, 16 ms, e2e 17 ms -> TPOT (17 - 10) / (4 - 1)


def _spec(**over):
    s = spec()
    s.fidelity_check = True
    s.iterations = 3
    for k, v in over.items():
        setattr(s, k, v)
    return s


def _samples(process: int, scale: float = 1.0, n: int = 3):
    out = []
    for i in range(n):
        x = sample(i, chunks=tuple(c * scale for c in (10.0, 12.0, 14.0, 16.0)), e2e_ms=17.0 * scale)
        x.process = process
        out.append(x)
    return out


def _reference(process: int, tpot: float, ttft: float = 10.0, e2e: float = 17.0, n: int = 3, tokens: int = 4):
    return [ReferenceRecord(process=process, iteration=i, warmup=False, ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e,
                            output_tokens=tokens) for i in range(n)]


def _result(s, samples, reference, reference_error=None, batches=()):
    events: list[Event] = [SampleEvent(sample=x) for x in samples]
    events += [BatchEvent(batch=b) for b in batches]
    if reference:
        events.append(Reference(records=reference))
    if reference_error:
        events.append(ReferenceError(error=reference_error))
    events.append(Done())
    return cell_result(s, events, "ok", None, "t0", "t1", 1.0)


def _check(r):
    return next(c for c in r.checks if c.name == "fidelity")


def test_equal_readings_pass_and_give_ratio_one():
    s = _spec(processes=3)
    samples = [x for p in range(3) for x in _samples(p)]
    reference = [x for p in range(3) for x in _reference(p, TPOT_MS)]
    r = _result(s, samples, reference)
    assert r.cell_values["fidelity_tpot_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert r.cell_values["fidelity_ttft_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert r.cell_values["fidelity_tps_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert r.cell_values["reference_tpot_ms"] == pytest.approx(TPOT_MS)
    c = _check(r)
    assert c.status == "pass", c.detail
    assert "3 interleaved pair(s)" in c.detail


def test_a_consistent_ten_percent_slowdown_fails():
    s = _spec(processes=4)
    # every pair: harness 10% slower than its reference (the reference moves with the machine's drift)
    drift = [1.0, 1.2, 0.9, 1.1]
    samples = [x for p, d in enumerate(drift) for x in _samples(p, scale=1.1 * d)]
    reference = [x for p, d in enumerate(drift) for x in _reference(p, TPOT_MS * d, 10.0 * d, 17.0 * d)]
    r = _result(s, samples, reference)
    c = _check(r)
    assert c.status == "fail", c.detail
    assert "tpot_ms" in c.detail and "output_tps" in c.detail
    assert r.cell_values["fidelity_tpot_ratio"] == pytest.approx(1.1, rel=1e-3)
    assert r.cell_values["fidelity_tps_ratio"] == pytest.approx(1 / 1.1, rel=1e-3)


def test_noise_wider_than_the_tolerance_passes_and_says_so():
    s = _spec(processes=3)
    scales = [0.8, 1.25, 1.0]  # pairs disagree: the interval cannot resolve ±3%
    samples = [x for p, k in enumerate(scales) for x in _samples(p, scale=k)]
    reference = [x for p in range(3) for x in _reference(p, TPOT_MS)]
    c = _check(_result(s, samples, reference))
    assert c.status == "pass"
    assert "wider than the tolerance" in c.detail


def test_a_harness_reading_faster_than_the_engine_fails_too():
    # e.g. a prefix-cache hit the bare loop does not get: the harness must not read better than reality
    s = _spec(processes=3)
    samples = [x for p in range(3) for x in _samples(p, scale=0.8)]
    reference = [x for p in range(3) for x in _reference(p, TPOT_MS)]
    assert _check(_result(s, samples, reference)).status == "fail"


def test_one_pair_uses_the_iterations():
    s = _spec()
    samples = _samples(0, scale=1.5, n=8)
    reference = _reference(0, TPOT_MS, n=8)
    c = _check(_result(s, samples, reference))
    assert c.status == "fail" and "1 interleaved pair(s)" in c.detail


def test_reference_failure_is_not_run_and_keeps_the_cell():
    s = _spec()
    r = _result(s, _samples(0), [], reference_error="ReferenceError: the reference loop exited with code 139")
    assert r.status == "ok" and r.summaries["tpot_ms"].median == pytest.approx(TPOT_MS)
    c = _check(r)
    assert c.status == "not_run" and "code 139" in c.detail


def test_unreadable_reference_record_does_not_lose_the_samples():
    s = _spec()
    events: list[Event] = [SampleEvent(sample=x) for x in _samples(0)]
    events.append(parse_event({"event": "reference", "records": [{"process": 0, "iteration": "x"}]}))
    r = cell_result(s, events, "ok", None, "t0", "t1", 1.0)
    assert r.status == "ok" and len(r.samples) == 3
    assert _check(r).status == "not_run" and "unreadable" in _check(r).detail


def test_no_check_without_the_option():
    r = _result(spec(), _samples(0), [])
    assert all(c.name != "fidelity" for c in r.checks)


def test_continuous_batching_compares_whole_batch_throughput():
    s = spec("continuous_batching")
    s.scenario.params = {"concurrency": 4}
    s.fidelity_check = True
    assert [c.metric for c in fidelity.comparisons(s)] == ["batch_output_tps"]
    batches = [BatchRecord(iteration=i, warmup=False, process=p, requests=4, start_ns=0, end_ns=int(1e9),
                           output_tokens=256, input_tokens=512, steps=65) for p in range(3) for i in range(2)]
    reference = [ReferenceRecord(process=p, iteration=i, warmup=False, ttft_ms=200.0, tpot_ms=3.4, e2e_ms=1000.0,
                                 output_tokens=256) for p in range(3) for i in range(2)]
    r = _result(s, [], reference, batches=batches)
    assert r.cell_values["fidelity_tps_ratio"] == pytest.approx(1.0)
    assert "fidelity_tpot_ratio" not in r.cell_values  # PerfMetrics TPOT of a batch is per step / batch size
    assert _check(r).status == "pass"
    s1 = spec("continuous_batching")
    s1.scenario.params = {"concurrency": 1}
    assert [c.metric for c in fidelity.comparisons(s1)] == ["tpot_ms", "ttft_ms", "batch_output_tps"]


def test_unsupported_cells_say_why():
    assert "scenario kind 'embeddings'" in bare_reference.unsupported(spec("embeddings"))
    assert bare_reference.unsupported(spec(mode="sampling")) is None  # the reference sets the same config
    assert bare_reference.unsupported(spec()) is None


def test_reference_task_uses_the_cells_prompts_in_order(tmp_path):
    s = spec("speculative")
    s.prompts = PromptSpec(source="file", file="p.txt", texts=["a", "b"])
    s.properties = {"KV_CACHE_PRECISION": "u8"}
    s.warmup, s.iterations = 1, 2
    task = bare_reference.reference_task(s, tmp_path / "ir", tmp_path / "draft")
    assert task.prompts == ["a", "b", "a"]  # one per iteration, as the worker takes them
    assert task.kind == "speculative" and task.draft_dir == str(tmp_path / "draft")
    assert task.properties == {"KV_CACHE_PRECISION": "u8"} and task.draft_properties == {"KV_CACHE_PRECISION": "u8"}
    assert task.preload_worker_modules
    assert task.generation["num_assistant_tokens"] == 3 and task.generation["max_new_tokens"] == 4
    assert task.generation["apply_chat_template"] is False and task.generation["do_sample"] is False
    assert ReferenceTask.from_json(task.to_json()) == task
    s.prompts.vary_per_iteration = False
    assert bare_reference.reference_task(s, tmp_path / "ir", None).prompts == ["a"]


def test_reference_task_for_continuous_batching_keeps_the_workers_scheduler_and_properties(tmp_path):
    s = spec("continuous_batching")
    s.scenario.params = {"concurrency": 4, "enable_prefix_caching": False, "cache_size_gb": 1}
    s.properties = {"ATTENTION_BACKEND": "PA", "KV_CACHE_PRECISION": "u8"}
    s.prompts = PromptSpec(source="file", file="p.txt", texts=["a", "b", "c"])
    task = bare_reference.reference_task(s, tmp_path, None, preload=False)
    assert task.pipeline == "continuous_batching" and task.concurrency == 4
    assert task.scheduler == {"enable_prefix_caching": False, "cache_size": 1}
    assert task.properties == {"KV_CACHE_PRECISION": "u8"}  # as genai_cb.build_pipeline passes them
    assert len(task.prompts) == 4 * (s.warmup + s.iterations) and not task.preload_worker_modules


def test_reference_process_failure_is_one_line(tmp_path):
    task = ReferenceTask(model_dir=str(tmp_path / "missing"), device="CPU", kind="generate", prompts=["x"],
                         warmup=0, iterations=1, generation={"max_new_tokens": 2})
    with pytest.raises(bare_reference.ReferenceError) as e:
        bare_reference.run_reference(task, tmp_path, 120)
    assert "exited with code" in str(e.value) and "\n" not in str(e.value)


def test_runner_interleaves_reference_and_worker_processes(tmp_path, monkeypatch):
    s = spec()
    s.fidelity_check, s.processes = True, 3
    order = []

    def fake_worker(task, workdir, timeout_s, cell, progress, env=None, since_progress=False):
        order.append(f"{task.mode}{task.process if task.mode == 'measure' else ''}")
        if task.mode == "prepare":
            return [Prepared(model_dir=str(tmp_path), model_size_mb=1.0)], "ok", None
        return [*(SampleEvent(sample=x) for x in _samples(task.process)), Done()], "ok", None

    def fake_reference(task, workdir, timeout_s, process=0, python=None, env=None):
        order.append(f"reference{process}")
        return _reference(process, TPOT_MS)

    monkeypatch.setattr(worker_process, "run_worker", fake_worker)
    monkeypatch.setattr(bare_reference, "run_reference", fake_reference)
    monkeypatch.setattr(bare_reference, "cell_prompts", lambda cell, model_dir, iterations: ["p"])
    opts = runner.RunOptions(cache_dir=tmp_path, available_devices=["CPU"])
    r = runner.run_cell(s, tmp_path / "run", opts, runner.ProgressSink())
    # each worker process has its reference next to it; the order alternates so neither side always goes first
    assert order == ["prepare", "measure0", "reference0", "reference1", "measure1", "measure2", "reference2"]
    assert {x.process for x in r.reference} == {0, 1, 2}
    assert _check(r).status == "pass"
    # the runner's own CPU while the workers ran is measured (fake workers: the runner did all the work)
    assert 0 <= r.cell_values["runner_cpu_pct"] and "runner_cpu_pct" in r.summaries


def test_runner_keeps_the_cell_when_the_reference_crashes(tmp_path, monkeypatch):
    s = spec()
    s.fidelity_check = True

    def fake_worker(task, workdir, timeout_s, cell, progress, env=None, since_progress=False):
        if task.mode == "prepare":
            return [Prepared(model_dir=str(tmp_path))], "ok", None
        return [*(SampleEvent(sample=x) for x in _samples(0)), Done()], "ok", None

    def crash(*a, **k):
        raise bare_reference.ReferenceError("the reference loop exited with code -11: Segmentation fault")

    monkeypatch.setattr(worker_process, "run_worker", fake_worker)
    monkeypatch.setattr(bare_reference, "run_reference", crash)
    monkeypatch.setattr(bare_reference, "cell_prompts", lambda cell, model_dir, iterations: ["p"])
    r = runner.run_cell(s, tmp_path / "run", runner.RunOptions(cache_dir=tmp_path, available_devices=["CPU"]),
                        runner.ProgressSink())
    assert r.status == "ok" and len(r.samples) == 3
    c = _check(r)
    assert c.status == "not_run" and "code -11" in c.detail


def test_geomean_ratio_interval():
    gm, lo, hi = geomean_ratio_ci([1.1, 1.1, 1.1])
    assert gm == pytest.approx(1.1) and lo == pytest.approx(1.1) and hi == pytest.approx(1.1)
    gm, lo, hi = geomean_ratio_ci([0.9, 1.0, 1.1, 1.05])
    assert lo < gm < hi and gm == pytest.approx(math.exp(sum(map(math.log, [0.9, 1.0, 1.1, 1.05])) / 4))
    assert geomean_ratio_ci([1.0]) is None


@pytest.mark.integration
def test_fidelity_check_on_the_tiny_model(tmp_path, model_cache):
    suite = tmp_path / "s.yaml"
    suite.write_text("""
name: fidelity
models: [{name: tiny, source: synthetic:tiny, draft: synthetic:tiny-draft}]
precisions: [int8]
prompts: {input_tokens: [16]}
generation: {max_new_tokens: 16}
warmup: 1
iterations: 3
processes: 2
fidelity_check: true
scenarios:
  - {name: greedy, kind: generate}
  - {name: spec, kind: speculative, num_assistant_tokens: 3}
  - {name: cb, kind: continuous_batching, concurrency: 2}
  - {name: chat, kind: serving, api: completions, concurrency: 1, requests: 4}
  - {name: tok, kind: tokenizer}
""")
    proc = run_cli("run", str(suite), "--out", str(tmp_path / "run"), cache=model_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = {c.spec.scenario.kind: c for c in load_results(tmp_path / "run").cells}
    for kind in ("generate", "speculative", "continuous_batching", "serving"):
        c = cells[kind]
        assert {r.process for r in c.reference} == {0, 1}, kind
        check = _check(c)
        assert check.status in ("pass", "fail") and "2 interleaved pair(s)" in check.detail, check.detail
        # a ~1 ms/token model is overhead-bound (through HTTP a token costs several times its compute), so
        # only a sanity bound here; benchmarks/fidelity.py gives the real figure on the small model
        low = 0.05 if kind == "serving" else 0.25
        assert low < c.cell_values["fidelity_tps_ratio"] < 4.0, (kind, c.cell_values)
    assert len(cells["generate"].reference) == 2 * 3 + 2  # warm-up kept and marked
    assert cells["tokenizer"].reference == []
    assert _check(cells["tokenizer"]).status == "not_run"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "fidelity" in report
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["cells"][0]["reference"][0]["ttft_ms"] > 0
    assert Path(tmp_path / "run" / "work").exists()


def test_serving_reference_is_a_bare_loop_at_concurrency_one(tmp_path):
    s = spec("serving")
    s.server = "local"
    s.scenario.params = {"api": "chat", "concurrency": 1, "requests": 5}
    s.prompts = PromptSpec(source="file", file="p.txt", texts=["a", "b", "c"])
    s.warmup = 2
    assert bare_reference.unsupported(s) is None
    task = bare_reference.reference_task(s, tmp_path, None)
    assert task.pipeline == "continuous_batching" and task.concurrency == 1 and task.scheduler == {}
    assert task.kind == "serving"  # the modules its preload imports are the serving worker's
    assert task.iterations == 5 and task.warmup == 2 and len(task.prompts) == 7
    assert task.generation["apply_chat_template"] is True and task.generation["do_sample"] is False
    s.scenario.params["api"] = "completions"
    assert bare_reference.reference_task(s, tmp_path, None).generation["apply_chat_template"] is False
    for params, why in [({"api": "chat", "concurrency": 4}, "concurrency 1"), ({"api": "chat", "rate": 2.0}, "concurrency 1"),
                        ({"api": "chat", "range_ratio": 0.5}, "fixed lengths"),
                        ({"api": "embeddings"}, "embeddings API")]:
        s.scenario.params = params
        assert why in bare_reference.unsupported(s), params
    s.scenario.params = {"api": "chat"}
    s.server = "http://127.0.0.1:9/v3"
    assert "remote server" in bare_reference.unsupported(s)


def test_benchmark_narrows_a_suite_to_one_cell(tmp_path):
    import argparse

    import yaml

    from benchmarks.fidelity import one_cell_suite

    (tmp_path / "models").mkdir()
    (tmp_path / "p.txt").write_text("hello\n")
    src = tmp_path / "s.yaml"
    src.write_text("""
name: several
models: [{name: m, source: models, draft: synthetic:tiny-draft}]
precisions: [fp16, int8]
prompts: {file: p.txt}
gates: [{metric: tpot_ms, max: 1}]
scenarios:
  - {name: greedy, kind: generate}
  - {name: cb, kind: continuous_batching, concurrency: [1, 4]}
""")
    out = tmp_path / "out"
    out.mkdir()
    args = argparse.Namespace(suite=str(src), precision="int8", device="CPU", scenario="cb", token_timing="genai",
                              warmup=None, iterations=4, param=["concurrency=1"], set=["load_twice=false"])
    data = yaml.safe_load(one_cell_suite(args, out).read_text())
    assert data["precisions"] == ["int8"] and data["token_timing"] == "genai" and data["iterations"] == 4
    assert [s["name"] for s in data["scenarios"]] == ["cb"] and data["scenarios"][0]["concurrency"] == 1
    assert data["load_twice"] is False and "gates" not in data
    # paths stay those of the original suite's folder
    assert data["models"][0]["source"] == str((tmp_path / "models").resolve())
    assert data["prompts"]["file"] == str((tmp_path / "p.txt").resolve())
