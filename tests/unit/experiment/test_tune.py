"""The tuning loop (harness/experiment/tune.py) on stand-in measurements: the search, the SLO, failures, the front,
resuming after Ctrl-C, and the proof deciding what is reported as a gain."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.core.schema import CellResult, CellSpec, SideSpec
from harness.experiment.ab import ABCell, ABMetric, ABResult, ABSettings
from harness.experiment.tune import (
    INTERRUPTED,
    TuneRequest,
    TuneResult,
    TuneTrial,
    knee,
    pareto_front,
    run_tune,
    study_name,
)
from harness.plan.tuning import Dimension, objective_of, slo_of
from tests import factories

SPACE = [Dimension("properties.SPEED", (None, 1, 2, 3, 4)), Dimension("properties.NOISE", (None, "a", "b"))]


def request(tmp_path: Path, **changes) -> TuneRequest:
    base = dict(suite_name="s", suite_file=tmp_path / "s.yaml", cell=factories.spec(), space=SPACE,
                objectives=[objective_of("output_tps")], slo=[], budget_s=3600, proof_budget_s=0, min_gain=0.02,
                out_dir=tmp_path / "out", storage=f"sqlite:///{tmp_path / 'study.sqlite'}", host="h")
    return TuneRequest(**{**base, **changes})


def fake_measure(calls: list[dict], fail_at: int | None = None, interrupt_at: int | None = None, noise: float = 0.0):
    """A cell whose speed is its SPEED property (1 by default) times (1 + noise), TTFT growing with it; SPEED 4
    crashes. Each call is recorded."""
    rng = random.Random(1)

    def measure(cell: CellSpec, folder: Path) -> CellResult:
        calls.append(dict(cell.properties))
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        speed = float(cell.properties.get("SPEED", 1)) * (1 + rng.gauss(0, noise))
        if cell.properties.get("SPEED") == 4 or (fail_at is not None and len(calls) == fail_at):
            return factories.result(cell, [], status="crashed", error="worker died with signal SIGFPE")
        chunks = tuple(c / speed for c in (10.0, 12.0, 14.0, 16.0))
        return factories.result(cell, [factories.sample(i, chunks=chunks, e2e_ms=17.0 / speed) for i in range(3)])

    return measure


def test_the_search_finds_the_fastest_setting_within_the_slo(tmp_path):
    calls: list[dict] = []
    # SPEED 3 makes TTFT 10/3 ms; the SLO allows down to a 4 ms TTFT... inverted: TTFT < 4 needs SPEED > 2.5
    req = request(tmp_path, slo=[slo_of("ttft_ms < 6")], objectives=[objective_of("output_tps")])
    result = run_tune(req, fake_measure(calls), None, log=lambda m: None)
    assert result.stop_reason.startswith("every setting of the space measured")
    measured = [t for t in result.trials if t.repeat_of is None]
    assert len(measured) == 15 == len(calls)  # every setting once, repeats not measured again
    assert measured[0].is_defaults and calls[0] == {}  # the defaults are trial 0
    best = result.trial(result.best)
    assert best.setting["properties.SPEED"] == 3 and best.status == "ok"
    assert {t.status for t in measured if t.setting["properties.SPEED"] == 4} == {"crashed"}
    assert all(t.status == "slo_violated" for t in measured if t.setting["properties.SPEED"] in (None, 1))
    assert "SPEED: 3" in result.snippet
    assert (tmp_path / "out" / "tune.json").is_file()
    assert TuneResult.model_validate_json((tmp_path / "out" / "tune.json").read_text()).best == result.best
    assert "properties.SPEED" in result.importances


def test_a_study_resumes_after_ctrl_c_without_measuring_finished_trials_again(tmp_path):
    calls: list[dict] = []
    req = request(tmp_path)
    first = run_tune(req, fake_measure(calls, interrupt_at=5), None, log=lambda m: None)
    assert first.stop_reason == INTERRUPTED
    finished = [t for t in first.trials if t.repeat_of is None]
    assert len(finished) == 4
    interrupted = calls[4]
    again: list[dict] = []
    second = run_tune(req, fake_measure(again), None, log=lambda m: None)
    assert second.stop_reason.startswith("every setting")
    # the interrupted setting is measured first, and no finished one is measured again
    assert again[0] == interrupted
    done_before = [c for c in calls[:4]]
    assert not [c for c in again if c in done_before]
    assert len([t for t in second.trials if t.repeat_of is None]) == 15
    assert len({t.number for t in second.trials}) == len(second.trials)
    # a third session finds nothing left: the interrupted trial, measured by the second, is not queued again
    said: list[str] = []
    third: list[dict] = []
    run_tune(req, fake_measure(third), None, log=said.append)
    assert not third and "interrupted" not in said[0], said


def test_restart_forgets_the_study(tmp_path):
    calls: list[dict] = []
    run_tune(request(tmp_path, max_trials=3), fake_measure(calls), None, log=lambda m: None)
    again: list[dict] = []
    run_tune(request(tmp_path, max_trials=3, restart=True), fake_measure(again), None, log=lambda m: None)
    assert again[0] == {} and len(again) == 3


def test_the_study_is_named_by_the_question(tmp_path):
    a = request(tmp_path)
    assert study_name(a) == study_name(request(tmp_path, budget_s=60))  # a budget is not the question
    assert study_name(a) != study_name(request(tmp_path, host="other"))
    assert study_name(a) != study_name(request(tmp_path, slo=[slo_of("ttft_ms < 5")]))
    assert study_name(a) != study_name(request(tmp_path, space=SPACE[:1]))


def test_a_harness_error_in_one_trial_is_that_trials_failure(tmp_path):
    def measure(cell: CellSpec, folder: Path) -> CellResult:
        if cell.properties.get("SPEED") == 2:
            raise RuntimeError("boom")
        return fake_measure([])(cell, folder)

    result = run_tune(request(tmp_path), measure, None, log=lambda m: None)
    failed = [t for t in result.trials if t.setting["properties.SPEED"] == 2 and t.repeat_of is None]
    assert failed and all(t.status == "failed" and "boom" in (t.error or "") for t in failed)
    assert result.trial(result.best).setting["properties.SPEED"] == 3


def _trial(n: int, *values: float, status: str = "ok") -> TuneTrial:
    return TuneTrial(number=n, setting={"k": n}, status=status, values=list(values))


def test_pareto_front_and_knee():
    objs = [objective_of("output_tps"), objective_of("ttft_ms p90")]
    trials = [_trial(0, 100, 50), _trial(1, 120, 80), _trial(2, 90, 60), _trial(3, 200, 400), _trial(4, 150, 90),
              _trial(5, 300, 10, status="slo_violated"), _trial(6, 100, 50)]
    front = pareto_front(trials, objs)
    assert front == [0, 1, 3, 4, 6]  # 2 is beaten by 0; 5 breaks the SLO; 0 and 6 tie
    assert knee(trials, front, objs) == 4
    assert knee(trials, front, objs[:1]) is None
    single = [t.model_copy(update={"values": t.values[:1]}) for t in trials]
    assert pareto_front(single, objs[:1]) == [3]


def _ab(verdict: str, ratio: float) -> ABResult:
    m = ABMetric(metric="output_tps", unit="tok/s", higher_is_better=True, rounds=6, base_median=1, candidate_median=ratio,
                 ratio=ratio, ci_low=ratio - 0.01, ci_high=ratio + 0.01, cs_low=ratio - 0.02, cs_high=ratio + 0.02,
                 threshold=0.02, verdict=verdict)
    return ABResult(ab_id="ab1", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b",
                    candidate_run="c", settings=ABSettings(), started_at="t", stop_reason="every cell settled",
                    cells=[ABCell(key="k", model="m", precision="fp16", device="CPU", scenario="g", metrics=[m])])


@pytest.mark.parametrize(("verdict", "gain"), [("improvement", True), ("unchanged", False),
                                               ("inconclusive", False), ("regression", False)])
def test_only_a_proven_gain_is_reported_as_one(tmp_path, verdict, gain):
    asked = []

    def make(side, folder, budget_s, metrics, thresholds):
        asked.append((side, budget_s, metrics, thresholds))
        return "request"

    req = request(tmp_path, proof_budget_s=600, ab_request=make, slo=[slo_of("ttft_ms < 6")])
    result = run_tune(req, fake_measure([]), lambda r: _ab(verdict, 1.3 if gain else 1.0), log=lambda m: None)
    side, budget, metrics, thresholds = asked[0]
    assert side.properties == {"SPEED": 3} and budget == 600
    assert metrics == ["output_tps", "ttft_ms"] and thresholds == {"output_tps": 0.02}
    assert result.proofs[0].gain is gain
    assert result.conclusion.startswith("gain: output_tps +30.0%" if gain else "no gain")


def test_ctrl_c_during_the_proof_stops_the_study(tmp_path):
    from harness.experiment.ab import INTERRUPTED as AB_INTERRUPTED

    stopped = _ab("inconclusive", 1.0).model_copy(update={"stop_reason": AB_INTERRUPTED})
    req = request(tmp_path, proof_budget_s=600, ab_request=lambda *a: "r", slo=[slo_of("ttft_ms < 6")])
    result = run_tune(req, fake_measure([]), lambda r: stopped, log=lambda m: None)
    assert result.stop_reason == INTERRUPTED and result.proofs[0].error == INTERRUPTED
    assert result.conclusion.endswith("not proven: interrupted (the same command resumes)"), result.conclusion


@pytest.mark.parametrize(("verdict", "says"), [
    ("regression", "the defaults were the best measured setting of the space: no gain; the best other setting "
                   "(trial 1, properties.NOISE=a) against them by A/B: output_tps -50.0%"),
    ("improvement", "gain: output_tps +50.0%")])
def test_defaults_measured_best_are_held_to_the_runner_up(tmp_path, verdict, says):
    """The defaults need no proof of their own; the best other setting is compared with them, so that "the defaults
    hold" is a measured figure too, and an A/B that finds the runner-up better outweighs one trial."""
    space = [Dimension("properties.NOISE", (None, "a"))]

    def slower(cell: CellSpec, folder: Path) -> CellResult:
        speed = 1.0 if "NOISE" not in cell.properties else 0.5
        return factories.result(cell, [factories.sample(i, chunks=tuple(c / speed for c in (10.0, 12.0)))
                                       for i in range(2)])

    asked = []
    req = request(tmp_path, space=space, proof_budget_s=60, ab_request=lambda side, *a: asked.append(side) or "r")
    result = run_tune(req, slower, lambda r: _ab(verdict, 0.5 if verdict == "regression" else 1.5),
                      log=lambda m: None)
    assert asked == [SideSpec(properties={"NOISE": "a"})]
    assert result.proofs[0].role == "runner_up"
    assert result.conclusion.startswith(says), result.conclusion
    assert ("NOISE: a" in result.snippet) is (verdict == "improvement")
