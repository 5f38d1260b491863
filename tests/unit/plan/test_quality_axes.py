"""The axes issue 29 adds to a suite: int4 compression settings as a list, runtimes (llama.cpp on the GGUF file, for
the kinds that have it), the quality kind's rules and text, and a peer runtime as an A/B side or reference side."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.core.errors import HarnessInputError
from harness.core.schema import CompressionSpec
from harness.kinds.quality import QualityParams
from harness.plan.sides import BadSideItem, apply_side, side_of
from harness.plan.suite import expand, load_suite

GGUF_SUITE = {
    "name": "q",
    "models": [{"name": "m", "source": "m.gguf", "draft": "m.gguf"}],
    "precisions": ["fp16", "int4", "gguf"],
    "runtimes": ["openvino", "llama.cpp"],
    "compression": [{"group_size": 64}, {"group_size": 128, "sym": True},
                    {"group_size": 64, "ratio": 0.8, "dataset": True, "awq": True, "scale_estimation": True}],
    "scenarios": [{"name": "quality", "kind": "quality", "context": 64, "tokens": 640},
                  {"name": "decode", "kind": "generate"}, {"name": "spec", "kind": "speculative"}],
}


def _expand(tmp_path: Path, suite: dict) -> list:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    return expand(load_suite(path)[0], path)


def test_compression_list_is_an_int4_axis_and_runtimes_run_only_their_kinds_on_the_gguf_file(tmp_path):
    cells = _expand(tmp_path, GGUF_SUITE)
    keys = {c.key for c in cells}
    int4 = [c for c in cells if c.precision == "int4"]
    # three settings x three kinds; the other precisions once each
    assert len(int4) == 9 and len([c for c in cells if c.precision == "fp16"]) == 3
    assert {c.compression.label() for c in int4} == {"g64-r1-asym", "g128-r1-sym", "g64-r0.8-asym-awq-se-data"}
    assert all(k.endswith("/wc=" + c.compression.label()) for c in int4 for k in [c.key])
    peer = [c for c in cells if c.runtime == "llama.cpp"]
    # llama.cpp: only the GGUF file, only the kinds whose registry entry names it (not speculative)
    assert {(c.precision, c.scenario.kind) for c in peer} == {("gguf", "quality"), ("gguf", "generate")}
    assert all(c.key.endswith("/runtime=llama.cpp") for c in peer)
    assert len(keys) == len(cells)
    assert peer[0].precision_label() == "gguf · llama.cpp"


def test_quality_cells_run_each_window_once_in_one_process(tmp_path):
    cells = _expand(tmp_path, {**GGUF_SUITE, "processes": 3, "iterations": 2, "min_measure_s": 5})
    q = next(c for c in cells if c.scenario.kind == "quality")
    assert (q.warmup, q.iterations, q.max_iterations, q.processes, q.min_measure_s) == (1, 10, 10, 1, 0)
    assert QualityParams.of(q).windows() == 10
    other = next(c for c in cells if c.scenario.kind == "generate")
    assert other.processes == 3  # the suite's processes still apply to the other kinds


def test_a_quality_text_file_is_resolved_against_the_suite_and_a_missing_one_is_one_line(tmp_path):
    (tmp_path / "corpus.txt").write_text("some words " * 100)
    suite = {**GGUF_SUITE, "scenarios": [{"name": "quality", "kind": "quality", "text": "corpus.txt"}]}
    q = _expand(tmp_path, suite)[0]
    assert q.scenario.params["text"] == str((tmp_path / "corpus.txt").resolve())
    suite["scenarios"][0]["text"] = "missing.txt"
    with pytest.raises(HarnessInputError, match="missing.txt"):
        _expand(tmp_path, suite)
    suite["scenarios"][0]["text"] = "stdlib-calibration"
    with pytest.raises(HarnessInputError, match="calibrates on"):
        _expand(tmp_path, suite)


@pytest.mark.parametrize(("compression", "message"), [
    ({"awq": True}, "set dataset: true"),
    ([{"group_size": 64}, {"group_size": 64}], "listed twice"),
    ([], "empty list"),
])
def test_bad_compression_settings_are_refused_naming_the_field(tmp_path, compression, message):
    with pytest.raises(HarnessInputError, match=message) as e:
        _expand(tmp_path, {**GGUF_SUITE, "compression": compression})
    assert "compression" in str(e.value)


def test_an_unknown_or_repeated_runtime_is_refused(tmp_path):
    with pytest.raises(HarnessInputError, match="runtimes"):
        _expand(tmp_path, {**GGUF_SUITE, "runtimes": ["openvino", "vllm"]})
    with pytest.raises(HarnessInputError, match="listed twice"):
        _expand(tmp_path, {**GGUF_SUITE, "runtimes": ["openvino", "openvino"]})


def test_cache_keys_of_settings_before_the_new_options_are_unchanged():
    assert CompressionSpec().key_dict() == {"group_size": 128, "ratio": 1.0, "sym": False}
    assert CompressionSpec(dataset=True, awq=True).key_dict() == {"group_size": 128, "ratio": 1.0, "sym": False,
                                                                   "awq": True, "dataset": True}


def test_runtime_is_a_side_axis_and_a_peer_reference_side_is_kept_only_where_it_can_run(tmp_path):
    side = side_of(["runtime=llama.cpp"])
    assert side.runtime == "llama.cpp" and side.label() == "runtime=llama.cpp"
    with pytest.raises(BadSideItem, match="unknown runtime"):
        side_of(["runtime=vllm"])
    suite = {**GGUF_SUITE, "runtimes": ["openvino"], "reference_side": {"side": ["runtime=llama.cpp"]}}
    cells = _expand(tmp_path, suite)
    with_ref = {(c.precision, c.scenario.kind) for c in cells if c.reference_side is not None}
    assert with_ref == {("gguf", "quality"), ("gguf", "generate")}
    cell = next(c for c in cells if c.reference_side is not None)
    assert apply_side(cell, side).runtime == "llama.cpp"


def test_an_ab_runtime_side_compares_only_the_cells_both_runtimes_run(tmp_path):
    from harness.experiment.ab_session import ab_cells

    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(GGUF_SUITE))
    suite = load_suite(path)[0]
    sides = {"base": side_of(["runtime=openvino"]), "candidate": side_of(["runtime=llama.cpp"])}
    cells, left_out = ab_cells(suite, path, sides)
    # the suite's own runtimes axis goes (a side names the runtime); only the GGUF file's generate and quality remain
    assert {(c.precision, c.scenario.kind, c.runtime) for c in cells} == {("gguf", "generate", "openvino"),
                                                                         ("gguf", "quality", "openvino")}
    assert any("not precision int4" in why for why in left_out)
    assert any("speculative cell has no llama.cpp backend" in why for why in left_out)
    assert len(ab_cells(suite, path)[0]) == len(expand(suite, path))  # without sides: every cell, as before
