"""Files and programs from outside the harness that are not what they should be: one line naming them, never a
traceback (an environment's version probe, a bisect candidates file, a results file nested without end)."""

from __future__ import annotations

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
    with pytest.raises(HarnessInputError, match="nested too deeply"):
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
