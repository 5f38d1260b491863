from __future__ import annotations

import numpy as np
import pytest

from harness.core.stats import median_ci, summarize


def test_summary_matches_numpy():
    x = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    s = summarize(x)
    assert s.n == 6
    assert s.mean == pytest.approx(np.mean(x))
    assert s.median == pytest.approx(3.5)
    assert s.p90 == pytest.approx(np.percentile(x, 90))
    assert s.p99 == pytest.approx(np.percentile(x, 99))
    assert s.stdev == pytest.approx(np.std(x, ddof=1))
    assert s.cv == pytest.approx(np.std(x, ddof=1) / np.mean(x))
    assert (s.min, s.max) == (1.0, 10.0)


def test_single_value_has_no_spread():
    s = summarize([7.0])
    assert s.stdev is None and s.cv is None and s.median_ci_low is None
    assert summarize([]) is None


def test_median_ci_order_statistics_known_ranks():
    # n = 10: P(B <= 1) = 0.0107 <= 0.025 < P(B <= 2), so the interval is [x_(2), x_(9)].
    x = list(range(1, 11))
    assert median_ci(x) == (2.0, 9.0)
    # n = 5: even [x_(1), x_(5)] covers only 93.75%: no 95% interval exists.
    assert median_ci([1, 2, 3, 4, 5]) is None


def test_median_ci_coverage():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        lo, hi = median_ci(rng.exponential(size=20))
        hits += lo <= np.log(2) <= hi
    assert hits / trials >= 0.94


def test_mean_ci_is_student_t():
    from harness.core.stats import mean_ci

    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    # t(0.975, df=2) = 4.3027, sem = 1 / sqrt(3)
    assert mean == 2.0 and abs((high - mean) - 4.3027 / 3 ** 0.5) < 1e-3 and abs((mean - low) - (high - mean)) < 1e-12
    assert mean_ci([5.0]) is None


def test_clustered_ratio_interval_counts_the_process_pairs_offsets():
    """Before: one Student-t interval over every call pair, as if calls of one process pair were independent."""
    from harness.core.stats import clustered_geomean_ratio_ci, geomean_ratio_ci

    rng = np.random.default_rng(3)
    covered = naive_covered = 0
    for _ in range(400):
        # 6 process pairs of 20 calls; each pair's offset (sd 3%) dwarfs the call noise (sd 1%): true ratio 1.05
        groups = [np.exp(np.log(1.05) + rng.normal(0, 0.03) + rng.normal(0, 0.01, 20)).tolist() for _ in range(6)]
        _, lo, hi = clustered_geomean_ratio_ci(groups)
        covered += lo < 1.05 < hi
        _, lo, hi = geomean_ratio_ci([r for g in groups for r in g])
        naive_covered += lo < 1.05 < hi
    assert covered / 400 > 0.92 and naive_covered / 400 < 0.6
    ratio, lo, hi = clustered_geomean_ratio_ci([[1.1, 1.1], [1.0, 1.0, 1.0, 1.0]])
    assert ratio == pytest.approx(np.exp((2 * np.log(1.1)) / 6)) and lo < ratio < hi  # call-weighted
    single = clustered_geomean_ratio_ci([[1.0, 1.02, 1.04]])
    assert single == pytest.approx(geomean_ratio_ci([1.0, 1.02, 1.04]))  # one process pair: its calls
    assert clustered_geomean_ratio_ci([[1.0]]) is None and clustered_geomean_ratio_ci([]) is None
