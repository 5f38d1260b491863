"""Accuracy of int8/int4 cells against the fp16 cell of the same run, and the precision table."""

from __future__ import annotations

import pytest

from harness.analyze.accuracy import first_divergence_index, similarity, token_match
from harness.analyze.checks import run_level_checks
from harness.core.schema import Gate
from reports.markdown import render_markdown
from reports.precision_table import precision_groups
from tests.factories import result, run, sample, spec


def _cell(precision: str, outputs: list[list[int]], size_mb: float, tpot_scale: float = 1.0, gates=()):
    s = spec("generate", precision=precision)
    s.gates = list(gates)
    samples = []
    for i, ids in enumerate(outputs):
        x = sample(i, text=" ".join(map(str, ids)), chunks=tuple(10.0 + 2 * k * tpot_scale for k in range(4)),
                   e2e_ms=10.0 + 7.0 * tpot_scale)
        x.output_ids = ids
        samples.append(x)
    r = result(s, samples)
    r.cell_values["model_size_mb"] = size_mb
    return r


def test_figures():
    assert token_match([1, 2, 3, 4], [1, 2, 9, 4]) == 75.0
    assert token_match([1, 2], [1, 2, 3, 4]) == 50.0  # over the longer output
    assert first_divergence_index([1, 2, 3], [1, 2, 4]) == 2
    assert first_divergence_index([1, 2, 3], [1, 2, 3]) == 3
    assert similarity("abcd", "abcd") == 100.0 and similarity("abcd", "wxyz") == 0.0


def test_int_cells_get_accuracy_against_fp16_and_gates_judge_it():
    fp16 = _cell("fp16", [[1, 2, 3, 4], [5, 6, 7, 8]], 100.0)
    int8 = _cell("int8", [[1, 2, 3, 4], [5, 6, 7, 9]], 50.0, tpot_scale=0.5,
                 gates=[Gate(metric="token_match_pct", min=80)])
    int4 = _cell("int4", [[1, 9, 9, 9], [5, 6, 9, 9]], 25.0, tpot_scale=0.25,
                 gates=[Gate(metric="token_match_pct", min=80)])
    cells = run_level_checks([fp16, int8, int4])
    by = {c.spec.precision: c for c in cells}
    assert "token_match_pct" not in by["fp16"].cell_values
    assert by["int8"].cell_values["token_match_pct"] == pytest.approx(87.5)
    assert by["int8"].cell_values["first_divergence_tokens"] == 3.5  # median of 4 (identical) and 3
    assert by["int4"].cell_values["token_match_pct"] == pytest.approx(37.5)
    checks = {p: {ch.name: ch for ch in c.checks} for p, c in by.items()}
    assert checks["int8"]["accuracy_vs_fp16"].status == "pass"
    assert checks["int8"]["gate: token_match_pct median >= 80"].status == "pass"
    assert checks["int4"]["accuracy_vs_fp16"].status == "fail"
    assert "missed token_match_pct" in checks["int4"]["accuracy_vs_fp16"].detail
    # assembling again does not pile up checks
    again = run_level_checks(cells)
    assert [c.name for c in again[2].checks] == [c.name for c in cells[2].checks]


def test_without_reference_or_gate_the_check_says_so():
    [int8] = run_level_checks([_cell("int8", [[1, 2, 3, 4]], 50.0)])
    ch = next(c for c in int8.checks if c.name == "accuracy_vs_fp16")
    assert ch.status == "not_run" and "no fp16 plain greedy cell" in ch.detail
    fp16, int8 = run_level_checks([_cell("fp16", [[1, 2, 3, 4]], 100.0), _cell("int8", [[1, 2, 3, 4]], 50.0)])
    ch = next(c for c in int8.checks if c.name == "accuracy_vs_fp16")
    assert ch.status == "not_run" and "token match 100.0%" in ch.detail and "no accuracy gate" in ch.detail


def test_precision_table_has_speedup_and_compression():
    cells = run_level_checks([_cell("fp16", [[1, 2, 3, 4]], 100.0), _cell("int4", [[1, 2, 3, 5]], 25.0, 0.5)])
    [g] = precision_groups(cells)
    fp16, int4 = g.rows
    assert fp16.speedup == 1.0 and fp16.compression == 1.0
    assert int4.compression == 4.0 and int4.speedup == pytest.approx(2.0)
    assert int4.cells[g.headers.index("token match %")] == "75.0"
    md = render_markdown(run(cells))
    assert "### Precisions side by side" in md and "| int4 |" in md and "4.00×" in md
    assert g.speedup_on == "TPOT" and "| speed-up (TPOT) |" in md
