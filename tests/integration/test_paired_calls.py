"""`harness ab` pairing calls on real worker processes: two loaded sides take calls in ABBA blocks through the
order channel; a side that crashes or hangs while loaded costs its cell only, in one line."""

from __future__ import annotations

import pytest

from harness.execute.run_options import RunOptions
from harness.execute.worker_process import ProgressSink
from harness.experiment import ab
from harness.experiment.ab import ABResult, ABSettings, SideSpec
from tests.factories import spec as make_cell_spec

pytestmark = pytest.mark.integration


def _cell(key: str, timeout_s: float = 120):
    from harness.core.schema import GenerationSpec, ModelRef, PromptSpec

    return make_cell_spec(key=key).model_copy(update={
        "model": ModelRef(name="tiny", source="synthetic:tiny"), "precision": "fp16",
        "prompts": PromptSpec(source="synthetic", input_tokens=8), "generation": GenerationSpec(max_new_tokens=6),
        "warmup": 1, "iterations": 1, "load_twice": False, "timeout_s": timeout_s})


def _ab(tmp_path, cells, model_cache, faults=None, rounds=2, pairing="slices"):
    # a 2 ms slice: the tiny model's calls (~10 ms) are paused and resumed several times each
    settings = ABSettings(metrics=["tpot_ms", "ttft_ms", "peak_rss_mb"], min_rounds=2, max_rounds=rounds, blocks=2,
                          pairing=pairing, slice_ms=2)
    result = ABResult(ab_id="t", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b",
                      candidate_run="c", settings=settings, started_at="now")
    options = RunOptions(model_cache, ["CPU"], faults=faults or {})
    sides = ab.run_ab(cells, SideSpec(), SideSpec(), tmp_path, options, settings, result, ProgressSink(),
                      log=lambda m: None)
    return result, sides


@pytest.mark.parametrize("pairing", ["slices", "calls"])
def test_two_loaded_sides_take_their_calls_in_blocks(tmp_path, model_cache, pairing):
    result, sides = _ab(tmp_path, [_cell("a")], model_cache, pairing=pairing)
    cell = result.cells[0]
    assert cell.error is None and cell.pairing == pairing and cell.rounds == 2
    by = {m.metric: m for m in cell.metrics}
    assert by["tpot_ms"].paired_by == "call" and by["tpot_ms"].pairs == 8  # 2 rounds x 2 blocks x 2 pairs
    assert by["peak_rss_mb"].paired_by == "process" and by["peak_rss_mb"].pairs == 2
    # each side's run keeps every measured call, numbered by the process pair that made it
    for side in ("base", "candidate"):
        result_cell = sides[side][0]
        assert result_cell.status == "ok"
        measured = [s for s in result_cell.samples if not s.warmup]
        assert len(measured) == 8 and sorted({s.process for s in measured}) == [0, 1]
        if pairing == "slices":  # each call on its active clock: pauses out, openvino-genai's own durations left out
            assert all(s.paused_ms is not None and "tpot_ms" not in s.genai for s in measured)
            assert any(s.paused_ms > 0 for s in measured)
            assert all(0 < s.chunk_offsets_ms[0] <= (s.end_ns - s.start_ns) / 1e6 for s in measured)
        else:
            assert all(s.paused_ms is None and "tpot_ms" in s.genai for s in measured)
    # the worker's own files are in the side's folder, one set per process pair
    assert (tmp_path / "base" / "work" / "a" / "calls-p1-events.jsonl").is_file()


@pytest.mark.parametrize(("fault", "status", "needle"), [("crash", "crashed", "SIGSEGV"), ("hang", "timeout", "12 s")])
def test_a_side_that_dies_or_hangs_while_loaded_costs_its_cell_only(tmp_path, model_cache, fault, status, needle):
    result, _ = _ab(tmp_path, [_cell("bad", timeout_s=12), _cell("good")], model_cache, faults={"bad": fault},
                    rounds=2)
    bad, good = result.cells
    assert needle in (bad.error or "") and status in (bad.base_status, bad.candidate_status)
    assert good.error is None and good.rounds == 2 and good.metrics


REFERENCE_SUITE = """name: ref
models: [{{name: tiny, source: 'synthetic:tiny'}}]
precisions: [fp16]
devices: [CPU]
prompts: {{input_tokens: [8]}}
generation: {{max_new_tokens: 6, ignore_eos: true}}
warmup: 1
iterations: 1
load_twice: false
reference_side: {{side: ["{side}"], label: pinned, process_pairs: 2, blocks: 2}}
scenarios: [{{name: g, kind: generate}}]
"""


def _run_beside(side: str, tmp_path, model_cache):
    """`harness run` of the reference suite with `side` as its reference side: the exit code's check, its cell."""
    from harness.records.store import load_results
    from tests.conftest import run_cli

    suite = tmp_path / "ref.yaml"
    suite.write_text(REFERENCE_SUITE.format(side=side))
    proc = run_cli("run", str(suite), "--out", str(tmp_path / "run"), cache=model_cache, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return load_results(tmp_path / "run").cells[0]


def test_a_run_measures_each_cell_against_its_reference_side(tmp_path, model_cache):
    cell = _run_beside("properties.KV_CACHE_PRECISION=f16", tmp_path, model_cache)
    ratios = cell.vs_reference
    assert ratios is not None and ratios.label == "pinned"
    tpot = ratios.figure("tpot_ms")
    assert tpot is not None and tpot.call_pairs == 8 and tpot.process_pairs == 2 and tpot.ci_low <= tpot.ratio
    assert "openvino" in ratios.runtime_versions and "tpot_ms" in ratios.summaries


def test_a_reference_side_that_fails_costs_the_cell_only_its_ratios(tmp_path, model_cache):
    cell = _run_beside("properties.KV_CACHE_PRECISION=banana", tmp_path, model_cache)
    assert cell.status == "ok" and cell.vs_reference is None and cell.summaries
    assert any("reference side pinned" in n and "banana" in n for n in cell.notes), cell.notes
