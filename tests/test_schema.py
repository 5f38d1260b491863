from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from harness.schema import SCHEMA_VERSION, RunResults, json_schema
from tests.factories import result, run, sample, spec

ROOT = Path(__file__).resolve().parent.parent


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
    from harness.schema import CheckResult, Gate

    old = CheckResult.model_validate({"name": "gate: ttft_ms p90 >= 1 and <= 50", "status": "pass", "detail": "p90 9"})
    assert old.gate == Gate(metric="ttft_ms", stat="p90", min=1.0, max=50.0)
    assert CheckResult.model_validate({"name": "gate: token_match_pct median >= 75", "status": "fail"}).gate == \
        Gate(metric="token_match_pct", min=75.0)
    assert CheckResult.model_validate({"name": "repeat_determinism", "status": "pass"}).gate is None
    new = CheckResult(name="gate: x", status="pass", gate=Gate(metric="tpot_ms", max=5))
    assert CheckResult.model_validate_json(new.model_dump_json()).gate == Gate(metric="tpot_ms", max=5)
