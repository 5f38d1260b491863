from __future__ import annotations

import json

import numpy as np
import pytest

from harness.analyze.compare import CompareSettings, adjust_p_values, compare_runs
from harness.records.store import write_results
from tests.conftest import run_cli
from tests.factories import result, run, sample, spec


def _cell(kind, scale, rng, n=10, precision="fp16", noise=0.01, rss=500.0):
    samples = [sample(0, warmup=True)]
    for i in range(1, n + 1):
        f = scale * float(np.exp(rng.normal(0, noise)))
        samples.append(sample(i, chunks=tuple(x * f for x in (10.0, 12.0, 14.0, 16.0)), e2e_ms=17.0 * f))
    r = result(spec(kind, precision=precision), samples)
    r.cell_values["peak_rss_mb"] = rss
    return r


def _run(run_id, scales, seed, rss=500.0):
    rng = np.random.default_rng(seed)
    res = run([_cell("generate", scales[0], rng, rss=rss), _cell("speculative", scales[1], rng, rss=rss)])
    res.metadata.run_id = run_id
    return res


def _verdicts(comp):
    return {(c.key.split("/")[3], m.metric): m.verdict for c in comp.cells for m in c.metrics}


def test_same_distribution_is_not_a_regression():
    comp = compare_runs(_run("a", (1.0, 1.0), 1), _run("b", (1.0, 1.0), 2))
    assert not comp.regressions()
    assert set(_verdicts(comp).values()) <= {"unchanged", "inconclusive"}


def test_slowdown_is_a_regression_in_every_time_metric_and_throughput():
    comp = compare_runs(_run("a", (1.0, 1.0), 1), _run("b", (1.2, 1.0), 2))
    v = _verdicts(comp)
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms", "output_tps"):  # tok/s falls: also a regression
        assert v[("generate", metric)] == "regression", metric
        assert v[("speculative", metric)] != "regression", metric
    m = next(m for c in comp.cells for m in c.metrics if m.metric == "output_tps" and "generate" in c.key)
    assert m.ratio == pytest.approx(1 / 1.2, rel=0.02) and m.ci_high < 1


def test_speedup_is_an_improvement():
    v = _verdicts(compare_runs(_run("a", (1.0, 1.0), 1), _run("b", (1.0, 0.8), 2)))
    assert v[("speculative", "tpot_ms")] == "improvement"
    assert v[("speculative", "output_tps")] == "improvement"


def test_small_real_change_below_min_effect_is_unchanged():
    base, cand = _run("a", (1.0, 1.0), 1), _run("b", (1.02, 1.0), 2)
    v = _verdicts(compare_runs(base, cand, CompareSettings(thresholds={"tpot_ms": 0.05})))
    assert v[("generate", "tpot_ms")] == "unchanged"
    # the same 2% change with a 1% minimum effect is a regression
    v = _verdicts(compare_runs(base, cand, CompareSettings(thresholds={"tpot_ms": 0.01})))
    assert v[("generate", "tpot_ms")] == "regression"


def test_too_few_noisy_samples_are_inconclusive():
    rng = np.random.default_rng(0)
    base = run([_cell("generate", 1.0, rng, n=3, noise=0.2)])
    cand = run([_cell("generate", 1.08, rng, n=3, noise=0.2)])
    assert _verdicts(compare_runs(base, cand))[("generate", "tpot_ms")] == "inconclusive"


def test_memory_is_judged_on_threshold_only():
    comp = compare_runs(_run("a", (1.0, 1.0), 1), _run("b", (1.0, 1.0), 1, rss=540.0))
    m = next(m for c in comp.cells for m in c.metrics if m.metric == "peak_rss_mb")
    assert m.basis == "threshold-only" and m.p_value is None and m.verdict == "regression"


def test_unmatched_cells_listed_and_drift_reported():
    base = _run("a", (1.0, 1.0), 1)
    cand = _run("b", (1.0, 1.0), 2)
    cand.cells = cand.cells[:1]
    cand.metadata.versions = {"openvino": "y"}
    cand.metadata.host.cpu_flags = ["avx2", "avx512f"]
    comp = compare_runs(base, cand)
    assert comp.only_in_base == ["m/fp16/CPU/speculative/in8-out4"]
    fields = {d.field: d for d in comp.drift}
    assert fields["version openvino"].base == "x" and fields["version openvino"].candidate == "y"
    assert fields["cpu flags"].candidate == "avx512f"


def test_benjamini_hochberg_adjustment():
    assert adjust_p_values([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04])
    assert adjust_p_values([0.5]) == [0.5]
    assert adjust_p_values([]) == []


def test_cli_exit_codes_and_formats(tmp_path):
    for name, res in (("a", _run("a", (1.0, 1.0), 1)), ("b", _run("b", (1.0, 1.0), 2)), ("c", _run("c", (1.3, 1.0), 3))):
        (tmp_path / name).mkdir()
        write_results(tmp_path / name, res)
    same = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert same.returncode == 0, same.stderr
    slower = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--format", "json")
    assert slower.returncode == 1
    data = json.loads(slower.stdout)
    assert any(m["verdict"] == "regression" for c in data["cells"] for m in c["metrics"])
    md = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--format", "md", "--threshold", "tpot_ms=0.5")
    assert "| tpot_ms |" in md.stdout and "REGRESSION" in md.stdout
    bad = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--threshold", "nonsense=0.1")
    assert bad.returncode == 2 and "--threshold" in bad.stderr


def test_cli_writes_html_comparison_and_report(tmp_path):
    for name, res in (("a", _run("a", (1.0, 1.0), 1)), ("c", _run("c", (1.3, 1.0), 3))):
        (tmp_path / name).mkdir()
        write_results(tmp_path / name, res)
    page = tmp_path / "cmp.html"
    slower = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"), "--html", str(page))
    assert slower.returncode == 1, slower.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "regression" in html and "<svg" in html
    report = run_cli("report", str(tmp_path / "c"), "--format", "html", "--out", str(tmp_path / "c.html"))
    assert report.returncode == 0, report.stderr
    assert "<svg" in (tmp_path / "c.html").read_text()


def test_history_noise_floor_raises_the_minimum_effect():
    base, slower = _run("a", (1.0, 1.0), 1), _run("c", (1.3, 1.0), 3)
    plain = compare_runs(base, slower)
    assert _verdicts(plain)[("generate", "tpot_ms")] == "regression"
    # a machine whose run medians wander by sd 0.1 (log) cannot resolve 30%: the floor is exp(2.33·0.1·√2) − 1
    noisy = compare_runs(base, slower, noise=lambda key, metric, config: (0.1, 8))
    m = next(m for c in noisy.cells for m in c.metrics if "generate" in c.key and m.metric == "tpot_ms")
    assert m.noise_sd == 0.1 and m.noise_runs == 8
    assert m.effective_threshold == pytest.approx(0.390, abs=0.002)
    # a significant 30% change the machine cannot resolve: inconclusive with its reason, never unchanged
    assert m.verdict == "inconclusive" and "below the noise floor" in m.note and "39%" in m.note
    assert m.deciding_threshold == m.effective_threshold
    # a quiet machine keeps the configured minimum effect
    quiet = compare_runs(base, slower, noise=lambda key, metric, config: (0.005, 8))
    q = next(m for c in quiet.cells for m in c.metrics if "generate" in c.key and m.metric == "tpot_ms")
    assert q.effective_threshold == q.threshold == 0.05 and q.verdict == "regression"


def test_the_floor_is_looked_up_with_the_base_cells_measurement_configuration():
    base, slower = _run("a", (1.0, 1.0), 1), _run("c", (1.3, 1.0), 3)
    asked = []
    compare_runs(base, slower, noise=lambda key, metric, config: asked.append((key, config)) or None)
    configs = {k: c for k, c in asked}
    from harness.analyze.compare import measurement_config

    cell = base.cells[0]
    assert configs[cell.key] == measurement_config(cell, base.metadata)
    # a setting outside the key (token timing) changes the configuration; a limit does not
    other = cell.model_copy(deep=True)
    other.spec.token_timing = "genai" if cell.spec.token_timing == "streamer" else "streamer"
    assert measurement_config(other, base.metadata) != configs[cell.key]
    limit = cell.model_copy(deep=True)
    limit.spec.timeout_s = 12345
    assert measurement_config(limit, base.metadata) == configs[cell.key]
    versions = base.metadata.model_copy(deep=True)
    versions.versions["openvino-genai"] = "2026.3.1.0"
    assert measurement_config(cell, versions) != configs[cell.key]


def test_unchanged_needs_the_ci_within_the_configured_effect_not_the_floor():
    """A change whose CI reaches past the configured 5% is not 'unchanged' because the floor is 40%."""
    base, slightly = _run("a", (1.0, 1.0), 1), _run("c", (1.08, 1.0), 3)
    noisy = compare_runs(base, slightly, noise=lambda key, metric, config: (0.1, 8))
    for c in noisy.cells:
        for m in c.metrics:
            if m.metric == "tpot_ms" and m.ci_high is not None and m.ci_high > 1.05:
                assert m.verdict == "inconclusive"
