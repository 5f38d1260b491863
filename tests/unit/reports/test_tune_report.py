"""The tuning report (reports/tune_report.py): what each trial and proof says, escaped in every format."""

from __future__ import annotations

import re

from harness.core.console import PlainConsole
from harness.core.schema import SideSpec
from harness.experiment.tune import ProofMetric, TuneProof, TuneResult, TuneTrial
from harness.plan.tuning import SloReading, slo_of
from reports.tune_report import render_tune_html, render_tune_md, tune_table

HOSTILE = "<script>alert(1)</script>|`x`"


def _result(objectives: list[str], gain: bool = True) -> TuneResult:
    def trial(n: int, value: float, status: str = "ok", setting=None, second: float = 10.0) -> TuneTrial:
        values = [value, second][:len(objectives)]
        return TuneTrial(number=n, setting=setting if setting is not None else {"properties.X": n or None},
                         status=status, values=values, slo=[SloReading(slo="ttft_ms p90 <= 300", value=100.0 * n,
                                                                     met=status == "ok", excess=0.0)],
                         wall_s=12.0)

    trials = [trial(0, 100.0), trial(1, 110.0, second=5.0), trial(2, 120.0, "slo_violated"),
              trial(3, 0.0, "crashed", {"properties.X": HOSTILE}), trial(4, 105.0, second=20.0)]
    trials[3] = trials[3].model_copy(update={"values": [None] * len(objectives), "error": "died: <b>SIGFPE</b>"},
                                     deep=True)
    trials.append(trials[1].model_copy(update={"number": 5, "repeat_of": 1, "wall_s": 0.0}, deep=True))
    proof = TuneProof(role="best", trial=1, candidate=SideSpec(properties={"X": 1}), ab_dir="proof-best", ab_id="ab1",
                      stop_reason="every cell settled", gain=gain,
                      metrics=[ProofMetric(metric=objectives[0].split()[0], ratio=1.08 if gain else 1.0, ci_low=1.05,
                                           ci_high=1.11, cs_low=1.04, cs_high=1.12,
                                           verdict="improvement" if gain else "unchanged", rounds=6)])
    return TuneResult(study="tune-abc", storage="sqlite:///h.sqlite", suite_name=HOSTILE, suite_file="s.yaml",
                      cell_key=f"m/fp16/CPU/{HOSTILE}", host="h", objectives=objectives,
                      slo=[slo_of("ttft_ms p90 < 300")], space=[{"name": "properties.X", "choices": [None, 1, 2, 3]}],
                      space_size=4, budget_s=600, proof_budget_s=200, min_gain=0.02, started_at="t", trials=trials,
                      pareto=[1, 4] if len(objectives) > 1 else [1], best=1, knee=4 if len(objectives) > 1 else None,
                      importances={"properties.X": 1.0}, proofs=[proof], conclusion=f"gain: {HOSTILE}",
                      snippet="properties:\n  X: 1\n")


def test_markdown_lists_every_trial_and_the_proof():
    md = render_tune_md(_result(["output_tps"]))
    rows = [line for line in md.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == 6
    assert "| 5 | X=1 | repeat of 1 |" in md
    assert "crashed: died: &lt;b>SIGFPE&lt;/b>" in md  # Markdown-escaped, not raw HTML
    assert "<script>" not in md
    assert "output_tps +8.0% [+4.0%, +12.0%] improvement ← the gain" in md.replace("\\[", "[").replace("\\]", "]")
    assert "## Suite snippet (the proven winner)" in md
    assert "best measured setting, not proven" in render_tune_md(_result(["output_tps"], gain=False))


def test_html_escapes_and_draws_every_measured_trial():
    html = render_tune_html(_result(["output_tps"]))
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>SIGFPE</b>" not in html
    # one dot per trial that measured the objective (0, 1, 2, 4), the best on top
    assert html.count("<circle") == 4
    assert "best / Pareto front" in html and "outside the SLO" in html


def test_two_objectives_draw_the_front():
    html = render_tune_html(_result(["output_tps", "peak_rss_mb"]))
    assert "peak_rss_mb against output_tps" in html and "<polyline" in html
    md = render_tune_md(_result(["output_tps", "peak_rss_mb"]))
    assert "| 4 |" in md and "knee front" in md


def test_terminal_table_ranks_within_the_slo_first():
    console = PlainConsole(width=200, record=True)
    console.print(tune_table(_result(["output_tps"])))
    lines = [line for line in console.export_text().splitlines() if re.match(r"^[│|] \d", line)]
    assert [int(line.split()[1]) for line in lines] == [1, 4, 0, 2, 3]
