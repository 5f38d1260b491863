"""`harness tune` end to end through its command line, its trials and its proof's A/B measured by stand-ins
(tests/integration/test_exit_codes.py): the winner's-curse guard, resuming after Ctrl-C, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.experiment.tune import TuneResult
from tests.integration.test_exit_codes import Ctx, cli, fake_trials, fake_workers, suite_file  # noqa: F401

PROOF = ("--objective", "output_tps", "--budget", "10m", "--proof-budget", "5m", "--min-rounds", "3")


@pytest.fixture
def ctx(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:  # noqa: F811
    return Ctx(cli, tmp_path, monkeypatch)


def _result(folder: Path) -> TuneResult:
    return TuneResult.model_validate_json((folder / "tune.json").read_text())


def test_irrelevant_knobs_report_no_gain(ctx: Ctx) -> None:
    """A/A: eight settings that change nothing, each trial with 5% noise. The best single trial looks faster than
    the defaults (the winner's curse); the A/B against the defaults finds no change, so no gain is reported."""
    fake_workers(ctx.monkeypatch)
    fake_trials(ctx.monkeypatch, noise=0.05)
    got = ctx.expect(0, "tune", suite_file(ctx), "--knob", "properties.IRRELEVANT=null,1,2,3,4,5,6,7", "--out",
                     ctx.tmp / "tune", *PROOF)
    r = _result(ctx.tmp / "tune")
    best, defaults = r.trial(r.best), r.trials[0]
    assert not best.is_defaults and best.values[0] / defaults.values[0] > 1.02, got.said()  # looked like a gain
    assert [p.gain for p in r.proofs] == [False]
    assert r.proofs[0].metrics[0].verdict == "unchanged"
    assert r.conclusion.startswith("no gain"), got.said()
    assert "no gain" in got.err
    assert "the best measured setting, not proven" in (ctx.tmp / "tune" / "tune.md").read_text()
    html = (ctx.tmp / "tune" / "tune.html").read_text()
    assert "<svg" in html and "Trade-off" in html


def test_two_objectives_prove_best_and_knee(ctx: Ctx) -> None:
    fake_workers(ctx.monkeypatch)
    fake_trials(ctx.monkeypatch)
    ctx.expect(0, "tune", suite_file(ctx), "--knob", "properties.FAKE_SLOWDOWN=null,0.5,0.8,1.5",
               "--objective", "output_tps", "--objective", "peak_rss_mb", "--budget", "10m", "--proof-budget", "5m",
               "--min-rounds", "3", "--out", ctx.tmp / "tune")
    r = _result(ctx.tmp / "tune")
    assert r.objectives == ["output_tps", "peak_rss_mb"]
    assert r.trial(r.best).setting == {"properties.FAKE_SLOWDOWN": 0.5}
    assert r.proofs and r.proofs[0].gain


def test_ctrl_c_keeps_the_trials_and_the_same_command_resumes(ctx: Ctx) -> None:
    from harness.cli import tune

    measured: list[dict] = []
    fake_trials(ctx.monkeypatch)
    stand_in = tune._local_measure

    def counting(out_dir, options):
        inner = stand_in(out_dir, options)

        def measure(cell, folder):
            measured.append(dict(cell.properties))
            if len(measured) == 3 and interrupt:
                raise KeyboardInterrupt
            return inner(cell, folder)
        return measure

    ctx.monkeypatch.setattr(tune, "_local_measure", counting)
    args = ("tune", suite_file(ctx), "--knob", "properties.FAKE_SLOWDOWN=null,0.7,0.8,0.9,1.1", "--no-proof",
            "--out", ctx.tmp / "tune")
    interrupt = True
    got = ctx.expect(130, *args)
    assert "interrupted" in got.err
    first = _result(ctx.tmp / "tune")
    assert len(first.trials) == 2
    interrupt = False
    before = len(measured)
    got = ctx.expect(0, *args)
    assert "resuming study" in got.err and "2 trials kept" in got.err and "1 interrupted measured again" in got.err
    again = measured[before:]
    assert again[0] == measured[2]  # the interrupted setting first
    assert not [m for m in again if m in measured[:2]]  # nothing finished is measured again
    assert len(again) == 3 and len([t for t in _result(ctx.tmp / "tune").trials if t.repeat_of is None]) == 5


@pytest.mark.parametrize(("args", "says"), [
    (("--knob", "properties.X"), "--knob"),
    (("--knob", "params.max_num_seqs=1"), "params.max_num_seqs=1"),
    (("--knob", "env=a,b"), "properties.NAME or params.NAME"),
    (("--cell", "nope/fp16"), "no cell of the suite has this key"),
    (("--objective", "tpot_ms p42"), "unknown statistic"),
    (("--budget", "5m", "--proof-budget", "6m"), "--proof-budget"),
    (("--min-gain", "1.5"), "--min-gain"),
    (("--db", "nonsense://"), "unsupported database"),
    (("--db", "mysql://u:secret@h/db"), "database driver not installed"),
])
def test_bad_input_is_one_line(ctx: Ctx, args, says) -> None:
    got = ctx.expect(2, "tune", suite_file(ctx), *args, "--out", ctx.tmp / "tune")
    assert says in got.err and len(got.err.strip().splitlines()) == 1, got.said()


def test_an_objective_the_cell_does_not_measure(ctx: Ctx) -> None:
    fake_trials(ctx.monkeypatch)
    got = ctx.expect(2, "tune", suite_file(ctx), "--knob", "properties.FAKE_SLOWDOWN=null,0.7", "--objective",
                     "acceptance_rate_pct", "--out", ctx.tmp / "tune")
    assert "does not measure it" in got.err, got.said()


def test_the_suite_tune_block_is_read(ctx: Ctx) -> None:
    fake_trials(ctx.monkeypatch)
    suite = suite_file(ctx, tune={"objective": ["tpot_ms"], "slo": ["ttft_ms < 1e9"], "budget": "2m",
                                  "space": {"properties.FAKE_SLOWDOWN": [None, 0.9]}})
    ctx.expect(0, "tune", suite, "--no-proof", "--out", ctx.tmp / "tune")
    r = json.loads((ctx.tmp / "tune" / "tune.json").read_text())
    assert r["objectives"] == ["tpot_ms"] and r["budget_s"] == 120 and len(r["trials"]) == 2
    bad = suite_file(ctx, tune={"space": {"properties.FAKE_SLOWDOWN": []}})
    got = ctx.expect(2, "tune", bad, "--out", ctx.tmp / "tune2")
    assert "give the values" in got.err
