"""Arrival traces and recorded payloads from outside: refused in one line (file, line, value) through the one
loader, never a traceback — too large (from the size alone), not UTF-8, nested without end, a CSV field past
the csv module's limit, a request body no UTF-8 writer can send."""

from __future__ import annotations

import pytest

from harness.core.errors import HarnessInputError
from harness.load import exports, traces
from harness.load.exports import read_payloads
from harness.load.traces import read_trace

DEEP = 100_000
GOOD_TRACE = b'{"t_s": 0, "input_tokens": 8, "output_tokens": 4}\n'
GOOD_PAYLOAD = b'{"warmup": false, "t_s": 0, "api": "chat", "body": {"messages": []}}\n'


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("t.jsonl", b"[" * DEEP + b"]" * DEEP + b"\n", "line 1: record nested deeper than 64 levels"),
    ("t.jsonl", GOOD_TRACE + b'{"t_s": ' + b"[" * DEEP + b"]" * DEEP + b"}\n", "line 2: record nested deeper"),
    ("t.jsonl", GOOD_TRACE + b'{"t_s": 1, "input_tokens": 1' + b"1" * 5000 + b"}\n", "line 2: record not readable"),
    ("t.csv", b"TIMESTAMP,ContextTokens,GeneratedTokens\n2024-01-01 00:00:00," + b"1" * 200_000 + b",4\n",
     "line 2: not a readable CSV row: field larger than field limit"),
    ("t.jsonl", b'{"t_s": 0, "input_tokens": 8, "output_tokens": 4, "note": "\xc3("}\n', "line 1: trace file not valid UTF-8"),
    ("t.jsonl", GOOD_TRACE + b'{"t_s": 1' + b"0" * 400 + b', "input_tokens": 8, "output_tokens": 4}\n',
     "line 2.t_s: a time is a finite number"),
])
def test_a_trace_that_cannot_be_read_is_one_line(tmp_path, name, raw, says):
    """Before: RecursionError (both deep cases), _csv.Error (the long field), OverflowError (a time of 401
    digits, which JSON allows and no float holds)."""
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(HarnessInputError) as e:
        read_trace(tmp_path / name)
    assert says in e.value.line(), e.value.line()


def test_a_trace_over_its_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    """Before: read whole, however large (the limit is a GiB; patched small here)."""
    monkeypatch.setattr(traces, "MAX_TRACE_BYTES", 100)
    (tmp_path / "t.jsonl").write_bytes(GOOD_TRACE * 3)
    with pytest.raises(HarnessInputError, match="trace file larger than 100 bytes"):
        read_trace(tmp_path / "t.jsonl")


def test_a_json_line_holding_a_line_separator_is_one_record(tmp_path):
    """Before: str.splitlines cut the record at U+2028 and refused both halves."""
    (tmp_path / "t.jsonl").write_text('{"t_s": 0, "input_tokens": 8, "output_tokens": 4, "note": "a\u2028b"}\n')
    assert len(read_trace(tmp_path / "t.jsonl").requests) == 1


@pytest.mark.parametrize(("raw", "says"), [
    (GOOD_PAYLOAD + b'{"warmup": false, "t_s": 1, "api": "chat", "body": ' + b"[" * DEEP + b"]" * DEEP + b"}\n",
     "line 2: record nested deeper than 64 levels"),
    (b'{"warmup": false, "t_s": 0, "api": "chat", "body": {"messages": [{"content": "\\udc80"}]}}\n',
     "line 1: body.messages[0].content: a string holds a lone surrogate"),
    (GOOD_PAYLOAD + b'{"warmup": false, "t_s": 1e400, "api": "chat", "body": {}}\n', "line 2: expected a recorded"),
    (GOOD_PAYLOAD + b'{"warmup": false, "t_s": 1' + b"0" * 400 + b', "api": "chat", "body": {}}\n',
     "line 2: expected a recorded"),
    (GOOD_PAYLOAD + b'{"warmup": false, "t_s": 1, "api": ["chat"], "body": {}}\n', "line 2: expected a recorded"),
])
def test_a_payloads_file_that_cannot_be_replayed_is_one_line(tmp_path, raw, says):
    """Before: RecursionError (deep body), OverflowError (a send time of 401 digits), TypeError (an api that is a
    list: unhashable); the lone surrogate failed only when the body was encoded."""
    (tmp_path / "p.jsonl").write_bytes(raw)
    with pytest.raises(HarnessInputError) as e:
        read_payloads(tmp_path / "p.jsonl")
    assert says in e.value.line(), e.value.line()


def test_a_payloads_file_over_its_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "MAX_PAYLOADS_BYTES", 100)
    (tmp_path / "p.jsonl").write_bytes(GOOD_PAYLOAD * 2)
    with pytest.raises(HarnessInputError, match="payloads file larger than 100 bytes"):
        read_payloads(tmp_path / "p.jsonl")
