"""Noise-aware comparison of two runs, cell by cell and metric by metric, from the raw samples.

For each (cell, metric): ratio of medians (candidate / base) with a seeded bootstrap 95% CI, a
two-sided Welch t-test on the log values (a ratio-scale test that keeps power at the 3–10
iterations a benchmark cell has: a rank test such as Mann–Whitney U cannot reach p < 0.008 with
5 against 5 samples, let alone after correcting for dozens of tests), the Benjamini–Hochberg
correction over every test of the comparison (when nothing changed it bounds the chance of any
false call at alpha, as Holm's would; when a change hits many cells at once, as a slower build
does, it keeps the power that a family-wise correction over dozens of tests throws away), and a
minimum effect per metric. The metric's own direction
(harness/core/metrics.py) says what "worse" is.

Verdicts, with `worse` = the ratio oriented so that > 1 is worse, t the minimum effect and t_eff
the minimum effect raised to the run-to-run noise floor (below; t_eff = t without history):
- regression / improvement: significant after correction, the CI excludes 1, and the point
  change is at least t_eff in that direction;
- unchanged: the whole CI lies within ±t, or the change is significant but smaller than t;
- inconclusive: anything else (too few or too noisy samples to rule a t-sized change in or out, or a
  change of at least t that the run-to-run noise could explain).
Per-cell metrics measured once (peak memory, load time) have no samples to test: they are judged
on the change against t alone and marked `basis: threshold-only`.

Run-to-run noise: iterations and processes of one run share the machine's state of those minutes,
so on a shared host two runs of the same build can differ by more than their samples suggest. When
the history holds enough earlier runs of a cell measured with the base's configuration (the whole cell
spec, the stack versions and the host: `measurement_config`), the run-to-run sd of their log medians
(from successive differences, so a real shift in the series does not count as noise) raises the bar a
change must clear to be called: t_eff = max(t, exp(z · sd · √2) − 1), z = `noise_z` (one-sided).
A change that is significant and at least t but below t_eff is one the machine cannot tell from noise:
it is `inconclusive` with the note "below the noise floor", never `unchanged`; `unchanged` needs the
CI within ±t (the configured effect, not t_eff). The comparison records sd, the number of runs it came
from and t_eff, and every report shows the minimum effect that decided the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats as sps

from harness.core.errors import HarnessInputError
from harness.core.metrics import (
    METRICS,
    TPOT,
    TTFT,
    BatchOutputThroughput,
    DocumentThroughput,
    E2ELatency,
    Goodput,
    OutputThroughput,
    PeakRSS,
    RealTimeFactor,
    RequestThroughput,
    SecondsPerImage,
)
from harness.core.schema import CellResult, RunMetadata, RunResults, measured_on
from harness.core.stats import bootstrap_ratio_ci

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive"]
COMPARISON_VERSION = "1.0"

DEFAULT_THRESHOLDS: dict[str, float] = {
    TTFT.tag: 0.10,
    TPOT.tag: 0.05,
    E2ELatency.tag: 0.05,
    OutputThroughput.tag: 0.05,
    PeakRSS.tag: 0.05,
    # whole-load and per-call throughput of the other scenario kinds (absent metrics are skipped)
    BatchOutputThroughput.tag: 0.05,
    RequestThroughput.tag: 0.05,
    Goodput.tag: 0.05,
    DocumentThroughput.tag: 0.05,
    SecondsPerImage.tag: 0.05,
    RealTimeFactor.tag: 0.05,
}


class CompareSettings(BaseModel):
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    alpha: float = 0.05
    noise_z: float = Field(2.33, description="run-to-run noise multiple a change must exceed (one-sided 1%)")
    bootstrap: int = 2000
    seed: int = 0


def worst_verdict(verdicts: set[Verdict], empty: Verdict = "unchanged") -> Verdict:
    """A cell's verdict from its metrics': a regression anywhere first, then an undecided metric."""
    for v in ("regression", "inconclusive", "improvement"):
        if v in verdicts:
            return v  # type: ignore[return-value]
    return "unchanged" if verdicts else empty


class MetricComparison(BaseModel):
    metric: str
    unit: str
    higher_is_better: bool
    basis: Literal["samples", "threshold-only"]
    n_base: int
    n_candidate: int
    base_median: float
    candidate_median: float
    ratio: float = Field(description="candidate median / base median")
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = Field(None, description="Benjamini–Hochberg-adjusted over all tests of the comparison")
    threshold: float = Field(description="the configured minimum effect")
    noise_sd: float | None = Field(None, description="run-to-run sd of the log median from the history")
    noise_runs: int | None = Field(None, description="history runs noise_sd was estimated from")
    effective_threshold: float | None = Field(None, description="minimum effect after the noise floor")
    verdict: Verdict
    note: str | None = Field(None, description="why the verdict is what it is, when not plain (e.g. the noise floor)")

    @property
    def deciding_threshold(self) -> float:
        """The minimum effect that decided the verdict: the noise floor when it raised t."""
        return self.effective_threshold if self.effective_threshold is not None else self.threshold


class CellComparison(BaseModel):
    key: str
    base_status: str
    candidate_status: str
    metrics: list[MetricComparison] = Field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return worst_verdict({m.verdict for m in self.metrics})


class Drift(BaseModel):
    field: str
    base: str | None
    candidate: str | None


class Comparison(BaseModel):
    version: str = COMPARISON_VERSION
    base_run: str
    candidate_run: str
    settings: CompareSettings
    drift: list[Drift]
    cells: list[CellComparison]
    only_in_base: list[str]
    only_in_candidate: list[str]

    def counts(self) -> dict[str, int]:
        out = {"regression": 0, "improvement": 0, "unchanged": 0, "inconclusive": 0}
        for c in self.cells:
            for m in c.metrics:
                out[m.verdict] += 1
        return out

    def regressions(self) -> list[tuple[str, MetricComparison]]:
        return [(c.key, m) for c in self.cells for m in c.metrics if m.verdict == "regression"]


def measured_values(cell: CellResult, metric: str) -> list[float]:
    """The values a comparison tests: per-iteration values (warm-up excluded); with several worker
    processes, one median per process, since iterations within a process share its state and
    understate run-to-run variance; for per-cell metrics the cell's single value."""
    if METRICS[metric].scope == "cell":
        v = cell.cell_values.get(metric)
        return [] if v is None else [v]
    per_process: dict[int, list[float]] = {}
    for s in cell.batches if METRICS[metric].scope == "batch" else cell.samples:
        if not s.warmup:
            per_process.setdefault(s.process, []).extend(s.values.get(metric, []))
    if len(per_process) > 1:
        return [float(np.median(v)) for v in per_process.values() if v]
    return [x for v in per_process.values() for x in v]


def welch_log_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Welch t-test p-value on log values; 1.0 when both samples are constant and equal."""
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0 and np.ptp(ly) == 0:
        return 1.0 if lx[0] == ly[0] else 0.0
    p = float(sps.ttest_ind(ly, lx, equal_var=False).pvalue)
    return 1.0 if np.isnan(p) else p


def adjust_p_values(p_values: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (same order as given)."""
    if not p_values:
        return []
    return [float(p) for p in sps.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def _worse(ratio: float, higher_is_better: bool) -> float:
    return 1 / ratio if higher_is_better else ratio


def noise_floor(sd: float, z: float) -> float:
    """Smallest relative change two runs' medians rarely show from noise alone: exp(z·sd·√2) − 1."""
    return math.exp(z * sd * math.sqrt(2)) - 1


def decide(m: MetricComparison, alpha: float) -> tuple[Verdict, str | None]:
    """The verdict rule of the module docstring, and a note when the noise floor decided it."""
    t, t_eff = m.threshold, m.deciding_threshold
    worse = _worse(m.ratio, m.higher_is_better)
    floor = (f"below the noise floor: a {abs(worse - 1) * 100:.1f}% change, this machine's run-to-run noise "
             f"needs {t_eff * 100:.0f}% ({m.noise_runs} runs)")
    if m.basis == "threshold-only":
        if worse >= 1 + t_eff:
            return "regression", None
        if worse <= 1 / (1 + t_eff):
            return "improvement", None
        return "unchanged", None
    lo, hi = m.ci_low, m.ci_high
    assert lo is not None and hi is not None and m.p_adjusted is not None
    worse_lo, worse_hi = sorted((_worse(lo, m.higher_is_better), _worse(hi, m.higher_is_better)))
    significant = m.p_adjusted < alpha and (worse_lo > 1 or worse_hi < 1)
    if significant and worse >= 1 + t_eff:
        return "regression", None
    if significant and worse <= 1 / (1 + t_eff):
        return "improvement", None
    if worse_lo >= 1 / (1 + t) and worse_hi <= 1 + t:
        return "unchanged", None
    if significant and 1 / (1 + t) < worse < 1 + t:
        return "unchanged", None
    return "inconclusive", floor if significant else None


def _drift(base: RunResults, cand: RunResults) -> list[Drift]:
    b, c = base.metadata, cand.metadata
    out: list[Drift] = []
    for name in sorted(set(b.versions) | set(c.versions)):
        if b.versions.get(name) != c.versions.get(name):
            out.append(Drift(field=f"version {name}", base=b.versions.get(name), candidate=c.versions.get(name)))
    pairs = {
        "suite sha256": (b.suite_sha256, c.suite_sha256),
        "cpu model": (b.host.cpu_model, c.host.cpu_model),
        "host": (b.host.hostname, c.host.hostname),
        "logical cores": (str(b.host.logical_cores), str(c.host.logical_cores)),
        "devices": ("; ".join(f"{d.name}={d.full_name}" for d in b.devices),
                    "; ".join(f"{d.name}={d.full_name}" for d in c.devices)),
    }
    for name, (x, y) in pairs.items():
        if x != y:
            out.append(Drift(field=name, base=x, candidate=y))
    fb, fc = set(b.host.cpu_flags), set(c.host.cpu_flags)
    if fb != fc:
        out.append(Drift(field="cpu flags", base=" ".join(sorted(fb - fc)) or None,
                         candidate=" ".join(sorted(fc - fb)) or None))
    return out


# (cell key, metric, measurement configuration) -> (run-to-run sd of the log median, runs) or None
NoiseLookup = Callable[[str, str, "str | None"], "tuple[float, int] | None"]

# Cell settings that change nothing measured (limits, checks), left out of a measurement configuration.
_NOT_MEASUREMENT = {"key", "gates", "timeout_s", "prepare_timeout_s", "fidelity_check", "fidelity_tolerance",
                    "transformers_check", "transformers_tolerance"}


def measurement_config(cell: CellResult, meta: RunMetadata) -> str:
    """A digest of everything a cell's figures depend on: its whole spec but limits and checks, the stack it
    imported and the host. Runs share a noise floor only when this is equal."""
    import hashlib
    import json

    host = measured_on(cell, meta)
    stack = cell.runtime_versions or {k: meta.versions.get(k) for k in ("openvino", "openvino-genai",
                                                                         "openvino-tokenizers")}
    # a cell without a reference side digests as it did before the field existed: its recorded noise floor holds
    unset = {"reference_side"} if cell.spec.reference_side is None else set()
    doc = {"spec": cell.spec.model_dump(mode="json", exclude=_NOT_MEASUREMENT | unset), "stack": stack,
           "host": [host.hostname, host.cpu_model, host.logical_cores]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def compare_runs(base: RunResults, cand: RunResults, settings: CompareSettings | None = None,
                 noise: NoiseLookup | None = None) -> Comparison:
    """Compare two runs cell by cell (matched by key); see the module docstring. `noise(cell_key, metric)`
    gives the run-to-run sd of the log median and how many runs it came from (or None)."""
    settings = settings or CompareSettings()
    rng = np.random.default_rng(settings.seed)
    bcells = {c.key: c for c in base.cells}
    ccells = {c.key: c for c in cand.cells}
    cells: list[CellComparison] = []
    tested: list[MetricComparison] = []
    for key in [k for k in ccells if k in bcells]:
        b, c = bcells[key], ccells[key]
        cc = CellComparison(key=key, base_status=b.status, candidate_status=c.status)
        cells.append(cc)
        if b.status != "ok" or c.status != "ok":
            continue
        config = measurement_config(b, base.metadata) if noise is not None else None
        for metric, t in settings.thresholds.items():
            x = np.asarray(measured_values(b, metric), dtype=float)
            y = np.asarray(measured_values(c, metric), dtype=float)
            if len(x) == 0 or len(y) == 0 or np.median(x) == 0:
                continue
            m = METRICS[metric]
            mc = MetricComparison(
                metric=metric, unit=m.unit, higher_is_better=m.higher_is_better,
                basis="samples" if m.scope == "sample" and len(x) > 1 and len(y) > 1 else "threshold-only",
                n_base=len(x), n_candidate=len(y), base_median=float(np.median(x)),
                candidate_median=float(np.median(y)), ratio=float(np.median(y) / np.median(x)),
                threshold=t, verdict="inconclusive",
            )
            found = noise(key, metric, config) if noise is not None and mc.basis == "samples" else None
            if found is not None:
                mc.noise_sd, mc.noise_runs = found
                mc.effective_threshold = max(t, noise_floor(mc.noise_sd, settings.noise_z))
            if mc.basis == "samples":
                mc.ci_low, mc.ci_high = bootstrap_ratio_ci(x, y, settings.bootstrap, rng)
                mc.p_value = welch_log_p(x, y)
                tested.append(mc)
            cc.metrics.append(mc)
    for mc, p in zip(tested, adjust_p_values([m.p_value for m in tested]), strict=True):  # type: ignore[misc]
        mc.p_adjusted = p
    for cc in cells:
        for mc in cc.metrics:
            mc.verdict, mc.note = decide(mc, settings.alpha)
    return Comparison(
        base_run=base.metadata.run_id, candidate_run=cand.metadata.run_id, settings=settings,
        drift=_drift(base, cand), cells=cells,
        only_in_base=[k for k in bcells if k not in ccells], only_in_candidate=[k for k in ccells if k not in bcells],
    )


def parse_thresholds(items: list[str] | None) -> dict[str, float]:
    """--threshold METRIC=FRACTION options (repeatable) as a dict; one line naming a bad one."""
    from harness.core.metrics import METRICS

    out: dict[str, float] = {}
    for item in items or []:
        tag, sep, value = item.partition("=")
        if not sep or tag not in METRICS:
            raise HarnessInputError("command line", "--threshold", item,
                                    f"expected METRIC=FRACTION with a metric from: {', '.join(METRICS)}")
        try:
            out[tag] = float(value)
        except ValueError:
            raise HarnessInputError("command line", "--threshold", item, "the fraction is not a number") from None
        if not 0 <= out[tag] < 10:  # nan fails this too
            raise HarnessInputError("command line", "--threshold", item, "the fraction must be from 0 to 10 (0.05 = 5%)")
    return out
