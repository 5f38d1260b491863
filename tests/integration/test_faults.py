"""A crash, a hang, a missing device and a SIGKILLed run: none of them loses finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.records.store import load_cells, load_results
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

SUITE = """
name: faults
models: [{{name: tiny, source: synthetic:tiny}}]
precisions: [fp16]
devices: {devices}
prompts: {{input_tokens: [8, 12, 16]}}
generation: {{max_new_tokens: 8}}
warmup: 0
iterations: 2
load_twice: false
timeout_s: {timeout}
scenarios: [{{name: greedy, kind: generate}}]
"""


def write_suite(tmp_path, devices="[CPU]", timeout=120):
    p = tmp_path / "faults.yaml"
    p.write_text(SUITE.format(devices=devices, timeout=timeout))
    return p


def test_crash_and_hang_do_not_stop_the_run(tmp_path, model_cache):
    suite = write_suite(tmp_path, timeout=15)
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out),
                   "--fault", "tiny/fp16/CPU/greedy/in8-out8=crash",
                   "--fault", "tiny/fp16/CPU/greedy/in12-out8=hang", cache=model_cache)
    assert proc.returncode == 1, proc.stderr[-2000:]
    cells = {c.key: c for c in load_results(out).cells}
    crashed = cells["tiny/fp16/CPU/greedy/in8-out8"]
    assert crashed.status == "crashed" and "SIGSEGV" in crashed.error
    hung = cells["tiny/fp16/CPU/greedy/in12-out8"]
    assert hung.status == "timeout" and "15 s" in hung.error
    assert 13 < hung.wall_s < 60
    assert cells["tiny/fp16/CPU/greedy/in16-out8"].status == "ok"
    assert "**crashed**" in (out / "report.md").read_text()


def test_missing_device_is_skipped_auto_and_hetero_run(tmp_path, model_cache):
    suite = write_suite(tmp_path, devices="[GPU, AUTO, 'HETERO:CPU', 'AUTO:NPU']")
    suite.write_text(suite.read_text().replace("[8, 12, 16]", "[8]"))
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out), cache=model_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = {c.spec.device: c for c in load_results(out).cells}
    assert status["GPU"].status == "skipped" and "GPU not available" in status["GPU"].error
    assert status["AUTO:NPU"].status == "skipped"
    assert status["AUTO"].status == "ok" and status["HETERO:CPU"].status == "ok"


def test_sigkilled_run_resumes_without_losing_or_repeating_cells(tmp_path, model_cache):
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    env = dict(os.environ, HARNESS_CACHE_DIR=str(model_cache))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--out", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(load_cells(out)) < 1:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = load_cells(out)
    assert 1 <= len(first) < 3, "the run should be killed part-way"
    resumed = run_cli("run", "--resume", str(out), cache=model_cache)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = load_cells(out)
    keys = [c.key for c in after]
    assert len(keys) == 3 == len(set(keys)), keys
    for c in first:  # finished cells kept as they were, not re-run
        assert next(a for a in after if a.key == c.key).started_at == c.started_at
    res = load_results(out)
    assert res.metadata.resumed_at and all(c.status == "ok" for c in res.cells)


WRONG_OUTPUT_SUITE = """
name: wrong-outputs
models: [{name: tiny, source: synthetic:tiny, draft: synthetic:tiny-draft}]
precisions: [fp16]
devices: [CPU]
prompts: {input_tokens: [24, 32]}
generation: {max_new_tokens: 16, ignore_eos: true}
warmup: 0
iterations: 2
load_twice: false
token_timing: genai
scenarios:
  - {name: greedy, kind: generate}
  - {name: speculative, kind: speculative, num_assistant_tokens: 3}
  - {name: prompt-lookup, kind: prompt_lookup, num_assistant_tokens: 3, max_ngram_size: 2}
  - {name: cb, kind: continuous_batching, concurrency: 2}
  - {name: optimum, kind: optimum}
"""


def test_matches_greedy_fails_exactly_the_pipelines_whose_output_is_wrong(tmp_path, model_cache):
    """A pipeline that changes one token, drops one or answers another prompt fails matches_greedy, on the f32
    validation outputs and on the timed ones alike; the same scenarios without a fault pass in the same run,
    and so do continuous batching and Optimum Intel, judged on their own f32 validation outputs."""
    suite = tmp_path / "wrong.yaml"
    suite.write_text(WRONG_OUTPUT_SUITE)
    out = tmp_path / "run"
    spec, lookup = "tiny/fp16/CPU/speculative[num_assistant_tokens=3]", \
        "tiny/fp16/CPU/prompt-lookup[max_ngram_size=2,num_assistant_tokens=3]"
    faults = {f"{spec}/in24-out16": "change_token", f"{lookup}/in24-out16": "drop_token",
              f"{spec}/in32-out16": "other_prompt"}
    args = [a for key, kind in faults.items() for a in ("--fault", f"{key}={kind}")]
    proc = run_cli("run", str(suite), "--out", str(out), "--fail-on-checks", *args, cache=model_cache)
    assert proc.returncode == 1, proc.stderr[-2000:]
    cells = {c.key: c for c in load_results(out).cells}
    for key, cell in cells.items():
        assert cell.status == "ok", (key, cell.error)
        if cell.spec.scenario.kind == "generate":
            continue
        check = next(c for c in cell.checks if c.name == "matches_greedy")
        assert "at f32" in check.detail, check.detail
        if key in faults:
            assert check.status == "fail", (key, check.detail)
            assert "diverge" in check.detail
        else:
            assert check.status == "pass", (key, check.detail)
    changed = next(c.detail for c in cells[f"{spec}/in24-out16"].checks if c.name == "matches_greedy")
    assert "prompt 0 at token 8" in changed and "prompt 1 at token 8" in changed  # the middle of 16 tokens


@pytest.mark.parametrize(("fault", "needle"), [("tiny/fp16/CPU/greedy/in24-out16=explode", "explode"),
                                               ("tiny/fp16/CPU/nonesuch/in24-out16=crash", "nonesuch")])
def test_a_fault_of_unknown_kind_or_for_no_cell_is_one_line(tmp_path, model_cache, fault, needle):
    suite = tmp_path / "wrong.yaml"
    suite.write_text(WRONG_OUTPUT_SUITE)
    proc = run_cli("run", str(suite), "--out", str(tmp_path / "run"), "--fault", fault, cache=model_cache)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "--fault" in errors[0] and needle in errors[0], proc.stderr


def test_an_export_that_fails_is_attempted_once_for_every_cell_that_needs_it(tmp_path, model_cache):
    """A Hugging Face folder whose weights file is cut short: optimum-cli's export fails; one export attempt in the
    run, and each of the cells on that IR fails with its one-line error and a note that it was not attempted again.
    (An int4 group size that does not divide the channels no longer fails: the harness fits it.)"""
    import shutil

    from harness.models.synthetic import build_synthetic

    broken = tmp_path / "broken-tiny"
    shutil.copytree(build_synthetic("tiny", model_cache), broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    suite = write_suite(tmp_path)
    suite.write_text(suite.read_text().replace("precisions: [fp16]", "precisions: [int4]")
                     .replace("source: synthetic:tiny", f"source: {broken}"))
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out), cache=model_cache)
    assert proc.returncode == 3, proc.stderr[-2000:]  # every cell failed: nothing judged
    attempts = [line for line in proc.stderr.splitlines() if line.startswith(f"failed preparing {broken} int4")]
    assert len(attempts) == 1, proc.stderr[-3000:]
    # one preparation's folder, and no cell's own: none of them prepared or measured anything
    assert [p.name for p in (out / "work").iterdir()] == ["prepare"]
    assert len(list((out / "work" / "prepare").iterdir())) == 1
    cells = load_results(out).cells
    assert len(cells) == 3 and len({c.error for c in cells}) == 1
    for c in cells:
        assert c.status == "failed" and "export" in c.error and "\n" not in c.error
        assert any(n.startswith(f"not retried: preparing {broken} int4 (group 128") for n in c.notes)


REFERENCE_SUITE = """
name: independent-reference
models:
  - {{name: tiny, source: synthetic:tiny}}
  - {{name: tiny-ir, source: {ir}}}
precisions: [fp16]
devices: [CPU]
prompts: {{input_tokens: [16, 24, 32]}}
generation: {{max_new_tokens: 16, ignore_eos: true}}
warmup: 0
iterations: 2
load_twice: false
token_timing: genai
transformers_check: true
exclude: [{{model: tiny-ir, input_tokens: [24, 32]}}]
scenarios: [{{name: greedy, kind: generate}}]
"""


def test_matches_transformers_fails_a_wrong_plain_greedy_pipeline_that_nothing_else_catches(tmp_path, model_cache):
    """With only plain greedy cells in the suite, matches_greedy has nothing to compare: a pipeline that changes or
    drops the middle token passes every other check, and fails matches_transformers at that token; the same cell
    without a fault passes it, and a model given as an IR folder has no Hugging Face weights to run (not run)."""
    prepared = run_cli("prepare", "synthetic:tiny", "--precision", "fp16", cache=model_cache)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    suite = tmp_path / "reference.yaml"
    suite.write_text(REFERENCE_SUITE.format(ir=prepared.stdout.strip().splitlines()[-1]))
    out = tmp_path / "run"
    faults = {"tiny/fp16/CPU/greedy/in24-out16": "change_token", "tiny/fp16/CPU/greedy/in32-out16": "drop_token"}
    args = [a for key, kind in faults.items() for a in ("--fault", f"{key}={kind}")]
    proc = run_cli("run", str(suite), "--out", str(out), "--fail-on-checks", *args, cache=model_cache)
    assert proc.returncode == 1, proc.stderr[-2000:]
    cells = {c.key: c for c in load_results(out).cells}
    assert len(cells) == 4 and all(c.status == "ok" for c in cells.values()), {k: c.error for k, c in cells.items()}
    checks = {key: {ch.name: ch for ch in c.checks} for key, c in cells.items()}
    clean = checks["tiny/fp16/CPU/greedy/in16-out16"]["matches_transformers"]
    assert clean.status == "pass" and "2 f32 output(s), 32 tokens" in clean.detail, clean.detail
    for key in faults:
        found = checks[key].pop("matches_transformers")
        assert found.status == "fail", (key, found.detail)
        assert "prompt 0 at token 8: OpenVINO" in found.detail and "prompt 1 at token 8" in found.detail, found.detail
        assert all(ch.status == "pass" for ch in checks[key].values()), (key, checks[key])  # nothing else sees it
    ir = checks["tiny-ir/fp16/CPU/greedy/in16-out16"]["matches_transformers"]
    assert ir.status == "not_run" and "OpenVINO IR folder" in ir.detail, ir.detail
    report = (out / "report.md").read_text()
    assert "### Plain greedy against transformers" in report
    assert "`tiny/fp16/CPU/greedy/in24-out16`: matches_transformers — prompt 0 at token 8" in report
