"""Files and programs from outside the harness that are not what they should be: one line naming them, never a
traceback (an environment's version probe, a bisect candidates file, a results file nested without end)."""

from __future__ import annotations

import re

import pytest

from harness.core.errors import HarnessInputError
from harness.experiment.bisect import load_candidate_file
from harness.plan.environments import probe
from harness.records.store import load_results


@pytest.mark.parametrize("prints", ["hello", "{not json", "[1, 2]", ""])
def test_an_interpreter_whose_probe_prints_no_json_object_is_one_line(tmp_path, prints):
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{prints}'\n")
    fake.chmod(0o755)
    with pytest.raises(HarnessInputError, match="version probe printed"):
        probe(str(fake), "broken", tmp_path)


def test_a_candidates_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "candidates.yaml"
    path.write_bytes(b"- name: a\n  env: \xff\xfe\n")
    with pytest.raises(HarnessInputError, match="not valid UTF-8"):
        load_candidate_file(path, {})


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_results_file_nested_without_end_is_one_line(tmp_path, text):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(HarnessInputError, match="nested deeper than 64 levels"):
        load_results(path)


def test_a_hanging_interpreter_is_waited_for_out_loud_and_bounded(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    said: list[str] = []
    with pytest.raises(HarnessInputError, match="did not answer within 0.5 s"):
        probe(str(fake), "stuck", tmp_path, log=said.append, timeout_s=0.5)
    assert said and "stuck" in said[0] and "up to 0.5 s" in said[0]


@pytest.mark.parametrize(("input_tokens", "new", "refused"), [(128, 64, False), (4000, 96, False),
                                                             (128, 1_000_000_000, True), (4000, 97, True)])
def test_a_text_cell_beyond_the_models_context_is_refused_before_measuring(tmp_path, input_tokens, new, refused):
    import json

    from harness.execute.runner import beyond_context
    from tests.factories import spec

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    cell = spec()
    cell.prompts.input_tokens, cell.generation.max_new_tokens = input_tokens, new
    why = beyond_context(cell, str(tmp_path))
    assert (why is not None) == refused and (not refused or "context of 4096" in why)
    assert beyond_context(cell, str(tmp_path / "no-config")) is None  # unknown context: nothing refused


def test_an_exclude_naming_an_undeclared_environment_is_refused(tmp_path):
    from harness.plan.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n"
                     "environments: [{name: old, packages: [openvino-genai==2026.3.1]}]\nexclude: [{env: olld}]\n")
    with pytest.raises(HarnessInputError, match="environment 'olld', which the suite does not declare"):
        load_suite(suite)


def test_a_second_fault_for_one_cell_is_refused():
    from harness.execute.session import parse_faults

    with pytest.raises(HarnessInputError, match="a second fault for the cell; it has crash"):
        parse_faults(["k=crash", "k=hang"], {"k"})


def test_an_empty_prompt_length_axis_is_named_not_blamed_on_exclude(tmp_path):
    from harness.plan.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n"
                     "prompts: {input_tokens: []}\n")
    with pytest.raises(HarnessInputError, match="input_tokens is empty") as e:
        load_suite(suite)
    assert "exclude" not in str(e.value)


# ---------------------------------------------------------------- every outside file through the one loader

DEEP = 100_000
SUITE = "name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n"


def _sparse(path, size):
    with path.open("wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, "a: " + "{b: " * DEEP + "1" + "}" * DEEP])
def test_a_suite_nested_without_end_is_one_line(tmp_path, text):
    """Before: RecursionError from PyYAML's composer."""
    from harness.plan.suite_file import load_suite

    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(HarnessInputError, match="nested deeper than 64 levels"):
        load_suite(tmp_path / "s.yaml")


def test_a_suite_over_its_limit_is_refused_from_its_size(tmp_path):
    """Before: read whole (4 MiB of NUL bytes here) and parsed."""
    from harness.core.input_files import MAX_SUITE_BYTES
    from harness.plan.suite_file import load_suite

    with pytest.raises(HarnessInputError, match="suite file larger than 4 MiB"):
        load_suite(_sparse(tmp_path / "s.yaml", MAX_SUITE_BYTES + 1))


@pytest.mark.parametrize(("text", "says"), [("prompts: {input_tokens: [1" + "1" * 5000 + "]}\n", "Exceeds the limit"),
                                            ('description: "a\\ud800"\n', "lone surrogate")])
def test_a_suite_value_python_cannot_hold_is_one_line(tmp_path, text, says):
    """Before: ValueError (an int of 5001 digits); a lone surrogate reached the run's metadata."""
    from harness.plan.suite_file import load_suite

    (tmp_path / "s.yaml").write_text(SUITE + text)
    with pytest.raises(HarnessInputError, match=says):
        load_suite(tmp_path / "s.yaml")


def _prompt_suite(tmp_path, name, raw: bytes):
    from harness.plan.cells import expand
    from harness.plan.suite_file import load_suite

    (tmp_path / name).write_bytes(raw)
    (tmp_path / "s.yaml").write_text(SUITE + f"prompts: {{file: {name}}}\n")
    suite, _ = load_suite(tmp_path / "s.yaml")
    return lambda: expand(suite, tmp_path / "s.yaml")


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("p.jsonl", b'{"prompt": "ok"}\n' + b"[" * DEEP + b"]" * DEEP + b"\n", "line 2: record nested deeper than 64"),
    ("p.jsonl", b'{"prompt": "half an emoji \\ud83d"}\n', "line 1: prompt: a string holds a lone surrogate"),
    ("p.txt", b"one prompt\nanother\x00with a NUL\n", "line 2: prompt file holds a NUL byte"),
])
def test_a_prompt_file_that_cannot_be_a_prompt_set_is_one_line(tmp_path, name, raw, says):
    """Before: RecursionError for the deep line; the lone surrogate and the NUL byte were taken as prompts."""
    with pytest.raises(HarnessInputError) as e:
        _prompt_suite(tmp_path, name, raw)()
    assert says in e.value.line(), e.value.line()


def test_a_prompt_file_over_its_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    from harness.plan import cells

    monkeypatch.setattr(cells, "MAX_PROMPT_FILE_BYTES", 100)
    expand = _prompt_suite(tmp_path, "p.txt", b"a prompt\n" * 12)
    with pytest.raises(HarnessInputError, match="prompt file larger than 100 bytes"):
        expand()


@pytest.mark.parametrize(("text", "says"), [
    ("- name: a\n  env: " + "[" * DEEP + "]" * DEEP + "\n", "nested deeper than 64 levels"),
    ("- name: 1" + "1" * 5000 + "\n", "Exceeds the limit"),
    ("- name: &a [*a]\n", "an alias refers to the collection that holds it"),
])
def test_a_candidates_file_that_cannot_be_read_is_one_line(tmp_path, text, says):
    """Before: RecursionError's own words, or ValueError from PyYAML's int constructor (a traceback)."""
    path = tmp_path / "candidates.yaml"
    path.write_text(text)
    with pytest.raises(HarnessInputError, match=says):
        load_candidate_file(path, {})


def _fake_python(tmp_path, stdout: bytes):
    (tmp_path / "out").write_bytes(stdout)
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ncat '{tmp_path / 'out'}'\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.parametrize(("stdout", "says"), [
    (b'{"openvino": "2026.\xff"}\n', "not valid UTF-8"),
    (b'{"openvino": ["2026.4"]}\n', "version probe printed"),
    (b"[" * DEEP + b"]" * DEEP + b"\n", "nested deeper than 64 levels"),
    (b'{"openvino\\u0000": "1"}\n', "a key holds a NUL character"),
])
def test_a_probe_that_prints_no_versions_is_one_line(tmp_path, stdout, says):
    """Before: UnicodeDecodeError from subprocess; a list taken as a version."""
    with pytest.raises(HarnessInputError, match=says):
        probe(_fake_python(tmp_path, stdout), "odd", tmp_path)


@pytest.mark.parametrize("raw", [b"[1, 2]", b"\xff", b"[" * DEEP + b"]" * DEEP, b'{"format": 1, "versions": 3}'])
def test_a_damaged_environment_manifest_is_a_build_to_do_again(tmp_path, raw):
    """Before: AttributeError ('list' object has no attribute 'get'), RecursionError."""
    from harness.plan.environments import ENV_FORMAT, MANIFEST, _manifest

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").touch()
    (tmp_path / MANIFEST).write_bytes(raw.replace(b'"format": 1', f'"format": {ENV_FORMAT}'.encode()))
    assert _manifest(tmp_path) is None


def test_a_set_value_nested_without_end_is_one_line():
    """Before: RecursionError from PyYAML's composer."""
    from harness.plan.overrides import parse_set

    with pytest.raises(HarnessInputError, match="--set: iterations: line 1: nested deeper than 64 levels"):
        parse_set("iterations=" + "[" * DEEP, "--set")


@pytest.mark.parametrize("name", ["my model+lora", "Llama 3.2 1B (q4)", "модель", "a/b"])
def test_a_folder_name_is_a_model_name_and_cell_keys_stay_plain(tmp_path, name):
    """Before: refused ('String should match pattern ^[A-Za-z0-9_.-]+$')."""
    from harness.plan.cells import expand
    from harness.plan.suite_file import load_suite

    folder = tmp_path / name.replace("/", "_")
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (tmp_path / "s.yaml").write_text(f'name: s\nmodels: [{{name: "{name}", source: "{folder}"}}]\n'
                                     "scenarios: [{name: g, kind: generate}]\nprecisions: [fp16]\n")
    suite, _ = load_suite(tmp_path / "s.yaml")
    cells = expand(suite, tmp_path / "s.yaml")
    assert [c.model.name for c in cells] == [name]
    head = cells[0].key.split("/")[0]
    assert re.fullmatch(r"[\w.-]+", head) and cells[0].key.count("/") == 4, cells[0].key


@pytest.mark.parametrize(("models", "says"), [
    ('[{name: "a b", source: synthetic:tiny}, {name: a_b, source: synthetic:tiny}]', "would share cell keys ('a_b')"),
    ('[{name: "a\\x1b[2Jb", source: synthetic:tiny}]', "without control characters"),
    ('[{name: "  ", source: synthetic:tiny}]', "not blank"),
])
def test_model_names_that_would_share_keys_or_rewrite_a_terminal_are_refused(tmp_path, models, says):
    from harness.plan.suite_file import load_suite

    (tmp_path / "s.yaml").write_text(f"name: s\nmodels: {models}\nscenarios: [{{name: g, kind: generate}}]\n")
    with pytest.raises(HarnessInputError, match=re.escape(says)):
        load_suite(tmp_path / "s.yaml")


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("tokenizer.json", b'{"model": "\xff"}', "model file not valid UTF-8"),
    ("config.json", b"[" * DEEP + b"]" * DEEP, "model file nested deeper than 64 levels"),
    ("generation_config.json", b"[1]", "model file is not a JSON object"),
])
def test_a_model_folder_whose_files_cannot_be_read_is_refused_before_any_cell(tmp_path, name, raw, says):
    """Before: nothing looked; the cells failed one by one in their workers (or the tokenizer conversion)."""
    from harness.plan.cells import expand
    from harness.plan.source_checks import validate_sources
    from harness.plan.suite_file import load_suite

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / name).write_bytes(raw)
    (tmp_path / "s.yaml").write_text(f"name: s\nmodels: [{{name: m, source: {folder}}}]\n"
                                     "scenarios: [{name: g, kind: generate}]\nprecisions: [fp16]\n")
    suite, _ = load_suite(tmp_path / "s.yaml")
    with pytest.raises(HarnessInputError) as e:
        validate_sources(expand(suite, tmp_path / "s.yaml"), tmp_path / "s.yaml", suite, lambda _m: None)
    assert e.value.file == str(folder / name) and says in e.value.message
