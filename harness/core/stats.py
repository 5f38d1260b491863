"""The one statistics module: summaries of raw metric values.

Percentiles use linear interpolation between order statistics (numpy's default, Hyndman–Fan
type 7). The standard deviation is the sample one (n − 1). The 95% confidence interval of the
median is distribution-free, from order statistics: the ranks come from the Binomial(n, 0.5)
quantiles, so it needs no normality assumption; with fewer than 6 values no such interval
reaches 95% and it is reported as undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from harness.core.schema import Summary


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """Order-statistic confidence interval of the median, or None when n is too small."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n < 2:
        return None
    alpha = 1 - confidence
    # Largest j with P(B <= j-1) <= alpha/2, B ~ Binomial(n, 0.5): the interval [x_(j), x_(n-j+1)]
    # (1-based) then covers the median with probability >= confidence.
    j = int(sps.binom.ppf(alpha / 2, n, 0.5))
    if sps.binom.cdf(j - 1, n, 0.5) > alpha / 2:
        j -= 1
    if j < 1:
        return None
    return float(x[j - 1]), float(x[n - j])


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """(mean, low, high): Student-t confidence interval of the mean of a few independent repetitions
    (e.g. one figure per repeated load); None with fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    mean, sem = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 1)) * sem
    return mean, mean - half, mean + half


def summarize(values: Sequence[float]) -> Summary | None:
    """Summary statistics of raw values; None for no values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return None
    mean = float(x.mean())
    stdev = float(x.std(ddof=1)) if x.size > 1 else None
    ci = median_ci(x)
    return Summary(
        n=int(x.size),
        mean=mean,
        median=float(np.median(x)),
        p90=float(np.percentile(x, 90)),
        p99=float(np.percentile(x, 99)),
        stdev=stdev,
        min=float(x.min()),
        max=float(x.max()),
        cv=(stdev / mean) if stdev is not None and mean != 0 else None,
        median_ci_low=ci[0] if ci else None,
        median_ci_high=ci[1] if ci else None,
    )


def bootstrap_ratio_ci(x: np.ndarray, y: np.ndarray, resamples: int, rng: np.random.Generator,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of median(y) / median(x), both samples resampled independently."""
    mx = np.median(x[rng.integers(0, len(x), (resamples, len(x)))], axis=1)
    my = np.median(y[rng.integers(0, len(y), (resamples, len(y)))], axis=1)
    ratios = my / mx
    a = (1 - confidence) / 2
    return float(np.quantile(ratios, a)), float(np.quantile(ratios, 1 - a))


def geomean_ratio_ci(ratios: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Geometric mean of paired ratios with a Student-t interval on their logs; None for fewer than 2."""
    logs = np.log(np.asarray(ratios, dtype=float))
    if logs.size < 2:
        return None
    m = float(logs.mean())
    h = float(sps.t.ppf(0.5 + confidence / 2, logs.size - 1) * logs.std(ddof=1) / math.sqrt(logs.size))
    return math.exp(m), math.exp(m - h), math.exp(m + h)


def confidence_sequence(values: Sequence[float], alpha: float = 0.05,
                        target_n: int = 20) -> tuple[float, float, float] | None:
    """Mean of `values` with a two-sided (1 − alpha) confidence sequence: an interval that holds at every
    n at once, so it may be looked at after each new value and the first look that excludes a value
    still errs with probability ≤ alpha. None for fewer than 2 values.

    The asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Howard and Ramdas ("Time-uniform
    central limit theory and asymptotic confidence sequences", Annals of Statistics 2024, eq. 2.9): the
    Robbins normal-mixture boundary with the sample variance in place of the true one, its mixture
    tuned to be tightest at `target_n` values. Being asymptotic, it is liberal at a handful of values;
    the sample sd is therefore scaled by the Student-t to normal quantile ratio (simulated A/A error over
    60 looks from n = 5: 4.7% for normal, 3.1% for t(3) noise; see tests/unit/core/test_stats.py)."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        return None
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) * float(sps.t.ppf(1 - alpha / 2, n - 1) / sps.norm.ppf(1 - alpha / 2))
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / target_n
    radius = sd * math.sqrt(2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))
    return mean, mean - radius, mean + radius


def successive_sd(values: Sequence[float] | np.ndarray) -> float:
    """Standard deviation of a series' noise from its successive differences (1.4826 x MAD of the
    differences / sqrt 2): a shift in the series is one large difference and barely moves it, where the
    spread around one centre would count it as noise. 0 for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return 0.0
    diffs = np.diff(x)
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def two_level_sd(groups: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """(within, between) standard deviations of values nested in groups (one-way random effects, method of
    moments): `within` pooled over the groups, `between` the sd of the groups' own offsets beyond what the
    within noise puts into their means (floored at 0). None without two groups of two values."""
    kept = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if len(kept) < 2:
        return None
    dof = sum(g.size - 1 for g in kept)
    within_var = sum(float(((g - g.mean()) ** 2).sum()) for g in kept) / dof
    means = np.asarray([g.mean() for g in kept])
    mean_share = float(np.mean([within_var / g.size for g in kept]))
    between_var = max(0.0, float(means.var(ddof=1)) - mean_share)
    return math.sqrt(within_var), math.sqrt(between_var)


def clustered_geomean_ratio_ci(groups: Sequence[Sequence[float]],
                               confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Geometric mean of paired ratios measured in groups (one group per pair of worker processes), with an
    interval that counts the groups' own offsets: with 2+ groups the cluster-robust (CR1) standard error of the
    mean log ratio with k − 1 degrees of freedom (for equal groups, the Student-t interval of the group means);
    with one group, the Student-t interval of its ratios, which sees the call-to-call noise only. None for fewer
    than 2 ratios."""
    logs = [np.log(np.asarray(g, dtype=float)) for g in groups if len(g)]
    n = sum(g.size for g in logs)
    if n < 2:
        return None
    if len(logs) == 1:
        return geomean_ratio_ci(np.exp(logs[0]).tolist(), confidence)
    m = float(sum(g.sum() for g in logs) / n)
    k = len(logs)
    var = k / (k - 1) * sum(float(g.sum() - g.size * m) ** 2 for g in logs) / n ** 2
    h = float(sps.t.ppf(0.5 + confidence / 2, k - 1)) * math.sqrt(var)
    return math.exp(m), math.exp(m - h), math.exp(m + h)
