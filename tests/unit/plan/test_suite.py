from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import HarnessInputError
from harness.plan.suite import SUITES_DIR, expand, load_suite

BASE = """
name: t
models:
  - {name: m, source: synthetic:tiny, draft: synthetic:tiny-draft}
precisions: [fp16, int8, int4]
devices: [CPU, GPU]
prompts: {input_tokens: [16, 64]}
generation: {max_new_tokens: 8}
properties: {KV_CACHE_PRECISION: [u8, f16]}
scenarios:
  - {name: greedy, kind: generate}
  - {name: spec, kind: speculative, num_assistant_tokens: [2, 4]}
exclude:
  - {precision: int4, scenario: spec}
  - {device: GPU, KV_CACHE_PRECISION: f16}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def test_expansion_counts_keys_and_excludes(tmp_path):
    p = write(tmp_path, BASE)
    suite, sha = load_suite(p)
    cells = expand(suite, p)
    # per precision x device x input x kv: greedy 1 + spec 2 variants; int4 drops spec; GPU drops kv=f16
    full = 3 * 2 * 2 * 2 * 3
    int4_spec = 1 * 2 * 2 * 2 * 2
    gpu_f16 = 3 * 1 * 2 * 1 * 3 - 1 * 1 * 2 * 1 * 2  # minus the overlap already removed by int4 rule
    assert len(cells) == full - int4_spec - gpu_f16
    keys = [c.key for c in cells]
    assert len(set(keys)) == len(keys)
    assert "m/int8/CPU/spec[num_assistant_tokens=4]/in64-out8/KV_CACHE_PRECISION=u8" in keys
    assert not any(k.startswith("m/int4/") and "/spec[" in k for k in keys)
    assert not any("/GPU/" in k and "KV_CACHE_PRECISION=f16" in k for k in keys)
    assert len(sha) == 64


@pytest.mark.parametrize("transformers_check", [False, True])
def test_the_f32_pass_runs_only_where_a_check_reads_it(tmp_path, transformers_check):
    """matches_greedy reads a drafted cell's f32 outputs and its greedy cell's; matches_transformers the fp16
    greedy cell's. int4 greedy has no drafted cell here (excluded): nothing reads its pass."""
    p = write(tmp_path, BASE + f"transformers_check: {str(transformers_check).lower()}\n")
    cells = expand(load_suite(p)[0], p)
    passes = {c.key: c.validation_prompts for c in cells}
    assert {v for k, v in passes.items() if "/int4/" in k} == {0}
    assert {v for k, v in passes.items() if "/int4/" not in k} == {2}
    lone = write(tmp_path, BASE.replace("  - {name: spec, kind: speculative, num_assistant_tokens: [2, 4]}\n", "")
                 + f"transformers_check: {str(transformers_check).lower()}\n")
    passes = {c.key: c.validation_prompts for c in expand(load_suite(lone)[0], lone)}
    assert {v for k, v in passes.items() if "/fp16/" in k} == {2 if transformers_check else 0}
    assert {v for k, v in passes.items() if "/fp16/" not in k} == {0}


def test_a_scenario_may_load_once_where_the_suite_loads_twice(tmp_path):
    p = write(tmp_path, BASE.replace("num_assistant_tokens: [2, 4]}", "num_assistant_tokens: [2, 4], load_twice: false}"))
    twice = {c.scenario.kind: c.load_twice for c in expand(load_suite(p)[0], p)}
    assert twice == {"generate": True, "speculative": False}


def test_keys_are_stable_across_loads(tmp_path):
    p = write(tmp_path, BASE)
    a = [c.key for c in expand(load_suite(p)[0], p)]
    b = [c.key for c in expand(load_suite(p)[0], p)]
    assert a == b


def test_shipped_suites_validate():
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        suite, _ = load_suite(path)
        assert expand(suite, path), path


def test_smoke_suite_covers_precisions_and_scenarios():
    suite, _ = load_suite(SUITES_DIR / "smoke.yaml")
    cells = expand(suite, SUITES_DIR / "smoke.yaml")
    assert {c.precision for c in cells} == {"fp16", "int8", "int4"}
    assert {c.scenario.kind for c in cells} == {"generate", "speculative", "prompt_lookup"}


@pytest.mark.parametrize(
    "old,new,field,value",
    [
        ("precisions: [fp16, int8, int4]", "precisions: [fp16, int3]", "precisions[1]", "int3"),
        ("generation: {max_new_tokens: 8}", "generation: {max_new_tokens: -5}", "generation.max_new_tokens", -5),
        ("prompts: {input_tokens: [16, 64]}", "prompts: {input_tokens: [0]}", "prompts.input_tokens", None),
        ("devices: [CPU, GPU]", "devices: [CPU, TPU]", "devices", None),
        ("name: t", "name: t\niterations: 0", "iterations", 0),
        ("name: t", "name: t\nwarmpu: 1", "warmpu", 1),
        ("name: t", "name: t\niterations: many", "iterations", "many"),
    ],
)
def test_bad_input_names_file_field_value(tmp_path, old, new, field, value):
    p = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(HarnessInputError) as ei:
        load_suite(p)
    e = ei.value
    assert e.file == str(p)
    assert e.field == field
    if value is not None:
        assert e.value == value
        assert repr(value) in e.line()
    assert "\n" not in e.line()


def test_malformed_yaml_names_line(tmp_path):
    p = write(tmp_path, "name: t\nmodels: [\n  - x: {\n")
    with pytest.raises(HarnessInputError) as ei:
        load_suite(p)
    assert "malformed YAML" in ei.value.line()
    assert "line" in (ei.value.field or "")


def test_speculative_needs_draft(tmp_path):
    p = write(tmp_path, BASE.replace(", draft: synthetic:tiny-draft", ""))
    with pytest.raises(HarnessInputError, match="draft"):
        load_suite(p)


def test_unknown_exclude_axis(tmp_path):
    p = write(tmp_path, BASE.replace("- {precision: int4, scenario: spec}", "- {precison: int4}"))
    with pytest.raises(HarnessInputError, match="precison"):
        load_suite(p)


def test_param_for_wrong_kind(tmp_path):
    p = write(tmp_path, BASE.replace("{name: greedy, kind: generate}", "{name: greedy, kind: generate, max_ngram_size: 3}"))
    with pytest.raises(HarnessInputError, match="max_ngram_size"):
        load_suite(p)


def test_prompt_file_relative_to_suite(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "hello there"}\n{"prompt": "second"}\n')
    p = write(tmp_path, BASE.replace("prompts: {input_tokens: [16, 64]}", "prompts: {file: p.jsonl}"))
    cells = expand(load_suite(p)[0], p)
    assert cells[0].prompts.texts == ["hello there", "second"]
    assert "/prompts=p-out8" in cells[0].key


def test_missing_prompt_file(tmp_path):
    p = write(tmp_path, BASE.replace("prompts: {input_tokens: [16, 64]}", "prompts: {file: nope.txt}"))
    with pytest.raises(HarnessInputError) as ei:
        expand(load_suite(p)[0], p)
    assert ei.value.field == "prompts.file" and ei.value.value == "nope.txt"


STACK = """
name: stack
models:
  - {name: llm, source: synthetic:tiny}
  - {name: emb, source: synthetic:tiny-embed}
precisions: [fp16, int8]
scenarios:
  - {name: greedy, kind: generate, models: [llm]}
  - {name: cb, kind: continuous_batching, models: [llm], concurrency: [1, 2, 4], enable_prefix_caching: [true, false]}
  - {name: embed, kind: embeddings, models: [emb], batch_size: [1, 8], pooling: mean}
  - {name: tok, kind: tokenizer}
exclude:
  - {kind: tokenizer, precision: int8}
"""


def test_scenarios_run_on_their_models_and_sweep_their_params(tmp_path):
    cells = expand(load_suite(write(tmp_path, STACK))[0], tmp_path / "suite.yaml")
    kinds = {}
    for c in cells:
        kinds.setdefault(c.scenario.kind, []).append(c)
    assert {c.model.name for c in kinds["continuous_batching"] + kinds["generate"]} == {"llm"}
    assert len(kinds["generate"]) == 2 and len(kinds["continuous_batching"]) == 2 * 3 * 2
    assert {c.model.name for c in kinds["embeddings"]} == {"emb"} and len(kinds["embeddings"]) == 4
    assert sorted(c.model.name for c in kinds["tokenizer"]) == ["emb", "llm"]
    assert "cb[concurrency=4,enable_prefix_caching=false]" in next(
        c.key for c in kinds["continuous_batching"] if c.scenario.params == {"concurrency": 4, "enable_prefix_caching": False})


@pytest.mark.parametrize("old,new,match", [
    ("models: [llm], concurrency", "models: [nope], concurrency", "nope"),
    ("pooling: mean", "pooling: max", "pooling"),
    ("concurrency: [1, 2, 4]", "concurrency: [1, 0]", "concurrency"),
    ("{name: greedy, kind: generate, models: [llm]}", "{name: greedy, kind: generate, batch_size: 2}", "batch_size"),
    ("{name: greedy, kind: generate, models: [llm]}", "{name: s, kind: serving, api: chat, batch_size: 2}",
     "batch_size .*embeddings or rerank"),
    ("{name: greedy, kind: generate, models: [llm]}", "{name: s, kind: serving, api: grpc}", "api"),
])
def test_bad_stack_scenarios_name_the_field(tmp_path, old, new, match):
    with pytest.raises(HarnessInputError, match=match):
        load_suite(write(tmp_path, STACK.replace(old, new)))


def test_every_shipped_suite_lists_its_cells():
    from tests.conftest import ROOT, run_cli

    for path in sorted((ROOT / "suites").glob("*.yaml")):
        proc = run_cli("run", str(path), "--list")
        assert proc.returncode == 0, (path, proc.stderr)
        keys = proc.stdout.split()
        assert keys and len(keys) == len(set(keys)) and f"{len(keys)} cells" in proc.stderr


@pytest.mark.parametrize("new,needle", [
    ("generation: {max_new_tokens: 100000000000000000000}", "generation: max_new_tokens"),
    ("name: t\niterations: 99999999999999999999999", "iterations"),
    ("name: t\nwarmup: 2147483648", "warmup"),
    ("name: t\ntimeout_s: 1.0e+308", "timeout_s"),
    ("name: t\ntimeout_s: .inf", "not a finite number"),
    ("name: t\nmin_measure_s: .nan", "not a finite number"),
    ("name: t\nprocesses: -99999999999999999999", "processes"),
    ("prompts: {input_tokens: [16, 100000000000000000000]}", "input_tokens"),
    ("generation: {max_new_tokens: 8, seed: 100000000000000000000000}", "seed"),
])
def test_huge_and_non_finite_numbers_are_refused(tmp_path, new, needle):
    old = ("name: t" if new.startswith("name: t") else new.split(":")[0] + ": " + BASE.split(
        new.split(":")[0] + ": ")[1].splitlines()[0])
    text = BASE.replace(old, new)
    assert text != BASE
    with pytest.raises(HarnessInputError) as ei:
        load_suite(write(tmp_path, text))
    line = ei.value.line()
    assert "\n" not in line and ("beyond the largest" in line or "finite" in line), line
    if not new.startswith("prompts"):
        assert needle in line


def test_the_largest_seed_is_allowed(tmp_path):
    load_suite(write(tmp_path, BASE.replace("generation: {max_new_tokens: 8}",
                                            "generation: {max_new_tokens: 8, seed: 18446744073709551615}")))


@pytest.mark.parametrize("text", [
    "name: t\nname: u\n",
    "name: t\nmodels: [{name: m, source: synthetic:tiny, source: synthetic:small}]\n",
    "name: t\nscenarios:\n  - {name: g, kind: generate, kind: speculative}\n",
])
def test_a_key_written_twice_is_refused(tmp_path, text):
    with pytest.raises(HarnessInputError) as ei:
        load_suite(write(tmp_path, text))
    assert "appears twice" in ei.value.line() and "line " in ei.value.line()
