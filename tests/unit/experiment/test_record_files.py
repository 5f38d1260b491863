"""A/B and bisect records read back (an ab.json, or a history database's copy of either) through the one
loader: a record that is not one is one line naming where it was read, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import HarnessInputError
from harness.experiment import ab_session
from harness.experiment.ab_session import find_ab, load_ab

DEEP = 100_000


@pytest.mark.parametrize(("raw", "says"), [
    (b"[" * DEEP + b"]" * DEEP, "A/B record nested deeper than 64 levels"),
    (b"[1, 2]", "A/B record is not a JSON object (got 'list')"),
    (b'{"ab_id": "\xff"}', "line 1: A/B record not valid UTF-8 (byte 11)"),
    (b"{}", "ab_id: not an A/B record: Field required (+"),
])
def test_an_ab_json_that_is_not_a_record_is_one_line(tmp_path, raw, says):
    """Before: 'not an A/B record: 1 validation error for ABResult' for every one of these (pydantic's first
    line, not what is wrong)."""
    (tmp_path / "ab.json").write_bytes(raw)
    with pytest.raises(HarnessInputError) as e:
        load_ab(tmp_path)
    assert e.value.line().startswith(f"{tmp_path / 'ab.json'}: {says}"), e.value.line()


def test_an_ab_json_over_its_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(ab_session, "MAX_AB_BYTES", 10)
    (tmp_path / "ab.json").write_text('{"ab_id": "x", "more": 1}')
    with pytest.raises(HarnessInputError, match="A/B record larger than 10 bytes"):
        load_ab(tmp_path)


class _Store:
    def __init__(self, value: object):
        self.value = value

    def __call__(self, _db: str | None) -> _Store:
        return self

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def ab_json(self, _ref: str) -> object:
        return self.value

    def bisect_json(self, _key: str) -> object:
        return self.value


@pytest.mark.parametrize("value", ["{not json", "[" * DEEP, '{"ab_id": 1}'])
def test_a_history_databases_ab_record_that_is_not_one_is_one_line(tmp_path, monkeypatch, value):
    """Before: pydantic's ValidationError (a traceback)."""
    import harness.analyze.history as history

    monkeypatch.setattr(history, "HistoryStore", _Store(value))
    with pytest.raises(HarnessInputError) as e:
        find_ab(tmp_path / "no-such-ab", "sqlite:///h.sqlite")
    assert e.value.file == "sqlite:///h.sqlite" and "A/B" in e.value.line()


@pytest.mark.parametrize("value", ["{not json", '{"a": ' * DEEP, "{}"])
def test_a_history_databases_bisect_record_that_is_not_one_is_one_line(value):
    """Before: pydantic's ValidationError (a traceback)."""
    from harness.experiment.bisect_steps import resume_or_start

    with pytest.raises(HarnessInputError) as e:
        resume_or_start(_Store(value), "k", restart=False, retry_skipped=False, log=lambda _m: None)  # type: ignore[arg-type]
    assert e.value.file == "history database" and "bisect k" in e.value.line()


def test_the_shipped_candidates_file_still_reads():
    from harness.experiment.bisect import load_candidate_file
    from harness.plan.environments import EnvironmentSpec

    path = Path(__file__).resolve().parents[3] / "suites" / "candidates" / "config-history.yaml"
    envs = {n: EnvironmentSpec(name=n, packages=["openvino-genai==2026.4.0"]) for n in ("r261", "r262", "r263", "r264")}
    assert load_candidate_file(path, envs)
