"""Every shipped suite expands to the cell keys recorded in tests/data/shipped_suite_keys.json (written by the
harness before its code was reorganized into layers): keys name results, baselines and history series, so a
change of a key is deliberate. Regenerate with `harness run suites/NAME.yaml --list` when a suite changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plan.suite import SUITES_DIR, expand, load_suite

ROOT = Path(__file__).resolve().parents[3]
RECORDED = json.loads((ROOT / "tests" / "data" / "shipped_suite_keys.json").read_text())


def test_every_shipped_suite_is_recorded():
    assert sorted(p.stem for p in SUITES_DIR.glob("*.yaml")) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_suite_expands_to_its_recorded_keys(name, monkeypatch):
    monkeypatch.delenv("HARNESS_SET", raising=False)
    path = SUITES_DIR / f"{name}.yaml"
    suite, _ = load_suite(path)
    assert [c.key for c in expand(suite, path)] == RECORDED[name]
