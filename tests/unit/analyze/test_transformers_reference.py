"""The transformers reference of plain greedy cells: where its choices part from OpenVINO's output, how the
check judges that, and where it shows (no OpenVINO or torch needed; the runs are in tests/integration/test_faults.py)."""

from __future__ import annotations

import numpy as np

from harness.core.schema import CheckOutputs, TokenDisagreement, TransformersReference
from harness.execute.transformers_reference import disagreements, not_scored, task_for
from harness.plan.validation import transformers_scored as applies
from reports.markdown import render_markdown
from tests.factories import result, run, sample, spec

V = 8  # vocabulary of the hand-made logits
EOS = 2


def logits(choices: list[int], runner_up: dict[int, tuple[int, float]] | None = None) -> np.ndarray:
    """Rows whose best token is choices[k] (logit 10), the others 0, or a runner-up that close below it."""
    rows = np.zeros((len(choices), V), dtype=np.float32)
    for k, c in enumerate(choices):
        rows[k, c] = 10.0
        if runner_up and k in runner_up:
            tok, gap = runner_up[k]
            rows[k, tok] = 10.0 - gap
    return rows


def facts(found: list[TokenDisagreement]) -> list[tuple]:
    """(position, OpenVINO's token, transformers' choice, gap to 4 places) of each disagreement."""
    return [(d.position, d.openvino, d.transformers, None if d.gap is None else round(d.gap, 4)) for d in found]


def test_equal_outputs_have_no_disagreement():
    # one row per generated token plus the one after the last
    assert disagreements(logits([5, 6, 7, 4]), [5, 6, 7], {EOS}, 3, 0, True) == []


def test_another_token_is_named_with_how_far_from_a_tie_it_is():
    found = disagreements(logits([5, 6, 7, 4], {1: (3, 0.01)}), [5, 3, 7], {EOS}, 3, 0, True)
    assert facts(found) == [(1, 3, 6, 0.01)]
    wrong = disagreements(logits([5, 6, 7, 4]), [5, 3, 7], {EOS}, 3, 0, True)
    assert facts(wrong) == [(1, 3, 6, 10.0)]


def test_under_ignore_eos_eos_is_a_token_like_any_other_and_stopping_early_is_wrong():
    # transformers' choice is EOS at position 1 and OpenVINO went on through it, as openvino-genai does
    assert disagreements(logits([5, EOS, 7, 4]), [5, EOS, 7], {EOS}, 3, 0, True) == []
    # OpenVINO stopping before max_new_tokens: no tie explains it
    short = disagreements(logits([5, EOS, 7]), [5, EOS], {EOS}, 3, 0, True)
    assert facts(short) == [(2, None, 7, None)]


def test_without_ignore_eos_an_output_ends_where_transformers_chooses_a_stop_token():
    # ended with EOS in the output, or just stopped (the stop token not streamed): both right
    assert disagreements(logits([5, EOS, 7]), [5, EOS], {EOS}, 3, 0, False) == []
    assert disagreements(logits([5, EOS]), [5], {EOS}, 3, 0, False) == []
    # stopped where transformers goes on: the gap to its best stop token
    early = disagreements(logits([5, 6], {1: (EOS, 0.5)}), [5], {EOS}, 3, 0, False)
    assert facts(early) == [(1, None, 6, 0.5)]
    # went on past a stop token
    past = disagreements(logits([5, EOS, 7, 4]), [5, EOS, 7], {EOS}, 3, 0, False)
    assert facts(past) == [(2, 7, None, None)]
    # longer than max_new_tokens
    long = disagreements(logits([5, 6, 7]), [5, 6], {EOS}, 1, 0, True)
    assert facts(long) == [(1, 6, None, None)]


def test_before_min_new_tokens_stop_tokens_are_out_of_the_choice():
    # EOS is transformers' best at position 0, but min_new_tokens=2 excludes it: the runner-up 6 is the choice
    assert disagreements(logits([EOS, 7, 4], {0: (6, 1.0)}), [6, 7], {EOS}, 2, 2, True) == []
    # an EOS emitted before min_new_tokens is wrong whatever the logits say
    found = disagreements(logits([EOS, 7, 4], {0: (6, 1.0)}), [EOS, 7], {EOS}, 2, 2, True)
    assert facts(found) == [(0, EOS, 6, None)]


def _scored(disagreements_=None, error=None, prompt_ids=None, input_tokens=None, cell=None, found=None, **spec_kw):
    """A plain greedy cell with two f32 outputs and their transformers reference (`found`, else one made here);
    `cell`: CellSpec fields to set."""
    found = found or TransformersReference(source="/hf", tokens={0: 4, 1: 4}, disagreements=disagreements_ or {},
                                           error=error, seconds=3.2)
    outs = CheckOutputs(f32_ids={0: [5, 6, 7, 4], 1: [5, 6, 7, 4]}, f32_prompt_ids=prompt_ids or {0: [1, 9], 1: [1, 8]},
                        f32_input_tokens=input_tokens or {0: 2, 1: 2}, transformers=found)
    return result(spec(**spec_kw).model_copy(update=cell or {}), [sample(0), sample(1)], check_outputs=outs)


def _check(r):
    return next((c for c in r.checks if c.name == "matches_transformers"), None)


def test_the_check_passes_equal_outputs_and_near_ties_and_fails_a_wrong_token():
    check = _check(_scored())
    assert check.status == "pass" and "2 f32 output(s), 8 tokens" in check.detail and "equal" in check.detail
    tie = TokenDisagreement(position=2, openvino=3, transformers=7, gap=0.004)
    check = _check(_scored({1: [tie]}))
    assert check.status == "pass", check.detail
    assert "near-ties within 0.05 nats: prompt 1 at token 2 (OpenVINO 3, transformers 7, 0.004 nats apart)" in check.detail
    wrong = TokenDisagreement(position=1, openvino=4, transformers=6, gap=7.5)
    check = _check(_scored({0: [wrong, tie]}))
    assert check.status == "fail"
    assert check.detail.startswith("prompt 0 at token 1: OpenVINO 4, transformers 6, 7.5 nats apart"), check.detail
    # the suite's tolerance decides what a near-tie is
    assert _check(_scored({0: [wrong]}, cell={"transformers_tolerance": 8.0})).status == "pass"
    stopped = TokenDisagreement(position=3, openvino=None, transformers=6, gap=None)
    check = _check(_scored({1: [stopped]}))
    assert check.status == "fail" and "prompt 1 at token 3: OpenVINO stopped, transformers 6" in check.detail


def test_the_check_fails_when_the_pipeline_fed_other_prompt_ids_than_its_tokenizer_gives():
    check = _check(_scored(input_tokens={0: 2, 1: 1}))
    assert check.status == "fail"
    assert "prompt 1: the pipeline counted 1 prompt tokens, its tokenizer gives 2" in check.detail


def test_the_check_is_not_run_with_the_reason_and_absent_where_it_does_not_apply():
    check = _check(_scored(error="the model source is an OpenVINO IR folder: no Hugging Face weights"))
    assert check.status == "not_run" and "IR folder" in check.detail
    assert _check(result(spec(), [sample(0)])).status == "not_run"  # nothing recorded
    assert _check(_scored(cell={"transformers_check": False})) is None
    assert _check(_scored(mode="sampling")) is None
    assert _check(result(spec("speculative"), [sample(0)])) is None  # matches_greedy's business


def test_which_cells_are_scored_and_why_not():
    assert applies(spec()) and not applies(spec("prompt_lookup"))
    assert not_scored(spec(), "/hf", None) is None
    assert "IR folder" in not_scored(spec(), None, None)
    assert "NNCF" in not_scored(spec(precision="int4"), "/hf", None)
    assert not_scored(spec(), None, "not found: x") == "not found: x"
    assert "no f32 validation outputs (RuntimeError: no f32)" in task_for(spec(), "/hf", CheckOutputs(
        f32_error="RuntimeError: no f32"))
    task = task_for(spec(), "/hf", CheckOutputs(f32_ids={0: [5]}, f32_prompt_ids={0: [1, 2], 3: [4]}))
    assert not isinstance(task, str) and task.prompts == {0: [1, 2]} and task.max_new_tokens == 4 and task.ignore_eos


def test_report_md_shows_the_check_and_its_detail():
    wrong = TokenDisagreement(position=1, openvino=4, transformers=6, gap=7.5)
    text = render_markdown(run([_scored(), _scored({0: [wrong]}, key="m/fp16/CPU/generate/in9-out4")]))
    assert "### Plain greedy against transformers" in text
    assert "| `m/fp16/CPU/generate/in8-out4` | pass | 2 f32 output(s), 8 tokens" in text
    assert "matches_transformers: fail" in text  # the scenario table's checks column
    assert "matches_transformers — prompt 0 at token 1: OpenVINO 4, transformers 6" in text  # failed checks


def test_a_result_for_the_same_inputs_is_reused_and_any_changed_input_scores_again(tmp_path, monkeypatch):
    """The key is the weights' content, the prompt and output ids and the libraries: a rerun on an unchanged model
    reads the kept result (saying when it was computed); other outputs or other weights run transformers again."""
    from harness.execute import transformers_reference as ref
    weights = tmp_path / "hf"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"weights")
    runs: list[dict[int, list[int]]] = []

    def scored(task, workdir, timeout_s):
        runs.append(task.outputs)
        return TransformersReference(source=task.source_dir, tokens={0: 4, 1: 4}, seconds=9.0)

    monkeypatch.setattr(ref, "_scored", scored)
    cache = tmp_path / "cache"

    def score(outputs: list[int]) -> TransformersReference:
        found = CheckOutputs(f32_ids={0: outputs}, f32_prompt_ids={0: [1, 2]})
        return ref.reference(spec(), str(weights), None, found, tmp_path, cache)

    first = score([5, 6])
    assert len(runs) == 1 and first.seconds == 9.0 and first.reused_from is None
    again = score([5, 6])
    assert len(runs) == 1 and again.reused_from and again.seconds is None and again.tokens == first.tokens
    assert "reused" in _check(_scored(found=again)).detail
    score([5, 7])  # OpenVINO's output changed: a fault must be scored, never read from an earlier run
    assert len(runs) == 2
    (weights / "model.safetensors").write_bytes(b"other weights")
    score([5, 6])
    assert len(runs) == 3
    for kept in (cache / "transformers-reference").iterdir():
        kept.write_text("{")  # damaged: scored again
    (weights / "model.safetensors").write_bytes(b"weights")
    score([5, 6])
    assert len(runs) == 4
