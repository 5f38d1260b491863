from __future__ import annotations

from harness.analyze.checks import run_level_checks
from harness.core.schema import CheckOutputs
from tests.factories import result, sample, spec


def _checks(r):
    return {c.name: c for c in r.checks}


def test_exact_token_count_fails_on_short_output():
    r = result(spec(), [sample(0), sample(1, chunks=(10.0, 11.0))])
    c = _checks(r)["exact_token_count"]
    assert c.status == "fail" and "(1, 2, 4)" in c.detail


def test_exact_token_count_uses_what_each_request_asked_for():
    asked_two = sample(1, chunks=(10.0, 11.0))
    asked_two.readings["max_tokens"] = 2
    assert _checks(result(spec(), [sample(0), asked_two]))["exact_token_count"].status == "pass"
    asked_two.readings["max_tokens"] = 3
    assert _checks(result(spec(), [sample(0), asked_two]))["exact_token_count"].status == "fail"


def test_repeat_determinism():
    same = result(spec(), [sample(0, text="x")], check_outputs=CheckOutputs(repeat_texts={0: "x"}))
    assert _checks(same)["repeat_determinism"].status == "pass"
    diff = result(spec(), [sample(0, text="x")], check_outputs=CheckOutputs(repeat_texts={0: "y"}))
    assert _checks(diff)["repeat_determinism"].status == "fail"


def test_matches_greedy_across_cells():
    ref = result(spec("generate"), [sample(0, text="a"), sample(1, text="b")])
    good = result(spec("speculative"), [sample(0, text="a"), sample(1, text="b")])
    bad = result(spec("prompt_lookup"), [sample(0, text="a"), sample(1, text="X")])
    other = result(spec("speculative", precision="int8"), [sample(0, text="a")])
    cells = {c.key: c for c in run_level_checks([ref, good, bad, other])}
    assert _checks(cells[good.key])["matches_greedy"].status == "pass"
    failed = _checks(cells[bad.key])["matches_greedy"]
    assert failed.status == "fail" and "prompt 1 at character 0" in failed.detail
    assert _checks(cells[other.key])["matches_greedy"].status == "not_run"
    assert "matches_greedy" not in _checks(cells[ref.key])


def test_sampling_cells_are_not_compared():
    ref = result(spec("generate", mode="sampling"), [sample(0, text="a")])
    spec_cell = result(spec("speculative", mode="sampling"), [sample(0, text="z")])
    cells = run_level_checks([ref, spec_cell])
    assert all("matches_greedy" not in _checks(c) for c in cells)


def test_first_divergence():
    from harness.analyze.checks import first_divergence

    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2


def test_unreadable_worker_record_fails_the_cell_and_keeps_the_rest():
    from harness.analyze.aggregate import cell_result
    from harness.core.events import SampleEvent, parse_event

    s = spec()
    events = [SampleEvent(sample=sample(i)) for i in range(3)]
    events.append(parse_event({"event": "batch", "batch": {"iteration": 0, "from_a_newer_worker": 1}}))
    r = cell_result(s, events, "ok", None, "t0", "t1", 1.0)
    assert r.status == "failed" and "batch record unreadable" in r.error
    assert len(r.samples) == 3 and r.summaries["ttft_ms"].n == 3


def test_reencoded_ids_are_compared_as_text():
    # the model generated "9","9" where re-encoding the text gives "99": same output, different ids
    ref = sample(0, text="a99")
    ref.output_ids, ref.output_ids_source = [7, 99], "reencoded"
    cand = sample(0, text="a99")
    cand.output_ids = [7, 9, 9]
    cells = {c.key: c for c in run_level_checks([result(spec("generate"), [ref]), result(spec("speculative"), [cand])])}
    check = _checks(cells[spec("speculative").key])["matches_greedy"]
    assert check.status == "pass", check.detail
    cand.output_text = "a98"
    cells = {c.key: c for c in run_level_checks([result(spec("generate"), [ref]), result(spec("speculative"), [cand])])}
    assert "at character 2" in _checks(cells[spec("speculative").key])["matches_greedy"].detail


def test_records_without_ids_source_read_as_reencoded_when_no_streamer_ran():
    from harness.records.result_schema import read_cell

    r = result(spec("generate"), [sample(0)])
    data = r.model_dump()
    for s in data["samples"]:
        s.pop("output_ids_source")
        s["output_ids"] = [1, 2]
    assert read_cell(data).samples[0].output_ids_source == "generated"  # a streamer ran
    data["spec"]["token_timing"] = "genai"
    assert read_cell(data).samples[0].output_ids_source == "reencoded"
    data["samples"][0]["output_ids_source"] = "generated"  # written by a harness that knew
    assert read_cell(data).samples[0].output_ids_source == "generated"


def _with_f32(r, outputs: dict[int, list[int]], error: str | None = None):
    from harness.core.schema import CheckOutputs

    return r.model_copy(update={"check_outputs": r.check_outputs.merged(CheckOutputs(f32_ids=outputs,
                                                                                     f32_error=error))})


def test_matches_greedy_is_judged_on_the_f32_outputs_when_both_cells_have_them():
    ref = _with_f32(result(spec("generate"), [sample(0, text="a"), sample(1, text="b")]), {0: [5, 6, 7], 1: [8, 9]})
    # timed (bf16) output of prompt 1 parted at a near-tie; at f32 the outputs are equal: pass, reported
    near_tie = _with_f32(result(spec("speculative"), [sample(0, text="a"), sample(1, text="bX")]),
                         {0: [5, 6, 7], 1: [8, 9]})
    check = _checks({c.key: c for c in run_level_checks([ref, near_tie])}[near_tie.key])["matches_greedy"]
    assert check.status == "pass", check.detail
    assert "at f32, 2 outputs equal" in check.detail and "1/2 equal" in check.detail and "prompt 1" in check.detail
    # a wrong token at f32 fails even when the timed texts happen to agree
    wrong = _with_f32(result(spec("speculative"), [sample(0, text="a"), sample(1, text="b")]), {0: [5, 4, 7], 1: [8, 9]})
    check = _checks({c.key: c for c in run_level_checks([ref, wrong])}[wrong.key])["matches_greedy"]
    assert check.status == "fail" and "prompt 0 at token 1" in check.detail, check.detail
    # a dropped last token (a prefix) is a divergence too
    short = _with_f32(result(spec("speculative"), [sample(0, text="a")]), {0: [5, 6], 1: [8, 9]})
    check = _checks({c.key: c for c in run_level_checks([ref, short])}[short.key])["matches_greedy"]
    assert check.status == "fail" and "prompt 0 at token 2" in check.detail, check.detail


def test_matches_greedy_falls_back_to_timed_outputs_and_says_why():
    ref = _with_f32(result(spec("generate"), [sample(0, text="a")]), {}, error="RuntimeError: f32 unsupported")
    cand = result(spec("speculative"), [sample(0, text="a"), sample(0, text="Z")])  # one wrong repeat of a prompt
    check = _checks({c.key: c for c in run_level_checks([ref, cand])}[cand.key])["matches_greedy"]
    assert check.status == "fail" and "1/2 outputs diverge" in check.detail
    assert "no f32 validation outputs: RuntimeError: f32 unsupported" in check.detail
