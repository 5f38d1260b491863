"""Change points on fixed series with known answers (harness/analyze/changes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analyze.changes import (
    ChangeSettings,
    SeriesKey,
    SeriesPoint,
    find_shifts,
    recent_regressions,
    series_changes,
)

S = ChangeSettings()


def noisy(n: int, sd: float, seed: int) -> np.ndarray:
    return 100 * np.exp(np.random.default_rng(seed).normal(0, sd, n))


def test_flat_noisy_series_has_no_change_point() -> None:
    for seed in range(20):
        assert find_shifts(noisy(40, 0.05, seed), S) == [], seed


def test_one_step_is_found_where_it_is_with_its_magnitude() -> None:
    x = noisy(30, 0.03, 1)
    x[12:] *= 1.15
    (s,) = find_shifts(x, S)
    assert s.index == 12 and s.before_n == 12 and s.after_n == 18
    assert s.ci_low < s.change < s.ci_high and abs(s.change - 0.15) < 0.03
    assert s.pvalue < 1e-6


def test_a_step_and_its_return_are_two_change_points() -> None:
    x = noisy(45, 0.03, 2)
    x[15:30] *= 0.8
    shifts = find_shifts(x, S)
    assert [s.index for s in shifts] == [15, 30]
    assert shifts[0].change < -0.15 and shifts[1].change > 0.15


def test_one_wild_run_does_not_hide_a_step() -> None:
    x = noisy(32, 0.03, 6)
    x[16:] *= 1.12
    x[6] *= 2.5  # a run on a busy machine
    (s,) = find_shifts(x, S)
    assert s.index == 16 and 0.08 < s.change < 0.16


def test_single_outliers_and_short_series_are_not_change_points() -> None:
    x = noisy(30, 0.03, 3)
    x[10] *= 2.0
    x[20] *= 0.5
    assert find_shifts(x, S) == []
    assert find_shifts([1.0, 1.0, 5.0, 5.0, 5.0], S) == []  # fewer than two segments of min_segment
    assert find_shifts([], S) == [] and find_shifts([7.0] * 30, S) == []
    assert find_shifts([1.0, float("nan")] * 10, S) == []


def test_small_shifts_below_the_minimum_magnitude_are_not_reported() -> None:
    x = np.array([100.0] * 10 + [101.0] * 10)  # a certain 1% step
    assert find_shifts(x, S) == []
    (s,) = find_shifts(x, S.model_copy(update={"min_magnitude": 0.005}))
    assert s.index == 10 and s.pvalue == 0.0 and s.change == pytest.approx(0.01)


def test_series_with_zeros_use_the_linear_scale() -> None:
    x = [0.0] * 10 + [50.0, 51.0, 49.0, 50.0, 50.0, 50.5, 49.5, 50.0, 50.0, 51.0]
    (s,) = find_shifts(x, S)
    assert s.index == 10 and s.change is None and s.before == 0.0 and s.after == pytest.approx(50.1, abs=0.1)


def _points(values) -> list[SeriesPoint]:
    return [SeriesPoint(run_id=f"r{i:02d}", started_at=f"2026-01-{i + 1:02d}T00:00:00+00:00", median=float(v),
                        genai_version="2026.4.0.0" if i < 12 else "2026.4.1.0") for i, v in enumerate(values)]


def test_direction_follows_the_metric_registry_and_names_the_runs() -> None:
    x = noisy(20, 0.02, 4)
    x[12:] *= 1.1
    key = SeriesKey(suite="nightly", host="h", cell_key="c", metric="tpot_ms")
    (c,) = series_changes(key, _points(x), S)
    assert c.direction == "regression" and c.before_run == "r11" and c.after_run == "r12" and c.runs_since == 8
    assert "2026.4.0.0" in c.before_versions and "2026.4.1.0" in c.after_versions and c.unit == "ms"
    (c,) = series_changes(key.model_copy(update={"metric": "output_tps"}), _points(x), S)
    assert c.direction == "improvement"
    (c,) = series_changes(key.model_copy(update={"metric": "output_tokens"}), _points(x), S)
    assert c.direction == "change"  # a count is neither
    holed = _points(x)
    holed[3] = holed[3]._replace(median=float("nan"))
    (c,) = series_changes(key, holed, S)  # a NaN run is left out, not the series
    assert c.after_run == "r12" and c.before_runs == 11


def test_recent_window() -> None:
    x = noisy(20, 0.02, 5)
    x[15:] *= 1.2
    changes = series_changes(SeriesKey(suite="s", host=None, cell_key="c", metric="ttft_ms"), _points(x), S)
    assert [c.runs_since for c in changes] == [5]
    assert recent_regressions(changes, 5) == changes and recent_regressions(changes, 4) == []


def test_ratio_series_settings_find_a_small_shift_three_runs_after_it() -> None:
    """A ratio to a reference side: 1% noise, +3% for the last 3 runs. The run medians' test judges the 3 new runs
    by their own spread (Welch, ~2 degrees of freedom) and misses nearly all; the ratio series' test judges them
    against the whole series' noise (benchmarks/ratio_series_detection.py has the rates)."""
    from harness.analyze.changes import RATIO_UNIT
    from harness.core.schema import RatioChangeSettings

    ratio = RatioChangeSettings()
    found = old = 0
    for seed in range(40):
        x = noisy(33, 0.01, 100 + seed)
        x[30:] *= 1.03
        found += any(abs(s.index - 30) <= 1 and s.change > 0 for s in find_shifts(x, ratio))
        old += any(abs(s.index - 30) <= 1 for s in find_shifts(x, S))
    assert found >= 34 and old <= 6
    false = sum(len(find_shifts(noisy(100, 0.01, 200 + seed), ratio)) for seed in range(20))
    assert false <= 2
    key = SeriesKey(suite="nightly", host="h", cell_key="c", metric="tpot_ms", reference="r2026.3")
    x = noisy(33, 0.01, 7)
    x[30:] *= 1.05
    (c,) = series_changes(key, _points(x), ratio)
    assert c.reference == "r2026.3" and c.unit == RATIO_UNIT and c.direction == "regression" and c.runs_since == 3
    assert c.label() == "nightly @ h: c tpot_ms ÷ r2026.3"


def test_the_c_search_finds_what_ruptures_python_pelt_finds() -> None:
    # _pelt runs PELT through KernelCPD's C code with the linear kernel: the same l2 problem as Pelt(model="l2")
    import ruptures as rpt

    from harness.analyze.changes import _pelt

    rng = np.random.default_rng(7)
    for case in range(60):
        n, min_size = int(rng.integers(8, 90)), int(rng.integers(1, 5))
        y = rng.standard_t(3, n) * 0.03
        for _ in range(int(rng.integers(0, 4))):
            y[int(rng.integers(0, n)):] += rng.normal(0, 0.1)
        penalty = float(rng.uniform(0.5, 6)) * 0.03 ** 2 * np.log(n)
        slow = rpt.Pelt(model="l2", min_size=min_size, jump=1).fit(y.reshape(-1, 1)).predict(pen=penalty)[:-1]
        assert _pelt(y, penalty, min_size) == slow, case


def test_trimmed_welch_is_scipys_yuen_test() -> None:
    from scipy import stats as sps

    from harness.analyze.changes import TRIM, trimmed_welch

    rng = np.random.default_rng(11)
    for case in range(200):
        a = rng.standard_t(3, int(rng.integers(2, 40))) * rng.uniform(0.01, 1)
        b = rng.standard_t(3, int(rng.integers(2, 40))) * rng.uniform(0.01, 1) + rng.normal(0, 0.3)
        if case % 17 == 0:
            a[:] = 1.0  # a constant segment
        mean_a, mean_b, se, df = trimmed_welch(a, b)
        res = sps.ttest_ind(b, a, equal_var=False, trim=TRIM)
        assert mean_a == pytest.approx(sps.trim_mean(a, TRIM), rel=1e-12, abs=1e-15), case
        assert mean_b == pytest.approx(sps.trim_mean(b, TRIM), rel=1e-12, abs=1e-15), case
        assert df == pytest.approx(float(res.df), rel=1e-9), case
        if np.isfinite(res.statistic) and se > 0:
            assert (mean_b - mean_a) / se == pytest.approx(float(res.statistic), rel=1e-9), case
