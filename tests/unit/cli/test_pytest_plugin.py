"""The pytest front door, driven as a user would: `pytest DIR --suite SUITE ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.records.store import load_results, write_results
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SUITE = """
name: front-door
models: [{name: tiny, source: synthetic:tiny}]
precisions: [fp16, int8]
devices: [CPU, GPU]
prompts: {input_tokens: [16]}
generation: {max_new_tokens: 8}
warmup: 1
iterations: 6
load_twice: false
scenarios: [{name: greedy, kind: generate}]
"""


def _pytest(tmp_path, model_cache, *args):
    # a user's shell, not an xdist worker's: pytest-benchmark turns itself off when it sees PYTEST_XDIST_WORKER
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "suites"), "--suite",
                           str(tmp_path / "suites" / "s.yaml"), "--harness-cache", str(model_cache),
                           "-p", "no:cacheprovider", "-q", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)


@pytest.fixture()
def suite_dir(tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.yaml").write_text(SUITE)
    return tmp_path


def test_cells_become_items_with_markers_junit_and_benchmark_json(suite_dir, model_cache):
    out = suite_dir / "run"
    proc = _pytest(suite_dir, model_cache, "-m", "int8 or gpu", "--harness-out", str(out),
                   "--junitxml", str(suite_dir / "j.xml"), "--benchmark-json", str(suite_dir / "b.json"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed, 2 skipped, 1 deselected" in proc.stdout
    cases = ET.parse(suite_dir / "j.xml").getroot().iter("testcase")
    names = {c.get("name"): c for c in cases}
    assert "tiny/int8/CPU/greedy/in16-out8" in names
    assert names["tiny/fp16/GPU/greedy/in16-out8"].find("skipped") is not None
    bench = json.loads((suite_dir / "b.json").read_text())["benchmarks"]
    assert [b["name"] for b in bench] == ["tiny/int8/CPU/greedy/in16-out8"]
    assert bench[0]["stats"]["rounds"] == 6 and bench[0]["extra_info"]["tpot_ms"] > 0
    res = load_results(out)
    assert {c.status for c in res.cells} == {"ok", "skipped"}


def test_baseline_regression_fails_the_item(suite_dir, model_cache):
    out = suite_dir / "base"
    proc = _pytest(suite_dir, model_cache, "-m", "fp16 and cpu", "--harness-out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:]
    # A baseline 100x faster than this machine (a 3x margin is within what a busy machine's other work does
    # to a tiny model's TPOT): the candidate must be called a regression.
    fast = load_results(out)
    for cell in fast.cells:
        for s in cell.samples:
            s.values = {k: ([x * 100 for x in v] if k in ("output_tps", "decode_tps") else [x / 100 for x in v])
                        for k, v in s.values.items()}
    (suite_dir / "fast").mkdir()
    write_results(suite_dir / "fast", fast)
    proc = _pytest(suite_dir, model_cache, "-m", "fp16 and cpu", "--baseline", str(suite_dir / "fast"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "regression vs baseline" in proc.stdout and "tpot_ms" in proc.stdout


def test_accuracy_gates_are_judged_against_the_sessions_fp16_cell_and_not_run_without_it(suite_dir, model_cache):
    # an impossible accuracy limit: judged, it fails; with the fp16 reference deselected it cannot be judged
    (suite_dir / "suites" / "s.yaml").write_text(SUITE.replace("iterations: 6", "iterations: 1").replace(
        "devices: [CPU, GPU]", "devices: [CPU]") + "gates: [{metric: token_match_pct, min: 101, where: {precision: int8}}]\n")
    proc = _pytest(suite_dir, model_cache, "-m", "int8", "--harness-out", str(suite_dir / "alone"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    (cell,) = load_results(suite_dir / "alone").cells
    gate = next(c for c in cell.checks if c.gate is not None)
    assert gate.status == "not_run" and "no fp16 plain greedy cell" in gate.detail
    proc = _pytest(suite_dir, model_cache, "--harness-out", str(suite_dir / "both"))
    assert proc.returncode == 1 and "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "token_match_pct median >= 101 failed: median" in proc.stdout and "not measured" not in proc.stdout
