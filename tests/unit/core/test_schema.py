from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from harness.core.schema import SCHEMA_VERSION, RunResults
from harness.records.result_schema import json_schema
from tests.factories import result, run, sample, spec

ROOT = Path(__file__).resolve().parents[3]


def test_exported_schema_is_current():
    committed = json.loads((ROOT / "schema" / "results.schema.json").read_text())
    assert committed == json_schema(), "re-export with `harness schema --out schema/results.schema.json`"


def test_results_round_trip_and_validate():
    res = run([result(spec(), [sample(0), sample(1)])])
    data = json.loads(res.model_dump_json())
    jsonschema.validate(data, json_schema())
    assert RunResults.model_validate(data) == res
    assert data["schema_version"] == SCHEMA_VERSION


def test_gate_checks_carry_their_gate_and_older_results_read_theirs_from_the_name():
    from harness.core.schema import CheckResult, Gate

    old = CheckResult.model_validate({"name": "gate: ttft_ms p90 >= 1 and <= 50", "status": "pass", "detail": "p90 9"})
    assert old.gate == Gate(metric="ttft_ms", stat="p90", min=1.0, max=50.0)
    assert CheckResult.model_validate({"name": "gate: token_match_pct median >= 75", "status": "fail"}).gate == \
        Gate(metric="token_match_pct", min=75.0)
    assert CheckResult.model_validate({"name": "repeat_determinism", "status": "pass"}).gate is None
    new = CheckResult(name="gate: x", status="pass", gate=Gate(metric="tpot_ms", max=5))
    assert CheckResult.model_validate_json(new.model_dump_json()).gate == Gate(metric="tpot_ms", max=5)


def test_check_outputs_written_before_1_7_read_into_typed_fields():
    from harness.core.schema import CheckOutputs

    old = {"repeat:3": "text again", "f32:0": "[5, 6]", "f32_error": "no f32", "image:2": "[[[1, 2, 3]]]",
           "image_repeat:2": "[[[1, 2, 4]]]", "embeddings:8": "[[0.5, 0.25]]",
           "tokenizer_parity": json.dumps({"texts": 3, "encode_mismatches": 1, "decode_mismatches": 0,
                                           "encode_examples": [{"text": 1, "special_tokens": True, "at": 4,
                                                                "text_start": "ab"}],
                                           "decode_examples": [], "errors": [2]}),
           "serving_errors": '{"counts": {"timeout": 2}, "first": ["request 1: timeout: slow"]}',
           "server_metrics_delta": '{"ovms_requests_accepted_total": 9.0}'}
    got = CheckOutputs.model_validate(old)
    assert got.repeat_texts == {3: "text again"} and got.f32_ids == {0: [5, 6]} and got.f32_error == "no f32"
    assert got.first_outputs == {2: [[[1, 2, 3]]], 8: [[0.5, 0.25]]} and got.repeat_outputs == {2: [[[1, 2, 4]]]}
    assert got.tokenizer_parity is not None and got.tokenizer_parity.encode_examples[0].at == 4
    assert got.serving_errors is not None and got.serving_errors.counts == {"timeout": 2}
    assert got.server_metrics_delta == {"ovms_requests_accepted_total": 9.0}
    # and the typed form round-trips through JSON (integer keys become strings and back)
    assert CheckOutputs.model_validate_json(got.model_dump_json()) == got


def test_merged_check_outputs_keep_the_first_workers_entries():
    from harness.core.schema import CheckOutputs

    a = CheckOutputs(repeat_texts={0: "a"}, f32_error=None)
    b = CheckOutputs(repeat_texts={0: "b", 1: "c"}, f32_error="x")
    assert a.merged(b) == CheckOutputs(repeat_texts={0: "a", 1: "c"}, f32_error="x")
