"""The one loader of outside files (harness/core/input_files.py): size checked with stat before reading, bytes
that are not UTF-8 or hold NUL, JSON / YAML that is malformed, nested without end, full of aliases or of
numbers Python will not convert, lone surrogates where they matter, and GGUF headers that count more than their
file holds: each one HarnessInputError, never a traceback."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from harness.core.errors import HarnessInputError
from harness.core.input_files import (
    MAX_NESTING,
    MAX_SUITE_BYTES,
    decode,
    gguf_header,
    json_objects,
    lines,
    load_json,
    parse_json,
    parse_yaml,
    read_bytes,
    read_text,
)

DEEP = 100_000


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no room on disk (and would take `size` bytes of memory to read)."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_a_file_over_its_limit_is_refused_from_its_size_before_it_is_read(tmp_path, monkeypatch):
    path = sparse(tmp_path / "huge.yaml", 64 * 2**30)  # 64 GiB: reading it would exhaust memory
    opened: list[object] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    t0 = time.monotonic()
    with pytest.raises(HarnessInputError) as e:
        read_bytes(path, "suite file", MAX_SUITE_BYTES)
    assert time.monotonic() - t0 < 1 and opened == []
    assert e.value.line() == (f"{path}: suite file larger than 4 MiB, the most a suite file may be "
                              f"(got '{64 * 2**30} bytes')")


def test_a_file_at_its_limit_is_read(tmp_path):
    assert read_bytes(sparse(tmp_path / "f", 100), "trace file", 100) == b"\0" * 100


@pytest.mark.parametrize(("path", "says"), [("/dev/zero", "not a regular file"), ("/tmp", "is a directory"),
                                             ("/no/such/file", "not found")])
def test_a_device_a_directory_or_nothing_is_refused_without_reading(path, says):
    with pytest.raises(HarnessInputError, match=says):
        read_bytes(Path(path), "trace file", 10)


def test_a_pipe_put_in_a_files_place_after_its_stat_is_refused_without_blocking(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    path.write_text("{}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_stat = Path.stat

    def swapped(self: Path, *a: object, **k: object) -> os.stat_result:
        st = real_stat(self)
        if self == path:  # the file is swapped for a FIFO between the stat and the open
            path.unlink()
            fifo.rename(path)
        return st

    monkeypatch.setattr(Path, "stat", swapped)
    t0 = time.monotonic()
    with pytest.raises(HarnessInputError, match="not a regular file"):
        read_bytes(path, "trace file", 100)
    assert time.monotonic() - t0 < 1


@pytest.mark.parametrize(("raw", "line", "says"), [
    (b"ok\n\xff\xfe\n", "line 2", "not valid UTF-8 (byte 3)"),
    (b"a\nb\nc\xed\xa0\x80\n", "line 3", "not valid UTF-8"),  # a surrogate encoded in UTF-8 (CESU)
    (b"prompt one\nprompt\x00two\n", "line 2", "holds a NUL byte"),
])
def test_bytes_that_are_not_utf8_text_are_refused_naming_the_line(tmp_path, raw, line, says):
    path = tmp_path / "prompts.txt"
    path.write_bytes(raw)
    with pytest.raises(HarnessInputError) as e:
        read_text(path, "prompt file", 1000)
    assert e.value.field == line and says in e.value.message


def test_a_byte_order_mark_is_dropped():
    assert decode(b"\xef\xbb\xbf{}", "f", "x") == "{}"


@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP,
                                  "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1)])
def test_json_nested_without_end_is_one_line(text):
    with pytest.raises(HarnessInputError, match=f"nested deeper than {MAX_NESTING} levels"):
        parse_json(text, "f.json", "results file")


def test_json_nested_to_the_limit_is_read():
    assert parse_json("[" * MAX_NESTING + "]" * MAX_NESTING, "f", "x") is not None


@pytest.mark.parametrize(("text", "says"), [
    ('{"a": 1' + "1" * 5000 + "}", "Exceeds the limit (4300 digits)"),
    ('{"a": 1,}', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_json_python_cannot_read_is_one_line(text, says):
    with pytest.raises(HarnessInputError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_json(text, "f", "x")


@pytest.mark.parametrize(("text", "where", "says"), [
    ('{"prompt": "a\\ud800b"}', "prompt", r"lone surrogate \(\\ud800\)"),
    ('{"p": ["ok", {"q": "\\udfff"}]}', "p[1].q", "lone surrogate"),
    ('{"na\\u0000me": 1}', "top level", "a key holds a NUL character"),
])
def test_strings_no_utf8_text_can_carry_are_refused_where_they_matter(text, where, says):
    with pytest.raises(HarnessInputError, match=says) as e:
        parse_json(text, "f", "x", strict=True)
    assert e.value.field == where
    assert parse_json(text, "f", "x", strict=False)  # a record the harness only reads keeps them


def test_a_paired_surrogate_or_an_escaped_backslash_is_no_lone_surrogate():
    assert parse_json('["\\ud83d\\ude00", "\\\\ud800"]', "f", "x", strict=True) == ["😀", "\\ud800"]


def test_load_json_wants_an_object_at_the_top(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(HarnessInputError) as e:
        load_json(tmp_path / "config.json", "model file", 100)
    assert e.value.line() == f"{tmp_path / 'config.json'}: model file is not a JSON object (got 'list')"


def test_json_lines_split_only_at_newlines(tmp_path):
    text = '{"prompt": "a\u2028b\u0085c"}\n\n{"prompt": "d"}\r\n'
    got = list(json_objects(tmp_path / "p.jsonl", lines(text), "an object"))
    assert got == [(1, {"prompt": "a\u2028b\u0085c"}), (3, {"prompt": "d"})]


def test_a_json_line_nested_without_end_names_its_line(tmp_path):
    with pytest.raises(HarnessInputError) as e:
        list(json_objects(tmp_path / "t.jsonl", ["{}", "[" * DEEP + "]" * DEEP], "an object"))
    assert e.value.field == "line 2" and "nested deeper" in e.value.message


@pytest.mark.parametrize(("text", "says"), [
    ("[" * DEEP + "]" * DEEP, "line 1: nested deeper than 64 levels"),
    ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)), "nested deeper than 64 levels"),
    ("a: &a [*a]\n", "an alias refers to the collection that holds it"),
    ("".join(f"a{i}: &a{i} [{f'*a{i - 1}' if i else 1}]\n" for i in range(100)),
     "nested deeper than 64 levels once its aliases are resolved"),
    ("a: &b0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]\n"
                                                           for i in range(1, 7)), "an alias bomb"),
    ("a: 1\nb: 2\na: 3\n", "line 3: key 'a' appears twice"),
    ("n: 1" + "1" * 5000 + "\n", "a value YAML cannot build: Exceeds the limit"),
    ("d: 2024-13-45\n", "a value YAML cannot build: month must be in 1..12"),
    ("x: !!python/object/apply:os.system [ls]\n", "malformed YAML: could not determine a constructor"),
    ("a: [1\n", "line 2, column 1: malformed YAML"),
    ('name: "a\\ud800"\n', r"name: a string holds a lone surrogate"),
    ('name: "a\\0b"\n', "name: a string holds a NUL character"),
])
def test_yaml_refused_in_one_line(text, says):
    with pytest.raises(HarnessInputError) as e:
        parse_yaml(text, "s.yaml", "suite file")
    assert says in e.value.line(), e.value.line()


def gguf(path: Path, version: int = 3, tensors: int = 0, kvs: int = 0, rest: bytes = b"", order: str = "<") -> Path:
    path.write_bytes(b"GGUF" + struct.pack(f"{order}IQQ", version, tensors, kvs) + rest)
    return path


@pytest.mark.parametrize(("head", "field", "says"), [
    (dict(kvs=2**60), "kv_count", "more metadata entries than"),
    (dict(tensors=2**40, rest=b"\0" * 100), "tensor_count", "more tensors than"),
    (dict(version=7), "version", "version not read here"),
])
def test_a_gguf_header_that_counts_more_than_its_file_holds_is_refused(tmp_path, head, field, says):
    with pytest.raises(HarnessInputError) as e:
        gguf_header(gguf(tmp_path / "m.gguf", **head))
    assert e.value.field == field and says in e.value.message


def test_a_gguf_header_is_read_in_either_byte_order(tmp_path):
    assert gguf_header(gguf(tmp_path / "le.gguf", kvs=2, rest=b"\0" * 26)).kvs == 2
    assert gguf_header(gguf(tmp_path / "be.gguf", kvs=2, rest=b"\0" * 26, order=">")).byte_order == ">"


@pytest.mark.parametrize(("raw", "says"), [(b"GGU", "cut short"), (b"PK\x03\x04" + b"\0" * 30, "not a GGUF file")])
def test_what_is_no_gguf_file_is_refused_from_its_first_bytes(tmp_path, raw, says):
    (tmp_path / "m.gguf").write_bytes(raw)
    with pytest.raises(HarnessInputError, match=says):
        gguf_header(tmp_path / "m.gguf")
