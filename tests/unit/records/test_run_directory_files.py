"""A run directory's files read back (results.json, metadata.json, cells.jsonl) through the one loader: a file
too large, not UTF-8, nested without end or holding a number Python will not convert is one line naming it; a
damaged cells.jsonl line is still just a line left out."""

from __future__ import annotations

import json

import pytest

from harness.core.errors import HarnessInputError
from harness.records import store
from harness.records.store import (
    CELLS,
    METADATA,
    append_cell,
    load_metadata,
    load_results,
    scan_cells,
    write_results,
)
from tests.factories import result, run, sample, spec

DEEP = 100_000


def _results(tmp_path):
    write_results(tmp_path, run([result(spec(), [sample(0), sample(1)])]))
    return tmp_path / "results.json"


@pytest.mark.parametrize(("edit", "says"), [
    (lambda t: t.replace('"iterations": 3,', '"iterations": 1' + "1" * 5000 + ",", 1), "results file not readable: "
     "Exceeds the limit (4300 digits)"),
    (lambda t: t.replace('"warmup": 1,', '"warmup": ' + "[" * DEEP + "]" * DEEP + ",", 1), "results file nested "
     "deeper than 64 levels"),
    (lambda t: "\ufeff" + t.replace('"suite_name": "t"', '"suite_name": "t\\ud800"'), None),  # read: reports escape it
])
def test_a_results_file_python_cannot_hold_is_one_line(tmp_path, edit, says):
    """Before: ValueError (a 5001-digit number); the byte-order mark was 'not valid JSON'."""
    path = _results(tmp_path)
    text = path.read_text()
    path.write_text(edit(text))
    assert path.read_text() != text
    if says is None:
        assert load_results(path).metadata.suite_name == "t\ud800"
        return
    with pytest.raises(HarnessInputError) as e:
        load_results(path)
    assert e.value.line().startswith(f"{path}: {says}"), e.value.line()


@pytest.mark.parametrize(("old", "says"), [({"f32:0": "[" * DEEP}, "JSON text nested deeper than 64 levels"),
                                           ({"f32:0": "[1]", "tokenizer_parity": 5}, "expected JSON text, got int")])
def test_a_record_of_schema_1_6_whose_check_outputs_are_no_json_text_is_one_line(tmp_path, old, says):
    """Before: RecursionError and TypeError from json.loads inside the schema's upgrade of 1.6 records."""
    path = _results(tmp_path)
    doc = json.loads(path.read_text())
    doc["cells"][0]["check_outputs"] = old
    path.write_text(json.dumps(doc))
    with pytest.raises(HarnessInputError) as e:
        load_results(path)
    assert e.value.field == "cells.0.check_outputs" and says in e.value.message, e.value.line()


def test_a_results_file_over_its_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    """Before: read whole however large (the limit is a GiB; patched small here)."""
    path = _results(tmp_path)
    monkeypatch.setattr(store, "MAX_RECORDS_BYTES", path.stat().st_size - 1)
    with pytest.raises(HarnessInputError, match="results file larger than"):
        load_results(path)


def test_run_metadata_over_its_limit_is_refused_from_its_size(tmp_path):
    """Before: 16 MiB of NUL bytes read and handed to the JSON parser."""
    from harness.core.input_files import MAX_METADATA_BYTES

    with (tmp_path / METADATA).open("wb") as f:
        f.truncate(MAX_METADATA_BYTES + 1)
    with pytest.raises(HarnessInputError, match="run metadata file larger than 16 MiB"):
        load_metadata(tmp_path)


@pytest.mark.parametrize(("raw", "says"), [(b"[]", "run metadata file is not a JSON object (got 'list')"),
                                           (b'{"run_id": "\xff"}', "line 1: run metadata file not valid UTF-8"),
                                           (b"{}", "run_id: damaged run metadata: Field required (+")])
def test_damaged_run_metadata_is_one_line(tmp_path, raw, says):
    (tmp_path / METADATA).write_bytes(raw)
    with pytest.raises(HarnessInputError) as e:
        load_metadata(tmp_path)
    assert says in e.value.line(), e.value.line()


def test_a_damaged_cell_record_is_a_line_left_out_and_too_large_a_file_is_refused(tmp_path, monkeypatch):
    append_cell(tmp_path, result(spec(), [sample(0)]))
    with (tmp_path / CELLS).open("ab") as f:
        f.write(b"[" * DEEP + b"]" * DEEP + b"\n" + b'{"spec": "\xff"}\n' + json.dumps({"x": "\ud800"}).encode() + b"\n")
    append_cell(tmp_path, result(spec(key="k2"), [sample(0)]))
    cells, bad = scan_cells(tmp_path)
    assert [c.spec.key for c in cells] == ["m/fp16/CPU/generate/in8-out4", "k2"] and bad == [2, 3, 4]
    monkeypatch.setattr(store, "MAX_RECORDS_BYTES", 1000)
    with pytest.raises(HarnessInputError, match="cell records file larger than 1000 bytes"):
        scan_cells(tmp_path)
