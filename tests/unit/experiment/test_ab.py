"""`harness ab`: the verdict rule, the confidence sequence under repeated looks, the round loop (order,
stopping, budget) on scripted values, and the command line's bad input."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from harness.cli.ab import parse_duration
from harness.core.errors import HarnessInputError
from harness.core.stats import confidence_sequence
from harness.experiment import ab
from harness.experiment.ab import ABResult, ABSettings, SideSpec, apply_side, decide, judge, parse_side
from tests.conftest import run_cli
from tests.factories import spec as make_cell_spec

L = math.log


@pytest.mark.parametrize(("cs", "higher", "want"), [
    ((L(0.99), L(1.02)), False, "unchanged"),       # inside ±5%
    ((L(1.01), L(1.09)), False, "regression"),      # above 0, reaches past 5%
    ((L(1.001), L(1.03)), False, "unchanged"),      # a real but negligible change
    ((L(0.90), L(0.97)), False, "improvement"),
    ((L(0.97), L(1.08)), False, "inconclusive"),    # 0 inside, 5% not ruled out
    ((L(1.01), L(1.09)), True, "improvement"),      # tok/s: higher is better
    ((L(0.90), L(0.97)), True, "regression"),
    (None, False, "inconclusive"),
])
def test_verdict_rule(cs, higher, want):
    assert decide(cs, 0.05, higher) == want


def _false_alarm_rate(noise, n_seq=600, looks=60, alpha=0.05, min_n=5, seed=3):
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(n_seq):
        x = noise(rng, looks)
        for n in range(min_n, looks + 1):
            _, lo, hi = confidence_sequence(x[:n], alpha)
            if lo > 0 or hi < 0:
                alarms += 1
                break
    return alarms / n_seq


@pytest.mark.parametrize("noise", [
    lambda rng, n: rng.normal(0, 0.05, n),
    lambda rng, n: 0.03 * rng.standard_t(3, n),
    # a mixture with outliers, symmetric as A/A paired ratios are under a random side order
    lambda rng, n: np.where(rng.random(n) < 0.1, rng.normal(0, 0.3, n), rng.normal(0, 0.03, n)),
], ids=["normal", "t3", "outliers"])
def test_confidence_sequence_keeps_its_error_rate_under_looks_after_every_round(noise):
    rate = _false_alarm_rate(noise)
    assert rate <= 0.07, rate  # 600 sequences: 0.05 + 2 binomial sd


def test_a_fixed_interval_looked_at_every_round_would_not():
    """The reason for a sequence: a 95% t-interval checked after every round errs far more often."""
    from harness.core.stats import geomean_ratio_ci

    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(300):
        x = rng.normal(0, 0.05, 60)
        for n in range(5, 61):
            _, lo, hi = geomean_ratio_ci(np.exp(x[:n]))
            if lo > 1 or hi < 1:
                alarms += 1
                break
    assert alarms / 300 > 0.15


def test_judge_on_recorded_rounds_with_known_answers():
    rng = random.Random(1)
    base = [10.0 * (1 + rng.gauss(0, 0.01)) for _ in range(30)]
    slower = [b * 1.08 * (1 + rng.gauss(0, 0.01)) for b in base]
    same = [b * (1 + rng.gauss(0, 0.01)) for b in base]
    m = judge("tpot_ms", base, slower, 0.05, 0.05, 20, 5)
    assert m.verdict == "regression" and 1.06 < m.ratio < 1.10 and m.cs_low > 1
    assert judge("tpot_ms", base, same, 0.05, 0.05, 20, 5).verdict == "unchanged"
    # tok/s lower in the candidate is the regression
    assert judge("output_tps", base, [1 / 1.08 * b for b in base], 0.05, 0.05, 20, 5).verdict == "regression"
    # fewer rounds than the minimum: no verdict, whatever the data
    assert judge("tpot_ms", base[:4], slower[:4], 0.05, 0.05, 20, 5).verdict == "inconclusive"


class _Script:
    """Stands in for worker processes: per (side, round) values with a drift shared by both sides."""

    def __init__(self, effect: float, noise: float = 0.01, drift: float = 0.2, seed: int = 0):
        self.effect, self.noise, self.drift = effect, noise, drift
        self.rng = random.Random(seed)
        self.calls: list[tuple[str, int]] = []

    def prepare(self, cell, run_dir, options, progress):
        side = run_dir.name
        return ab.PreparedCell(cell, run_dir, [], "ok", None, task=side)  # type: ignore[arg-type]

    def measure(self, prepared, process, options, progress):
        self.calls.append((prepared.task, process))
        level = 10 * (1 + self.drift * math.sin(process / 3))  # slow machine drift between rounds
        value = level * (1 + self.effect if prepared.task == "candidate" else 1) * (1 + self.rng.gauss(0, self.noise))
        return [{"v": value}], "ok", None


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    def install(script: _Script):
        monkeypatch.setattr(ab, "prepare_cell", script.prepare)
        monkeypatch.setattr(ab, "measure_process", script.measure)
        monkeypatch.setattr(ab, "median_values", lambda events, spec: {"tpot_ms": events[0]["v"],
                                                                       "ttft_ms": events[0]["v"]} if events else {})
        monkeypatch.setattr(ab, "cell_result", lambda spec, events, status, *a: (spec.key, len(events), status))
        return script
    return install


def _run(script, tmp_path, settings: ABSettings, cells=None, pairing="processes"):
    cells = cells or [make_cell_spec()]
    settings = settings.model_copy(update={"pairing": pairing})
    result = ABResult(ab_id="t", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b",
                      candidate_run="c", settings=settings, started_at="now")
    from harness.execute.run_options import RunOptions
    from harness.execute.worker_process import ProgressSink

    side_cells = ab.run_ab(cells, SideSpec(), SideSpec(), tmp_path, RunOptions(tmp_path, ["CPU"]), settings, result,
                           ProgressSink(), log=lambda m: None)
    return result, side_cells


def test_rounds_interleave_sides_in_a_random_order_and_stop_when_settled(scripted, tmp_path):
    script = scripted(_Script(effect=0.10))
    result, side_cells = _run(script, tmp_path, ABSettings(metrics=["tpot_ms"], budget_s=600))
    cell = result.cells[0]
    assert cell.verdict == "regression" and result.stop_reason == "every cell settled"
    assert cell.rounds == len(cell.order) == len(script.calls) // 2
    # each round is one base and one candidate process, adjacent, first side random
    for r in range(cell.rounds):
        assert {s for s, p in script.calls[2 * r:2 * r + 2]} == {"base", "candidate"}
        assert script.calls[2 * r][0] == cell.order[r]
    assert 0 < cell.order.count("base") < cell.rounds
    # the drift (±20% between rounds) cancels in the pairs: settled within a few rounds past the minimum
    assert cell.rounds <= 8
    m = cell.metrics[0]
    assert 1.08 < m.ratio < 1.12 and m.settled_at == cell.rounds
    assert side_cells["base"][0] == (cell.key, cell.rounds, "ok")


def test_a_a_settles_unchanged(scripted, tmp_path):
    result, _ = _run(scripted(_Script(effect=0.0)), tmp_path, ABSettings(metrics=["tpot_ms"]))
    assert result.cells[0].verdict == "unchanged"


def test_budget_ends_an_unsettled_comparison_as_inconclusive(scripted, tmp_path):
    """Noise far above the minimum effect: no verdict within the budget; never a false 'unchanged'."""
    result, _ = _run(scripted(_Script(effect=0.0, noise=0.5)), tmp_path,
                     ABSettings(metrics=["tpot_ms"], budget_s=1e-6, min_rounds=5))
    assert result.cells[0].rounds == 5 and result.cells[0].verdict == "inconclusive"
    assert "budget" in result.stop_reason


def test_bonferroni_over_cells_and_metrics(scripted, tmp_path, monkeypatch):
    seen = []
    real = ab.judge
    monkeypatch.setattr(ab, "judge", lambda metric, b, c, alpha, *a: seen.append(alpha) or real(metric, b, c, alpha, *a))
    cells = [make_cell_spec(key=f"k{i}") for i in range(3)]
    _run(scripted(_Script(effect=0.10)), tmp_path, ABSettings(metrics=["tpot_ms", "ttft_ms"], alpha=0.06), cells)
    assert seen and all(a == pytest.approx(0.01) for a in seen)


def test_sides_parse_and_apply():
    side = parse_side("--candidate", ["env=new", "device=AUTO", "properties.KV_CACHE_PRECISION=u8",
                                      "properties.NUM_STREAMS=2"])
    assert side.properties == {"KV_CACHE_PRECISION": "u8", "NUM_STREAMS": 2}
    cell = apply_side(make_cell_spec(), side)
    assert cell.environment == "new" and cell.device == "AUTO" and cell.properties["NUM_STREAMS"] == 2
    assert cell.key == make_cell_spec().key


@pytest.mark.parametrize("items", [["env"], ["env="], ["color=red"], ["env=a", "env=b"], ["properties.=1"]])
def test_bad_sides_are_one_line(items):
    with pytest.raises(HarnessInputError) as e:
        parse_side("--base", items)
    assert "--base" in e.value.line() and "\n" not in e.value.line()


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("90s", 90), ("1h30m", 5400), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "10d", "nan", "9999h"])
def test_bad_durations(text):
    with pytest.raises(HarnessInputError):
        parse_duration(text)


@pytest.mark.parametrize(("args", "needle"), [
    (["--base", "env=nope"], "unknown environment"),
    (["--base", "model=/nonexistent/dir"], "model=/nonexistent/dir"),
    (["--candidate", "device=TPU"], "unknown device"),
    (["--budget", "soon"], "--budget"),
    (["--alpha", "1.5"], "--alpha"),
    (["--metric", "speed"], "unknown metric"),
    (["--min-rounds", "9", "--max-rounds", "3"], "--max-rounds"),
    (["--env", "bad"], "NAME=SPEC"),
    (["--env", "x=not a pin!"], "--env"),
    (["--pairing", "tokens"], "--pairing"),
    (["--slice-ms", "nan"], "--slice-ms"),
    (["--slice-ms", "0"], "--slice-ms"),
])
def test_ab_bad_input_is_one_line(tmp_path, args, needle):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n")
    proc = run_cli("ab", str(suite), "--out", str(tmp_path / "ab"), *args, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert not (tmp_path / "ab" / "ab.json").exists()


def test_an_interrupt_keeps_the_finished_rounds(scripted, tmp_path):
    script = _Script(effect=0.0, noise=0.5)
    real = script.measure

    def measure(prepared, process, options, progress):
        if len(script.calls) == 7:  # the fourth round's second side
            raise KeyboardInterrupt
        return real(prepared, process, options, progress)

    script.measure = measure
    result, side_cells = _run(scripted(script), tmp_path, ABSettings(metrics=["tpot_ms"]))
    assert result.stop_reason == ab.INTERRUPTED and result.cells[0].rounds == 3
    assert result.cells[0].metrics[0].rounds == 3 and side_cells["base"] and side_cells["candidate"]


def test_a_side_failing_every_round_judges_nothing_and_says_so(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: tiny, source: 'synthetic:tiny'}]\nprecisions: [fp16]\n"
                     "scenarios: [{name: g, kind: generate}]\nprompts: {input_tokens: [8]}\n"
                     "generation: {max_new_tokens: 4}\niterations: 1\nwarmup: 0\nvalidation_prompts: 0\n")
    proc = run_cli("ab", str(suite), "--out", str(tmp_path / "ab"), "--budget", "1m",
                   "--candidate", "properties.KV_CACHE_PRECISION=banana", timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]  # a gate must not pass on an empty comparison
    assert "not judged: tiny/fp16/CPU/g/in8-out4: candidate" in proc.stderr and "banana" in proc.stderr
    assert "nothing judged" in proc.stderr
