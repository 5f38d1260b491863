"""Hostile bytes and text through every loader of an outside file: each returns or raises HarnessInputError
(a GGUF file's reader: ModelPreparationError, the models layer's one line), never another exception.

Covered: 26 loaders x 40 Hypothesis examples = 1040 examples a run (bounded: deadline off, about 10 s here).

Each example is a whole file: random bytes; the loader's own well-formed document (a suite, a results.json, a
trace line, a GGUF file, ...) with one value replaced by a hostile fragment — a JSON value holding control
characters, lone surrogates (as \\ud800 escapes and raw), NUL, bidi overrides, very long strings; nesting 65 to
100000 levels deep; numbers of 5000 digits, 1e999999, NaN; bytes that are not UTF-8; YAML aliases that refer to
themselves or expand without end, unsafe tags — or that document with random bytes flipped or cut short.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.errors import HarnessInputError, ModelPreparationError
from tests.factories import result, run, sample, spec

EXAMPLES = 40
HOLE = "@@HOLE@@"

# ---------------------------------------------------------------- the loaders, each fed one file's bytes


def _write(d: Path, name: str, raw: bytes) -> Path:
    (d / name).write_bytes(raw)
    return d / name


def _suite(d: Path, raw: bytes) -> object:
    from harness.plan.suite_file import load_suite

    return load_suite(_write(d, "s.yaml", raw))


def _candidates(d: Path, raw: bytes) -> object:
    from harness.experiment.bisect import load_candidate_file
    from harness.plan.environments import EnvironmentSpec

    return load_candidate_file(_write(d, "c.yaml", raw), {"r1": EnvironmentSpec(name="r1", packages=["x==1"])})


def _trace(name: str) -> Callable[[Path, bytes], object]:
    def load(d: Path, raw: bytes) -> object:
        from harness.load.traces import read_trace

        return read_trace(_write(d, name, raw))
    return load


def _payloads(d: Path, raw: bytes) -> object:
    from harness.load.exports import read_payloads

    return read_payloads(_write(d, "p.jsonl", raw))


def _prompts(name: str) -> Callable[[Path, bytes], object]:
    def load(d: Path, raw: bytes) -> object:
        from harness.plan.cells import _load_prompt_file

        _write(d, name, raw)
        return _load_prompt_file(d / "s.yaml", name)
    return load


def _results(d: Path, raw: bytes) -> object:
    from harness.records.store import load_results

    return load_results(_write(d, "results.json", raw))


def _metadata(d: Path, raw: bytes) -> object:
    from harness.records.store import load_metadata

    _write(d, "metadata.json", raw)
    return load_metadata(d)


def _cells(d: Path, raw: bytes) -> object:
    from harness.records.store import scan_cells

    _write(d, "cells.jsonl", raw)
    return scan_cells(d)


def _ab(d: Path, raw: bytes) -> object:
    from harness.experiment.ab_session import load_ab

    return load_ab(_write(d, "ab.json", raw))


def _manifest(d: Path, raw: bytes) -> object:
    from harness.plan.environments import MANIFEST, _manifest

    (d / "bin").mkdir(exist_ok=True)
    (d / "bin" / "python").touch()
    _write(d, MANIFEST, raw)
    return _manifest(d)


def _probe(d: Path, raw: bytes) -> object:
    from harness.plan.environments import probe

    _write(d, "out", raw)
    fake = d / "python"
    if not fake.exists():
        fake.write_text(f"#!/bin/sh\ncat '{d / 'out'}'\n")
        fake.chmod(0o755)
    return probe(str(fake), "fuzz", d)


def _model_file(name: str, read: Callable[[Path], object]) -> Callable[[Path, bytes], object]:
    def load(d: Path, raw: bytes) -> object:
        _write(d, name, raw)
        return read(d)
    return load


def _export_task(d: Path) -> object:
    from harness.models.export import export_task

    return export_task(d)


def _channels(d: Path) -> object:
    from harness.models.prepare import model_channels

    return model_channels(d)


def _beyond_context(d: Path) -> object:
    from harness.execute.runner import beyond_context

    return beyond_context(spec(), str(d))


def _context_length(d: Path) -> object:
    from harness.serve.api.generation import context_length

    return context_length(d)


def _folder_check(d: Path) -> object:
    from harness.models.sources import check_model_files

    return check_model_files("hf_dir", d)


def _gguf_info(d: Path, raw: bytes) -> object:
    from harness.models.gguf import read_info

    return read_info(_write(d, "m.gguf", raw))


def _gguf_tokenizer(d: Path, raw: bytes) -> object:
    from harness.models.gguf import hf_tokenizer

    return hf_tokenizer(_write(d, "m.gguf", raw))


def _gguf_header(d: Path, raw: bytes) -> object:
    from harness.models.sources import check_model_files

    return check_model_files("gguf", _write(d, "m.gguf", raw))


def _set_value(_d: Path, raw: bytes) -> object:
    from harness.plan.overrides import parse_set

    # the command line's bytes as Python hands them over (undecodable bytes as lone surrogates)
    return parse_set("iterations=" + raw.decode("utf-8", "surrogateescape"), "--set")


class _Store:
    def __init__(self) -> None:
        self.value = ""

    def __call__(self, _db: object) -> _Store:
        return self

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def ab_json(self, _ref: str) -> str:
        return self.value

    def bisect_json(self, _key: str) -> str:
        return self.value


STORE = _Store()


def _history_ab(d: Path, raw: bytes) -> object:
    from harness.experiment.ab_session import find_ab

    STORE.value = raw.decode("utf-8", "replace")  # a database's text column holds text
    return find_ab(d / "no-such-ab", "sqlite:///fuzz.sqlite")


def _history_bisect(_d: Path, raw: bytes) -> object:
    from harness.experiment.bisect_steps import resume_or_start

    STORE.value = raw.decode("utf-8", "replace")
    return resume_or_start(STORE, "k", restart=False, retry_skipped=False, log=lambda _m: None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- each loader's own well-formed document

def _results_doc() -> dict[str, Any]:
    return run([result(spec(), [sample(0), sample(1)])]).model_dump(mode="json")


def _old_results_doc() -> dict[str, Any]:
    doc = _results_doc()
    doc["cells"][0]["check_outputs"] = {"f32:0": "[1, 2]", "repeat:0": "x", "greedy:0": "[3]",
                                        "tokenizer_parity": '{"matched": 1}'}
    return doc


def _ab_doc() -> dict[str, Any]:
    from harness.experiment.ab import ABResult, ABSettings, SideSpec

    return ABResult(ab_id="t", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b", candidate_run="c",
                    settings=ABSettings(), started_at="now").model_dump(mode="json")


def _bisect_doc() -> dict[str, Any]:
    return {"bisect_id": "b", "suite_name": "s", "suite_file": "s.yaml", "cell_key": "k", "metric": "tpot_ms",
            "candidates": [{"name": "a"}, {"name": "b"}], "out_dir": "o", "started_at": "now"}


def _gguf_bytes() -> bytes:
    import gguf

    d = Path(tempfile.mkdtemp())
    try:
        w = gguf.GGUFWriter(d / "m.gguf", "llama")
        w.add_name("tiny")
        w.add_block_count(2)
        w.add_embedding_length(64)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt2")
        w.add_token_list(["a", "b", "ab", "<s>"])
        w.add_token_types([1, 1, 1, 3])
        w.add_token_merges(["a b"])
        w.add_bos_token_id(3)
        w.add_chat_template("{{ messages }}")
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return (d / "m.gguf").read_bytes()
    finally:
        shutil.rmtree(d)


SUITE_DOC = {"name": "s", "models": [{"name": "m", "source": "synthetic:tiny"}],
             "scenarios": [{"name": "g", "kind": "generate"}], "prompts": {"input_tokens": [8]}, "iterations": 1}
CONFIG_DOC = {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 2048, "hidden_size": 64,
              "text_config": {"hidden_size": 64, "head_dim": 8, "num_attention_heads": 8}}
TRACE_LINE = {"t_s": 0.5, "input_tokens": 8, "output_tokens": 4, "hash_ids": [1, 2]}
PAYLOAD_LINE = {"warmup": False, "t_s": 0.1, "api": "chat", "body": {"messages": [{"role": "user", "content": "x"}]}}

# name -> (loader, what a well-formed file of it holds: a JSON value, "lines" of JSON values, text or bytes)
LOADERS: dict[str, tuple[Callable[[Path, bytes], object], Callable[[], Any]]] = {
    "plan.suite_file.load_suite": (_suite, lambda: SUITE_DOC),
    "experiment.bisect.load_candidate_file": (_candidates, lambda: [{"name": "a", "env": "r1"},
                                                                     {"name": "b", "packages": ["x==2"]}]),
    "load.traces.read_trace (JSON lines)": (_trace("t.jsonl"), lambda: ("lines", [TRACE_LINE, TRACE_LINE])),
    "load.traces.read_trace (Azure CSV)": (_trace("t.csv"), lambda: "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                           "2024-01-01 00:00:00.5,8,4\n2024-01-01 00:00:01,9," + HOLE + "\n"),
    "load.exports.read_payloads": (_payloads, lambda: ("lines", [PAYLOAD_LINE])),
    "plan.cells._load_prompt_file (.jsonl)": (_prompts("p.jsonl"), lambda: ("lines", [{"prompt": "x"}])),
    "plan.cells._load_prompt_file (.txt)": (_prompts("p.txt"), lambda: "first prompt\n" + HOLE + "\n"),
    "records.store.load_results": (_results, _results_doc),
    "records.store.load_results (a schema 1.6 cell's check outputs)": (_results, _old_results_doc),
    "records.store.load_metadata": (_metadata, lambda: _results_doc()["metadata"]),
    "records.store.scan_cells": (_cells, lambda: ("lines", _results_doc()["cells"])),
    "experiment.ab_session.load_ab": (_ab, _ab_doc),
    "experiment.ab_session.find_ab (a history database's record)": (_history_ab, _ab_doc),
    "experiment.bisect_steps.resume_or_start (a history database's record)": (_history_bisect, _bisect_doc),
    "plan.environments._manifest": (_manifest, lambda: {"format": 1, "versions": {"openvino": "x"}}),
    "plan.environments.probe (its stdout)": (_probe, lambda: ("lines", [{"openvino": "2026.4", "openvino-genai": None}])),
    "plan.overrides.parse_set (a --set value)": (_set_value, lambda: [1, {"a": "b"}]),
    "models.export.export_task (config.json)": (_model_file("config.json", _export_task), lambda: CONFIG_DOC),
    "models.export.export_task (model_index.json)": (_model_file("model_index.json", _export_task),
                                                     lambda: {"_class_name": "LTXPipeline"}),
    "models.prepare.model_channels": (_model_file("config.json", _channels), lambda: CONFIG_DOC),
    "execute.runner.beyond_context": (_model_file("config.json", _beyond_context), lambda: CONFIG_DOC),
    "serve.api.generation.context_length": (_model_file("config.json", _context_length), lambda: CONFIG_DOC),
    "models.sources.check_model_files (tokenizer.json)": (_model_file("tokenizer.json", _folder_check),
                                                          lambda: {"model": {"type": "BPE", "vocab": {"a": 0}}}),
    "models.sources.check_model_files (GGUF header)": (_gguf_header, _gguf_bytes),
    "models.gguf.read_info": (_gguf_info, _gguf_bytes),
    "models.gguf.hf_tokenizer": (_gguf_tokenizer, _gguf_bytes),
}
assert len(LOADERS) == 26  # the count the docstring gives
# the models layer's GGUF reader says what is wrong as ModelPreparationError (a cell's preparation fails in one
# line; `check_model_files` refuses the same header before any cell as HarnessInputError)
REFUSALS: dict[str, tuple[type[Exception], ...]] = {"models.gguf.read_info": (ModelPreparationError,),
                                                     "models.gguf.hf_tokenizer": (ModelPreparationError,)}

# ---------------------------------------------------------------- hostile fragments

SPECIALS = ["\ud800", "\udfff", "\ud83d", "\x00", "\x1b]0;pwned\x07", "\x1b[2J", "\r", "\u2028", "\u0085", "\u202e",
            "\ufeff", "|", "`", "<script>", "=cmd|' /C calc'!A0", "\\", '"', "'", "&a", "*a", "!!python/object:os.system",
            "{", "[", ":", "- ", "#", "\t"]
hostile_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(SPECIALS)), max_size=6).map("".join)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
              st.floats(allow_nan=True, allow_infinity=True), hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12)


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    n = draw(st.sampled_from([65, 100, 2000, 100_000]))
    kind = draw(st.sampled_from(["[]", "{}", "yaml"]))
    if kind == "[]":
        return b"[" * n + b"]" * n
    if kind == "{}":
        return b'{"a":' * n + b"1" + b"}" * n
    return b"".join(b"  " * i + b"- \n" for i in range(min(n, 300)))


def _json(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


fragments = st.one_of(
    st.builds(_json, json_values, st.booleans()),
    deep(),
    st.sampled_from([b"1" * 5000, b"-" + b"9" * 4301, b"1" + b"0" * 400, b"1e999999", b"-1e-999999", b"NaN", b"Infinity", b"0x1F",
                     b"2024-13-45", b"&a [*a]", b"!!python/object/apply:os.system [ls]", b"!!binary AAAA",
                     b'"' + b"a" * 200_000 + b'"', b'"\\ud800"', b'"\\u0000"', b"\xff\xfe", b"\xed\xa0\x80",
                     b"\xc0\x80", b"\x00", b"\r\n\r\n", b""]),
    st.binary(max_size=64),
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*at, i))


def _with_hole(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return HOLE
    head, *rest = path
    if isinstance(value, dict):
        return {k: _with_hole(v, tuple(rest)) if k == head else v for k, v in value.items()}
    return [_with_hole(v, tuple(rest)) if i == head else v for i, v in enumerate(value)]


def _serialized(doc: Any) -> bytes:
    if isinstance(doc, bytes):
        return doc
    if isinstance(doc, str):
        return doc.encode()
    if isinstance(doc, tuple):  # JSON lines
        return b"".join(json.dumps(x).encode() + b"\n" for x in doc[1])
    return json.dumps(doc, indent=1).encode()


@st.composite
def hostile_file(draw: st.DrawFn, base: Any) -> bytes:
    """One file's bytes: the loader's own document with one value replaced, that document damaged, or noise."""
    how = draw(st.sampled_from(["replace", "replace", "replace", "flip", "cut", "noise"]))
    if how == "noise":
        return draw(st.binary(max_size=512))
    if isinstance(base, bytes | str):  # a GGUF file, a CSV or text file: bytes flipped, cut, or a hole filled
        raw = _serialized(base)
        if HOLE.encode() in raw and how == "replace":
            return raw.replace(HOLE.encode(), draw(fragments))
    else:
        lines = isinstance(base, tuple)
        values = base[1] if lines else base
        path = draw(st.sampled_from(list(_paths(values))))
        holed = _with_hole(values, path)
        raw = _serialized(("lines", holed) if lines else holed)
        if how == "replace":
            return raw.replace(f'"{HOLE}"'.encode(), draw(fragments), 1)
        raw = raw.replace(f'"{HOLE}"'.encode(), b"null", 1) if path else _serialized(base)
    raw = raw.replace(HOLE.encode(), b"1")
    if how == "cut" or not raw:
        return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 8))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@contextmanager
def _folder() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="loader-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("name", list(LOADERS))
def test_every_loader_returns_or_refuses_in_one_line(name, monkeypatch):
    import harness.analyze.history as history

    monkeypatch.setattr(history, "HistoryStore", STORE)
    load, make_base = LOADERS[name]
    base = make_base()
    allowed = (HarnessInputError, *REFUSALS.get(name, ()))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(raw=hostile_file(base))
    def check(raw: bytes) -> None:
        with _folder() as d:
            try:
                load(d, raw)
            except allowed:
                pass

    check()
