"""harness bisect: probe order, skip, resume and bad input (harness/experiment/bisect.py, bisect_steps.py,
harness/cli/bisect.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.analyze.history import HistoryStore
from harness.core.errors import HarnessInputError
from harness.experiment.ab import ABCell, ABMetric, ABResult, ABSettings, SideSpec
from harness.experiment.bisect import (
    BisectRecord,
    Candidate,
    conclusion,
    load_candidate_file,
    next_probe,
    parse_candidate_items,
    version_candidates,
)
from harness.experiment.bisect_steps import StepHooks, run_steps
from harness.plan.environments import EnvironmentSpec
from reports.bisect_report import evidence_text, render_bisect_md, summary_lines
from tests.conftest import run_cli

RELEASES = ["2026.4.1.0", "2026.4.0.0", "2026.3.1.0", "2026.3.0.0", "2026.2.1.0", "2026.2.0.0", "2026.1.0.0",
            "2026.3.0.0rc1"]


def simulate(n: int, first_bad: int, skip: frozenset[int] = frozenset(), check_ends: bool = True):
    """Bisect candidates 0..n-1 whose first bad is `first_bad`; returns (probes, conclusion)."""
    measured: dict = {}
    probes = []
    while (i := next_probe(n, measured, check_ends)) is not None:
        assert i not in probes, "a candidate is never measured twice"
        probes.append(i)
        measured[i] = "skip" if i in skip else "bad" if i >= first_bad else "good"
    return probes, conclusion(n, measured)


def test_every_first_bad_is_found_in_log2_steps() -> None:
    for n in range(2, 18):
        for first_bad in range(1, n):
            probes, (status, found) = simulate(n, first_bad)
            assert (status, found) == ("found", [first_bad]), (n, first_bad)
            assert probes[0] == n - 1  # the bad end is measured first
            assert len(probes) <= 1 + (n - 1).bit_length(), (n, first_bad, probes)


def test_no_check_ends_trusts_the_bad_end() -> None:
    probes, result = simulate(6, 3, check_ends=False)
    assert 5 not in probes and result == ("found", [3])
    assert simulate(2, 1, check_ends=False) == ([], ("found", [1]))


def test_skipped_candidates_are_stepped_around_or_make_a_range() -> None:
    probes, result = simulate(8, 4, skip=frozenset({4}))
    assert result == ("range", [4, 5]) and 4 in probes and 5 in probes  # 4 skipped: 4 or 5
    probes, result = simulate(8, 5, skip=frozenset({3, 4}))
    assert result == ("range", [3, 4, 5])  # neither 3 nor 4 could be told
    probes, result = simulate(8, 6, skip=frozenset({2, 3}))
    assert result == ("found", [6])  # skipped ones before the last good do not matter
    probes, result = simulate(9, 7, skip=frozenset({4}))
    assert result == ("found", [7]) and 4 in probes


def test_bad_end_not_worse_or_not_measurable() -> None:
    assert conclusion(5, {4: "good"}) == ("no-regression", [])
    assert next_probe(5, {4: "good"}, True) is None
    assert conclusion(5, {4: "skip"}) == ("bad-end-unmeasured", [])


def test_registry_versions_between_good_and_bad() -> None:
    cands = version_candidates("openvino-genai==2026.2.0", "openvino-genai==2026.4.0", lambda pkg: RELEASES)
    assert [c.name for c in cands] == ["2026.2.0.0", "2026.2.1.0", "2026.3.0.0", "2026.3.1.0", "2026.4.0.0"]
    assert cands[2].environment.packages == ["openvino-genai==2026.3.0.0"] and cands[2].side.env == cands[2].environment.name
    bad = [("openvino-genai==2026.4.0", "openvino-genai==2026.2.0", "--good", "not older"),
           ("openvino-genai==2026.2.0", "openvino-genai==2026.2.0", "--good", "not older"),
           ("openvino-genai==2025.9.0", "openvino-genai==2026.4.0", "--good", "no such release"),
           ("openvino-genai==2026.2.0", "openvino-genai==2027.1.0", "--bad", "no such release"),
           ("openvino-genai==2026.2.0", "openvino==2026.4.0", "--bad", "another package"),
           ("openvino-genai", "openvino-genai==2026.4.0", "--good", "PACKAGE==VERSION"),
           ("openvino-genai==banana", "openvino-genai==2026.4.0", "--good", "not a version")]
    for good, badv, field, words in bad:
        with pytest.raises(HarnessInputError) as e:
            version_candidates(good, badv, lambda pkg: RELEASES)
        assert e.value.field == field and words in e.value.message, (good, badv, e.value.line())


def test_candidate_items_and_files(tmp_path: Path) -> None:
    declared = {"r263": EnvironmentSpec(name="r263", packages=["openvino-genai==2026.3.1"])}
    cands = parse_candidate_items(["r263", "openvino-genai==2026.4.0"], declared)
    assert cands[0].side.env == "r263" and cands[1].environment.packages == ["openvino-genai==2026.4.0"]
    with pytest.raises(HarnessInputError, match="neither an environment"):
        parse_candidate_items(["r999"], declared)
    f = tmp_path / "c.yaml"
    f.write_text("- name: base\n- name: kv-f32\n  properties: {KV_CACHE_PRECISION: f32}\n"
                 "- name: old\n  packages: [openvino-genai==2026.3.1]\n")
    cands = load_candidate_file(f, declared)
    assert [c.name for c in cands] == ["base", "kv-f32", "old"]
    assert cands[1].side.properties == {"KV_CACHE_PRECISION": "f32"} and cands[2].environment is not None
    for text, field in (("- name: a\n  colour: red\n", "[0].colour"), ("- name: a\n  env: nope\n", "[0].env"),
                        ("{a: 1}", None), ("- name: a\n  packages: ['openvino genai']\n", "[0].packages")):
        f.write_text(text)
        with pytest.raises(HarnessInputError) as e:
            load_candidate_file(f, declared)
        assert e.value.field == field and e.value.file == str(f), e.value.line()


# ---------------------------------------------------------------- the loop, with A/B steps faked


def _ab(verdict: str, ratio: float, error: str | None = None) -> ABResult:
    m = ABMetric(metric="tpot_ms", unit="ms", higher_is_better=False, rounds=6, base_median=1.0,
                 candidate_median=ratio, ratio=ratio, ci_low=ratio * 0.97, ci_high=ratio * 1.03, threshold=0.05,
                 verdict=verdict)
    cell = ABCell(key="k", model="m", precision="int8", device="CPU", scenario="g", error=error,
                  metrics=[] if error else [m])
    return ABResult(ab_id=f"ab-{ratio}", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b",
                    candidate_run="c", settings=ABSettings(), started_at="2026-01-01T00:00:00+00:00",
                    stop_reason="every cell settled", cells=[cell])


def _hooks(fake_compare) -> StepHooks:
    """The loop's hooks with each step's A/B comparison faked: `fake_compare(candidate index)`."""
    return StepHooks(compare=lambda cand, step_dir: fake_compare(cand.side.properties["X"]), describe=evidence_text,
                     render_md=render_bisect_md, log=lambda line: None, marked=lambda step: None)


def _record(tmp_path: Path, n: int) -> BisectRecord:
    cands = [Candidate(name=f"c{i}", side=SideSpec(properties={"X": i})) for i in range(n)]
    return BisectRecord(bisect_id="bisect-test", suite_name="s", suite_file="s.yaml", cell_key="k", metric="tpot_ms",
                        candidates=cands, out_dir=str(tmp_path / "out"), started_at="2026-01-01T00:00:00+00:00")


def test_steps_skip_resume_and_record(store: HistoryStore, tmp_path: Path) -> None:
    first_bad, calls = 5, []
    plan = {3: "install"}  # c3's environment cannot be installed

    def fake_compare(i):
        calls.append(i)
        if len(calls) == 3 and not interrupted:
            raise KeyboardInterrupt
        if plan.get(i) == "install":
            raise HarnessInputError("environment e3", "packages", "x==1", "cannot be installed: no matching distribution")
        if plan.get(i) == "cell":
            return _ab("inconclusive", 1.0, error="candidate, round 1: crashed (signal 11)")
        return _ab("regression", 1.2) if i >= first_bad else _ab("unchanged", 1.0)

    record = _record(tmp_path, 8)
    (tmp_path / "out").mkdir()
    interrupted = False
    assert run_steps(record, store, _hooks(fake_compare))
    assert len(record.steps) == 2 and record.status == "running"  # the interrupted step is not recorded
    saved = BisectRecord.model_validate_json(store.bisect_json("bisect-test"))
    assert [s.candidate for s in saved.steps] == ["c7", "c3"]

    interrupted = True
    calls.clear()
    assert not run_steps(saved, store, _hooks(fake_compare))
    assert calls[0] not in (7, 3)  # resumed: recorded steps are not measured again
    assert saved.status == "found" and saved.first_bad == "c5"
    marks = {s.candidate: (s.mark, s.reason) for s in saved.steps}
    assert marks["c7"][0] == "bad" and "+20.0%" in marks["c7"][1] and marks["c4"][0] == "good"
    assert marks["c3"][0] == "skip" and "cannot be installed" in marks["c3"][1]
    final = json.loads(store.bisect_json("bisect-test"))
    assert final["status"] == "found" and (tmp_path / "out" / "bisect.md").exists()
    md = (tmp_path / "out" / "bisect.md").read_text()
    assert "first bad: c5" in md and "c4 (the one before)" in md


def test_skips_next_to_the_answer_give_a_range(store: HistoryStore, tmp_path: Path) -> None:
    def fake_compare(i):
        if i == 2:
            return _ab("inconclusive", 1.0, error="candidate, round 1: crashed (signal 11)")
        if i == 3:
            raise HarnessInputError("environment e", "packages", "x==1", "cannot be installed: resolver failed")
        return _ab("regression", 1.3) if i >= 3 else _ab("unchanged", 1.01)

    record = _record(tmp_path, 5)
    (tmp_path / "out").mkdir()
    run_steps(record, store, _hooks(fake_compare))
    assert record.status == "range" and record.range == ["c2", "c3", "c4"] and record.first_bad is None
    assert {s.candidate: s.mark for s in record.steps} == {"c4": "bad", "c2": "skip", "c3": "skip", "c1": "good"}
    reasons = {s.candidate: s.reason for s in record.steps}
    assert "cannot be installed" in reasons["c3"] and "crashed (signal 11)" in reasons["c2"]
    assert "one of: c2, c3, c4" in summary_lines(record)[0]


# ---------------------------------------------------------------- the command line: bad input


SUITE = """name: bis
models: [{name: tiny, source: synthetic:tiny}]
precisions: [int8]
prompts: {input_tokens: [8]}
generation: {max_new_tokens: 4}
scenarios: [{name: g, kind: generate}]
"""


@pytest.mark.parametrize("args, field", [
    (["--cell", "tiny/int9/CPU/g/in8-out4", "--candidates", "a,b"], "--cell"),
    (["--metric", "speed"], "--metric"),
    (["--candidates", "onlyone"], "--candidates"),
    (["--candidates", "r263,r263"], "--candidates"),
    (["--candidates", "r263,nope"], "--candidates"),
    (["--candidates", "missing.yaml"], "--candidates"),
    (["--good", "openvino-genai==2026.4.1"], "--bad"),
    (["--good", "openvino-genai==2026.4.1", "--bad", "openvino-genai==2026.2.0"], "--good"),
    (["--good", "openvino-genai==2026.2.0", "--candidates", "r263,r264"], "--good"),
    (["--candidates", "r263,r264", "--threshold", "0"], "--threshold"),
    (["--candidates", "r263,r264", "--budget", "soon"], "--budget"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], field: str) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    base = ["bisect", str(suite), "--cell", "tiny/int8/CPU/g/in8-out4", "--metric", "tpot_ms",
            "--env", "r263=openvino-genai==2026.3.1", "--env", "r264=openvino-genai==2026.4.1"]
    # later options override earlier ones of the same name in the base arguments
    proc = run_cli(*base, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr


def test_registry_lists_released_versions() -> None:
    from harness.experiment.bisect import registry_versions

    versions = registry_versions("openvino-genai")
    assert "2026.4.1.0" in versions and "2026.2.0.0" in versions
    with pytest.raises(HarnessInputError, match="cannot list its versions"):
        registry_versions("no-such-package-ov-genai-harness-xyz")


def test_cli_skips_an_uninstallable_candidate_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the command line: the middle candidate's environment cannot be installed, so the
    answer is a range; the same command again shows the recorded bisect without measuring anything."""
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    cands = tmp_path / "c.yaml"
    cands.write_text("- name: base\n- name: broken\n  packages: [openvino-genai==1999.0.0]\n"
                     "- name: slow\n  properties: {DYNAMIC_QUANTIZATION_GROUP_SIZE: 0}\n")
    monkeypatch.setenv("HARNESS_HISTORY_URL", f"sqlite:///{tmp_path / 'h.sqlite'}")
    args = ["bisect", str(suite), "--cell", "tiny/int8/CPU/g/in8-out4", "--metric", "tpot_ms", "--candidates",
            str(cands), "--no-check-ends", "--out", str(tmp_path / "out")]
    proc = run_cli(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert proc.returncode == 3, proc.stdout + proc.stderr  # no candidate was judged: the only step was skipped
    assert "skip: broken" in proc.stderr and "cannot be installed" in proc.stderr
    assert "the first bad is one of: broken, slow" in proc.stderr
    record = json.loads((tmp_path / "out" / "bisect.json").read_text())
    assert record["status"] == "range" and [s["candidate"] for s in record["steps"]] == ["broken"]
    again = run_cli(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert again.returncode == 3 and "resuming the finished bisect" in again.stderr and "step 1" not in again.stderr
    retried = run_cli(*args, "--retry-skipped", cwd=tmp_path, cache=tmp_path / "cache")
    assert retried.returncode == 3 and "measuring again the skipped broken" in retried.stderr
    assert "step 1: broken" in retried.stderr and "the first bad is one of: broken, slow" in retried.stderr
    with HistoryStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        assert json.loads(store.bisect_json(record["bisect_id"]))["status"] == "range"
