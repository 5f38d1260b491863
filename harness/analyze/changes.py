"""Change points in a metric's series over recorded runs: where a cell's nightly medians shifted and stayed.

Detection is ruptures' PELT (Killick, Fearnhead & Eckley 2012) on the log of the run medians with an l2
(mean-shift) cost, through its C implementation (`KernelCPD` with the linear kernel, whose cost is the l2 cost:
the same change points as `Pelt(model="l2")`, ~1000x faster on 500 runs); its penalty is scaled by the series'
own run-to-run variance (`stats.successive_sd`, robust to the shifts it is looking for), so no threshold is set
per metric. Each change point PELT proposes is then tested as Apache Otava (E-Divisive + Student t) and MongoDB's
CI do, with a t-test between the runs since the previous change point and the runs up to the next: Yuen's
trimmed-mean Welch test (scipy's figures, computed here: `trimmed_welch`), since
a shared machine's runs have heavy tails and one wild run must not hide a step. The weakest point that fails the
significance (`max_pvalue`) or the minimum magnitude is dropped and its neighbours' segments merged and
re-tested, until every remaining point passes. Its magnitude is the ratio of the two segments' (trimmed)
geometric means with the test's 95% interval. A series with a zero or negative value is taken on its linear scale.

Each series is one (suite, host, cell, metric): the same cell key in another suite or on another machine
measures something else and would show a false shift where the series interleave.

A cell measured beside a suite's reference side has a second series, its ratios candidate / reference (one per
reference label). The machine's drift cancels in a ratio, so its noise is stationary and small, and it has its own
settings (`RatioChangeSettings`, `noise: series`): the trimmed means of the two segments are tested against the
whole series' noise instead of the segments' own spread, which three new runs cannot estimate (Welch's test leaves
them about two degrees of freedom)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

from harness.core.digest import digest
from harness.core.schema import ChangeSettings
from harness.core.stats import successive_sd

# Metrics whose unit counts tokens say what a cell asked for or produced, not how fast or how well: a
# change in them is not a regression or an improvement.
COUNT_UNITS = ("tokens",)
TRIM = 0.2  # Yuen's trimmed means: the fifth of runs at either end of a segment does not count
RATIO_UNIT = "× reference"


@dataclass(frozen=True)
class Shift:
    """One change point in a plain series: `index` is the first value at the new level."""

    index: int
    before: float  # the segment's centre (geometric mean on the log scale, mean otherwise)
    after: float
    change: float | None  # after / before - 1; None when before is 0
    ci_low: float | None  # 95% interval of `change`
    ci_high: float | None
    pvalue: float
    before_n: int
    after_n: int


def find_shifts(values: Sequence[float], settings: ChangeSettings) -> list[Shift]:
    """Change points of `values` (oldest first), per the module docstring."""
    x = np.asarray(values, dtype=float)
    if x.size < 2 * settings.min_segment or not np.isfinite(x).all():
        return []
    log_scale = bool((x > 0).all())
    y = np.log(x) if log_scale else x
    if np.ptp(y) == 0:
        return []
    sd = successive_sd(y)
    if sd == 0:  # most runs identical (a count, a deterministic accuracy figure): any change is a step
        sd = float(np.std(y)) * 1e-3 or 1e-12
        floor_sd = 0.0
    else:
        floor_sd = sd
    cuts = _pelt(y, settings.penalty * sd * sd * math.log(y.size), settings.min_segment)
    series_noise = settings.noise == "series" and floor_sd > 0
    done: dict[tuple[int, int, int], Shift] = {}  # a segment pair dropping a neighbour's cut is tested anew, not the rest
    while True:
        tested = []
        for bounds in zip([0, *cuts], cuts, [*cuts[1:], y.size], strict=False):
            if bounds not in done:
                done[bounds] = _test(y, *bounds, log_scale, floor_sd, series_noise)
            tested.append(done[bounds])
        failing = [(s.pvalue, -abs(s.change or 0), i) for i, s in enumerate(tested)
                   if s.pvalue > settings.max_pvalue or (s.change is not None and abs(s.change) < settings.min_magnitude)]
        if not failing:
            return tested
        del cuts[max(failing)[2]]  # the least significant goes first, then its merged neighbours are re-tested


def _pelt(y: np.ndarray, penalty: float, min_size: int) -> list[int]:
    import ruptures as rpt

    # the linear kernel's cost is the l2 cost; ruptures' Python Pelt takes ~0.6 s a 500-run series, this ~0.5 ms
    ends = rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(y.reshape(-1, 1)).predict(pen=penalty)
    return [int(e) for e in ends[:-1]]  # the last "end" is always len(y)


def trimmed_welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Yuen's trimmed Welch test of b against a, as scipy.stats.ttest_ind(b, a, equal_var=False, trim=TRIM)
    computes it: (trimmed mean of a, of b, the standard error of their difference, degrees of freedom (1 where
    undefined, as scipy)). Here rather than through scipy because its per-call
    overhead (~2.5 ms) made a 500-run series' search cost more than everything else on the site."""
    parts = []
    for x in (a, b):
        xs = np.sort(x)
        n = xs.size
        g = int(n * TRIM)
        h = n - 2 * g
        winsorized = np.clip(xs, xs[g], xs[n - g - 1])
        with np.errstate(all="ignore"):
            var = float(winsorized.var(ddof=2 * g + 1)) if h > 1 else math.nan
        parts.append((float(xs[g:n - g].mean()), var / h, h))
    (mean_a, vn_a, h_a), (mean_b, vn_b, h_b) = parts
    spread = vn_a ** 2 / (h_a - 1) + vn_b ** 2 / (h_b - 1) if h_a > 1 and h_b > 1 else math.nan
    df = (vn_a + vn_b) ** 2 / spread if spread > 0 else math.nan
    df = 1.0 if not math.isfinite(df) else float(df)
    return mean_a, mean_b, math.sqrt(vn_a + vn_b) if vn_a + vn_b >= 0 else math.nan, df


def _test(y: np.ndarray, lo: int, cut: int, hi: int, log_scale: bool, noise_sd: float, series_noise: bool) -> Shift:
    """Yuen's trimmed Welch test of y[lo:cut] against y[cut:hi], so one wild run does not hide a step;
    with `series_noise`, the difference of the same trimmed means against the whole series' noise sd."""
    from scipy.special import (  # the t distribution's ufuncs: scipy.stats' objects cost ~0.1 ms a call
        stdtr,
        stdtrit,
    )

    a, b = y[lo:cut], y[cut:hi]
    change: float | None
    low: float | None
    high: float | None
    centre_a, centre_b, se, df = trimmed_welch(a, b)
    diff = centre_b - centre_a
    if not math.isfinite(se):
        se = 0.0
    q = float(stdtrit(df, 0.975))
    # A few runs can agree by chance far better than the series' noise allows: the whole series' noise
    # floors the standard error, so three lucky runs do not make a significant step.
    se = max(se, noise_sd * math.sqrt(1 / a.size + 1 / b.size))
    if series_noise:
        # stationary noise (a ratio series): three new runs are judged against the noise the whole series shows,
        # with its degrees of freedom, not the two or so Welch's test leaves a three-run segment
        se, df = noise_sd * math.sqrt(1 / a.size + 1 / b.size), float(y.size - 2)
        q = float(stdtrit(df, 0.975))
    if se == 0:  # two flat segments at different levels: certain
        pvalue, half = (0.0 if diff else 1.0), 0.0
    else:
        pvalue, half = float(2 * stdtr(df, -abs(diff) / se)), q * se
    if log_scale:
        before, after = math.exp(centre_a), math.exp(centre_b)
        change, low, high = math.expm1(diff), math.expm1(diff - half), math.expm1(diff + half)
    else:
        before, after = centre_a, centre_b
        scale = abs(before)
        change, low, high = ((diff / scale, (diff - half) / scale, (diff + half) / scale) if scale
                             else (None, None, None))
    return Shift(index=cut, before=before, after=after, change=change, ci_low=low, ci_high=high, pvalue=pvalue,
                 before_n=a.size, after_n=b.size)


class SeriesPoint(NamedTuple):
    """One run's median of one metric of one cell, as the history holds it (on a ratio series, the run's ratio
    candidate / reference in `median`). A named tuple, not a model: a lab's history reads millions of them, and
    it is the cheapest immutable record to make (~0.25 µs against a frozen dataclass's 0.8)."""

    run_id: str
    started_at: str
    median: float
    genai_version: str | None = None
    openvino_version: str | None = None
    ci_low: float | None = None  # the median's (a ratio series: the ratio's) 95% interval, where recorded
    ci_high: float | None = None


TriageState = Literal["acknowledged", "expected", "fixed"]
TRIAGE_STATES: tuple[TriageState, ...] = get_args(TriageState)


class TriageMark(BaseModel):
    """A team's verdict on a change point, kept in the history (`harness history triage`)."""

    model_config = ConfigDict(frozen=True)

    state: TriageState = Field(description="acknowledged: being looked at; expected: a known, accepted change; "
                               "fixed: resolved. Each keeps the point out of the `--recent` gate")
    note: str
    author: str | None = None
    marked_at: str
    marked_run: str = Field(description="the first run at the new level when it was marked (a later search may "
                            "have moved the point by a run)")


def series_label(suite: str, host: str | None, cell_key: str, metric: str, reference: str | None) -> str:
    """'suite @ host: cell metric ÷ reference', as the commands name a series."""
    where = f"{suite}" + (f" @ {host}" if host else "")
    return f"{where}: {cell_key} {metric}" + (f" ÷ {reference}" if reference else "")


def change_id(suite: str, host: str | None, cell_key: str, metric: str, reference: str | None, after_run: str) -> str:
    """A change point's stable name: its series and its first run at the new level."""
    return "cp-" + digest([suite, host, cell_key, metric, reference, after_run], 10)


class ChangePoint(BaseModel):
    """A change point in one (suite, host, cell, metric) series of the history."""

    model_config = ConfigDict(frozen=True)

    suite: str
    host: str | None
    cell_key: str
    metric: str
    unit: str
    direction: Literal["regression", "improvement", "change"] = Field(
        description="by the metric registry's direction; `change` for a metric without one")
    before_run: str = Field(description="last run at the old level")
    after_run: str = Field(description="first run at the new level")
    before_started: str
    after_started: str
    before_versions: str = Field(description="openvino-genai / openvino of the last run at the old level")
    after_versions: str
    before_value: float = Field(description="centre of the runs since the previous change point (trimmed geometric "
                                "mean)")
    after_value: float = Field(description="centre of the runs up to the next change point")
    change: float | None = Field(description="after / before - 1 (None when before is 0)")
    ci_low: float | None = Field(description="95% trimmed Welch interval of `change`")
    ci_high: float | None
    pvalue: float = Field(description="trimmed (Yuen) Welch t-test between the two segments (on a ratio series, "
                          "the same trimmed means against the series' noise)")
    before_runs: int
    after_runs: int
    runs_since: int = Field(description="runs from the first at the new level to the newest, both counted")
    reference: str | None = Field(None, description="a ratio series: the reference side's label (the values are "
                                  "candidate / reference); None: the run medians themselves")
    triage: TriageMark | None = Field(None, description="the team's verdict, where one was recorded")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """For `harness history triage ID`: the same point keeps it while its first run at the new level does."""
        return change_id(self.suite, self.host, self.cell_key, self.metric, self.reference, self.after_run)

    def label(self) -> str:
        return series_label(self.suite, self.host, self.cell_key, self.metric, self.reference)


class SeriesKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: str
    host: str | None
    cell_key: str
    metric: str
    reference: str | None = Field(None, description="a ratio series to this reference side's label; None: the run "
                                  "medians")


def _versions(p: SeriesPoint) -> str:
    return f"genai {p.genai_version or '?'} / ov {p.openvino_version or '?'}"


def series_changes(key: SeriesKey, points: Sequence[SeriesPoint], settings: ChangeSettings) -> list[ChangePoint]:
    """The change points of one series of the history (points oldest first)."""
    from harness.core.metrics import METRICS

    metric = METRICS.get(key.metric)
    points = [p for p in points if math.isfinite(p.median)]  # one unreadable run must not hide the series
    out = []
    for s in find_shifts([p.median for p in points], settings):
        before, after = points[s.index - 1], points[s.index]
        direction: Literal["regression", "improvement", "change"] = "change"
        if metric is not None and metric.unit not in COUNT_UNITS and s.after != s.before:
            worse = (s.after < s.before) if metric.higher_is_better else (s.after > s.before)
            direction = "regression" if worse else "improvement"
        out.append(ChangePoint(
            suite=key.suite, host=key.host, cell_key=key.cell_key, metric=key.metric, reference=key.reference,
            unit=RATIO_UNIT if key.reference else metric.unit if metric else "", direction=direction,
            before_run=before.run_id,
            after_run=after.run_id, before_started=before.started_at, after_started=after.started_at,
            before_versions=_versions(before), after_versions=_versions(after), before_value=s.before,
            after_value=s.after, change=s.change, ci_low=s.ci_low, ci_high=s.ci_high, pvalue=s.pvalue,
            before_runs=s.before_n, after_runs=s.after_n, runs_since=len(points) - s.index))
    return out


def default_metrics() -> list[str]:
    """The metrics `harness history changes` looks at when none are named: all but token counts."""
    from harness.core.metrics import METRICS

    return [tag for tag, m in METRICS.items() if m.unit not in COUNT_UNITS]


def recent_regressions(changes: Sequence[ChangePoint], recent: int) -> list[ChangePoint]:
    """Regression change points whose first run at the new level is among the newest `recent` runs (triaged
    ones too: the gate leaves those out, `untriaged`)."""
    return [c for c in changes if c.direction == "regression" and c.runs_since <= recent]


def untriaged(changes: Sequence[ChangePoint]) -> list[ChangePoint]:
    return [c for c in changes if c.triage is None]
