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
