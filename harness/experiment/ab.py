"""`harness ab`: base against candidate in interleaved rounds, paired, with sequential stopping.

Each round starts, for every cell still undecided, one fresh measuring worker process per side, in a
random order, back to back on the same prepared model bytes, prompts and settings (Randomized Multiple
Interleaved Trials, Abedi & Brecht 2017; duet benchmarking, Bulej et al. 2020): the machine's slow drift
hits both sides of a round alike and cancels in the round's paired log ratio log(candidate / base).

After each round every (cell, metric) gets a confidence sequence of the mean paired log ratio
(`stats.confidence_sequence`, valid under looking after every round), at alpha divided by the number of
(cell, metric) pairs (Bonferroni: the chance of any false call over the whole comparison stays ≤ alpha).
With t the metric's minimum effect and the sequence oriented so that > 0 is worse:
- unchanged: the sequence lies within ±log(1 + t);
- regression: it lies above 0 (and is not within ±log(1 + t));
- improvement: it lies below 0 (likewise);
- inconclusive: anything else, i.e. no change is ruled in and a change of t is not ruled out.
A cell is settled when all its metrics are; settled cells stop, the comparison stops when every cell is
settled or the time budget would be exceeded by another round. See docs/ab.md."""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from harness.analyze.aggregate import cell_result, median_values
from harness.analyze.compare import DEFAULT_THRESHOLDS, Verdict, worst_verdict
from harness.core.events import Event
from harness.core.metrics import (
    METRICS,
    TPOT,
    TTFT,
    BatchOutputThroughput,
    OutputThroughput,
    PeakRSS,
    RequestThroughput,
)
from harness.core.schema import CellResult, CellSpec, CellStatus, PropertyValue, SideSpec
from harness.core.stats import confidence_sequence, geomean_ratio_ci, two_level_sd
from harness.execute.paired import SIDES, call_pairing_possible, process_pair
from harness.execute.run_options import RunOptions
from harness.execute.run_record import now_iso
from harness.execute.runner import PreparedCell, measure_process, prepare_cell
from harness.execute.worker_process import ProgressSink
from harness.plan.sides import apply_side
from harness.plan.sides import parse_side as parse_side  # re-exported: callers' old home

AB_VERSION = "1.2"  # 1.1: calls pairing (ABSettings.pairing, ABCell.pairing, ABMetric.paired_by); 1.2: slices
INTERRUPTED = "interrupted by the user"
# Metrics judged by default, where a cell measures them (e2e follows TTFT and TPOT, so it is not judged twice).
DEFAULT_METRICS = (TTFT.tag, TPOT.tag, OutputThroughput.tag, BatchOutputThroughput.tag, RequestThroughput.tag, PeakRSS.tag)


class ABSettings(BaseModel):
    alpha: float = Field(0.05, gt=0, lt=1, description="error rate of the whole comparison (all cells and metrics)")
    budget_s: float = Field(600, gt=0, description="wall-time budget for the rounds")
    min_rounds: int = Field(5, ge=2, description="rounds before any verdict")
    max_rounds: int = Field(200, ge=2)
    target_rounds: int = Field(20, ge=2, description="round count at which the confidence sequence is tightest")
    metrics: list[str] = Field(default_factory=list, description="metrics judged (empty: DEFAULT_METRICS the cells "
                               "measure)")
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    seed: int = 0
    pairing: Literal["slices", "calls", "processes"] = Field(
        "slices", description="slices: both sides loaded at once in long-lived processes, the two calls of a pair run "
        "at once with only one side let run at a time, switching every slice_ms, each call timed on its active "
        "clock; calls: likewise, but the calls of a pair run one after the other (ABBA blocks); a round is one pair "
        "of fresh processes (calls whose times only the backend took fall back from slices to calls; kinds that "
        "cannot pair calls, and sides that do not fit in memory together, to processes); processes: a round is one "
        "fresh process per side")
    blocks: int = Field(4, ge=1, description="slices and calls pairing: blocks (two call pairs each, either side "
                        "first once) per process pair")
    slice_ms: float = Field(25, ge=1, le=10000, description="slices pairing: how long one side runs before the other "
                            "takes over")


class ABMetric(BaseModel):
    metric: str
    unit: str
    higher_is_better: bool
    rounds: int = Field(description="paired rounds measured")
    base_median: float = Field(description="median over rounds of the base side's per-round value")
    candidate_median: float
    ratio: float = Field(description="geometric mean of the paired per-round ratios candidate / base")
    ci_low: float | None = Field(None, description="95% Student-t interval of the ratio at the final round")
    ci_high: float | None = None
    cs_low: float | None = Field(None, description="always-valid confidence sequence at the comparison's alpha "
                                 "(Bonferroni over cells and metrics): what decided the verdict")
    cs_high: float | None = None
    threshold: float = Field(description="the minimum effect that decided the verdict")
    verdict: Verdict
    settled_at: int | None = Field(None, description="round at which the verdict was settled")
    paired_by: Literal["call", "process"] = Field(
        "process", description="call: the ratio is of calls paired within a round (the round's value is the mean "
        "of its call pairs' log ratios); process: of the rounds' per-process values")
    pairs: int = Field(0, description="paired samples: call pairs (paired_by call) or rounds")
    within_sd: float | None = Field(None, description="paired_by call: sd of one call pair's log ratio within a "
                                    "process pair (pooled)")
    between_sd: float | None = Field(None, description="paired_by call: sd of the process pairs' own offsets (log "
                                     "ratio), beyond what the within-pair noise explains; 0 when not seen")
    base_values: list[float] = Field(default_factory=list, description="per-round values, base side")
    candidate_values: list[float] = Field(default_factory=list, description="per-round values, candidate side")


class ABCell(BaseModel):
    key: str
    model: str
    precision: str
    device: str
    scenario: str
    params: dict[str, PropertyValue] = Field(default_factory=dict)
    base_status: str = "ok"
    candidate_status: str = "ok"
    error: str | None = None
    errors: dict[str, str] = Field(default_factory=dict, description="each failed side's error (base, candidate)")
    rounds: int = 0
    settled: bool = False
    order: list[str] = Field(default_factory=list, description="which side ran (or loaded) first in each round")
    pairing: Literal["slices", "calls", "processes"] = Field("processes", description="how this cell's sides were "
                                                               "paired")
    pairing_note: str | None = Field(None, description="why a cell was paired otherwise than asked")
    metrics: list[ABMetric] = Field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return worst_verdict({m.verdict for m in self.metrics}, empty="inconclusive")


class ABResult(BaseModel):
    version: str = AB_VERSION
    ab_id: str
    suite_name: str
    suite_file: str | None = None
    base: SideSpec
    candidate: SideSpec
    base_run: str = Field(description="run id of the base side's results (base/results.json)")
    candidate_run: str
    settings: ABSettings
    started_at: str
    finished_at: str | None = None
    wall_s: float = 0.0
    stop_reason: str = ""
    environments: dict[str, dict[str, str | None]] = Field(
        default_factory=dict, description="versions each side's environment imports")
    cells: list[ABCell] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """A 1.0 record paired whole processes (there was nothing else), a 1.1 record calls one after the other,
        whatever today's default is."""
        before = {"1.0": "processes", "1.1": "calls"}
        if isinstance(data, dict) and data.get("version") in before and isinstance(data.get("settings"), dict):
            data = {**data, "settings": {"pairing": before[data["version"]], **data["settings"]}}
        return data

    def counts(self) -> dict[str, int]:
        out = {"regression": 0, "improvement": 0, "unchanged": 0, "inconclusive": 0}
        for c in self.cells:
            out[c.verdict] += 1
        return out

    def regressions(self) -> list[tuple[str, ABMetric]]:
        return [(c.key, m) for c in self.cells for m in c.metrics if m.verdict == "regression"]


def decide(cs: tuple[float, float] | None, threshold: float, higher_is_better: bool) -> Verdict:
    """The verdict rule of the module docstring on a confidence sequence of the mean log ratio."""
    if cs is None:
        return "inconclusive"
    lo, hi = (-cs[1], -cs[0]) if higher_is_better else cs  # oriented: > 0 is worse
    margin = math.log1p(threshold)
    if -margin < lo and hi < margin:
        return "unchanged"
    if lo > 0:
        return "regression"
    if hi < 0:
        return "improvement"
    return "inconclusive"


def judge(metric: str, base: list[float], cand: list[float], alpha: float, threshold: float,
          target_rounds: int, min_rounds: int, call_logs: list[list[float]] | None = None) -> ABMetric:
    """One (cell, metric) from its paired per-round values; with `call_logs` (each round's call pairs' log
    ratios) the rounds' log ratios are the means of their call pairs' (a two-level estimate: the rounds are the
    independent units, so a process pair's own offset counts as the noise it is, and the call pairs make each
    round's value precise)."""
    m = METRICS[metric]
    pairs = [(b, c) for b, c in zip(base, cand, strict=True) if b > 0 and c > 0]
    levels = None
    if call_logs is not None:
        kept = [r for r in call_logs if r]
        logs = [statistics.fmean(r) for r in kept]
        levels = two_level_sd(kept)
        n_pairs = sum(len(r) for r in kept)
    else:
        logs = [math.log(c / b) for b, c in pairs]
        n_pairs = len(pairs)
    ratio = math.exp(statistics.fmean(logs)) if logs else float("nan")
    fixed = geomean_ratio_ci([math.exp(x) for x in logs]) if len(logs) >= 2 else None
    seq = confidence_sequence(logs, alpha, target_rounds) if len(logs) >= 2 else None
    cs = (seq[1], seq[2]) if seq else None
    verdict = decide(cs, threshold, m.higher_is_better) if len(logs) >= min_rounds else "inconclusive"
    return ABMetric(
        metric=metric, unit=m.unit, higher_is_better=m.higher_is_better, rounds=len(logs),
        base_median=_median([b for b, _ in pairs]), candidate_median=_median([c for _, c in pairs]), ratio=ratio,
        ci_low=fixed[1] if fixed else None, ci_high=fixed[2] if fixed else None,
        cs_low=math.exp(cs[0]) if cs else None, cs_high=math.exp(cs[1]) if cs else None,
        threshold=threshold, verdict=verdict, base_values=list(base), candidate_values=list(cand),
        paired_by="call" if call_logs is not None else "process", pairs=n_pairs,
        within_sd=levels[0] if levels else None, between_sd=levels[1] if levels else None)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_ab(cells: list[CellSpec], base: SideSpec, candidate: SideSpec, out_dir: Path, options: RunOptions,
           settings: ABSettings, result: ABResult, progress: ProgressSink, log: Callable[[str], None],
           on_round: Callable[[ABResult], None] | None = None) -> dict[str, list[CellResult]]:
    """Run the rounds into `result`; returns each side's cell results (every round one worker process)."""
    rng = random.Random(settings.seed)
    t0 = time.monotonic()
    runs: list[_CellRun] = []
    for cell in cells:
        sides = {name: prepare_cell(apply_side(cell, side), out_dir / name, options, progress)
                 for name, side in (("base", base), ("candidate", candidate))}
        ab = ABCell(key=cell.key, model=cell.model.name, precision=cell.precision, device=cell.device,
                    scenario=cell.scenario.name, params=dict(cell.scenario.params),
                    base_status=sides["base"].status, candidate_status=sides["candidate"].status)
        ab.errors = {s: p.error or p.status for s, p in sides.items() if p.status != "ok"}
        if ab.errors:
            ab.error = "; ".join(f"{s}: {e}" for s, e in ab.errors.items())
        elif settings.pairing != "processes":
            if call_pairing_possible(*(p.cell for p in sides.values())):
                ab.pairing = settings.pairing
            else:
                ab.pairing_note = (f"a {cell.scenario.kind} cell on {' and '.join(sorted({p.cell.runtime for p in sides.values()}))} "
                                   "is measured as whole processes (no call-level pairing)")
        result.cells.append(ab)
        runs.append(_CellRun(cell, sides, ab, events={s: list(p.events) for s, p in sides.items()}))
    alpha_each: float | None = None  # fixed once the first round shows which metrics each cell measures
    round_s = 0.0
    try:
        for rnd in range(settings.max_rounds):
            active = [r for r in runs if r.ab.error is None and not r.ab.settled]
            if not active:
                result.stop_reason = "every cell settled" if any(r.ab.error is None for r in runs) else "no cell ran"
                break
            if rnd >= settings.min_rounds and time.monotonic() - t0 + round_s > settings.budget_s:
                result.stop_reason = f"the time budget of {settings.budget_s:g} s would be exceeded by round {rnd + 1}"
                break
            r0 = time.monotonic()
            for run in active:
                if run.ab.pairing != "processes":
                    _call_round(run, rnd, rng, settings, options, progress)
                else:
                    _one_round(run, rnd, rng, settings, options, progress)
            if alpha_each is None:
                alpha_each = settings.alpha / max(1, sum(len(r.values) for r in runs))
            for run in active:
                if run.ab.error is None:
                    _judge_cell(run, alpha_each, settings)
                    log(f"round {rnd + 1}: {run.cell.key}: " + ", ".join(
                        f"{m.metric} {100 * (m.ratio - 1):+.1f}% {m.verdict}" for m in run.ab.metrics))
            round_s = time.monotonic() - r0
            result.wall_s = time.monotonic() - t0
            if on_round:
                on_round(result)
        else:
            result.stop_reason = f"max_rounds ({settings.max_rounds}) reached"
    except KeyboardInterrupt:  # what the finished rounds measured is kept and written
        result.stop_reason = INTERRUPTED
    result.wall_s = time.monotonic() - t0
    result.finished_at = now_iso()
    side_cells: dict[str, list[CellResult]] = {s: [] for s in SIDES}
    for run in runs:
        for side in SIDES:
            status = getattr(run.ab, f"{side}_status")
            side_cells[side].append(cell_result(run.sides[side].cell, run.events[side], status,
                                                None if status == "ok" else run.ab.errors.get(side, run.ab.error),
                                                result.started_at, now_iso(), result.wall_s))
    return side_cells


@dataclass
class _CellRun:
    cell: CellSpec
    sides: dict[str, PreparedCell]
    ab: ABCell
    events: dict[str, list[Event]] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # metric -> side -> per round
    call_logs: dict[str, list[list[float]]] = field(default_factory=dict)  # metric -> per round -> its call pairs'
    settled: dict[str, ABMetric] = field(default_factory=dict)  # metric -> the judgement that settled it


def _one_round(run: _CellRun, rnd: int, rng: random.Random, settings: ABSettings, options: RunOptions,
               progress: ProgressSink) -> None:
    """Both sides of one cell, in a random order, back to back; their per-round values."""
    order = list(SIDES)
    rng.shuffle(order)
    run.ab.order.append(order[0])
    got: dict[str, list[Event]] = {}
    for side in order:
        events, status, error = measure_process(run.sides[side], rnd, options, progress)
        run.events[side] += events
        if status != "ok":
            _side_failed(run, side, rnd, status, error or status)
            return
        got[side] = events
    run.ab.rounds = rnd + 1
    base = median_values(got["base"], run.sides["base"].cell)
    cand = median_values(got["candidate"], run.sides["candidate"].cell)
    for metric in settings.metrics or DEFAULT_METRICS:
        b, c = base.get(metric), cand.get(metric)
        if b is not None and c is not None:
            _keep(run, metric, b, c)


def _side_failed(run: _CellRun, side: str, rnd: int, status: CellStatus, error: str) -> None:
    """A side that failed in round `rnd` ends its cell's comparison, saying which side and why."""
    setattr(run.ab, f"{side}_status", status)
    run.ab.errors[side] = f"round {rnd + 1}: {error}"
    run.ab.error = f"{side}, {run.ab.errors[side]}"


def _keep(run: _CellRun, metric: str, base: float, candidate: float) -> None:
    """One round's value of a metric on each side."""
    vals = run.values.setdefault(metric, {"base": [], "candidate": []})
    vals["base"].append(base)
    vals["candidate"].append(candidate)


def _call_round(run: _CellRun, rnd: int, rng: random.Random, settings: ABSettings, options: RunOptions,
                progress: ProgressSink) -> None:
    """One pair of fresh processes, both loaded, call pairs in blocks, sliced or one call after the other
    (harness/execute/paired.py); metrics a call measures are kept per call pair, the processes' own (load, memory)
    per round. When the two sides do not fit in memory together the cell goes on in whole-process rounds, and when
    their calls cannot be sliced in calls one after the other, saying why."""
    spec = {side: run.sides[side].cell for side in SIDES}
    pp = process_pair(run.sides, rnd, settings.blocks, run.cell.warmup + 2 * settings.blocks * rnd, rng, options,
                      progress, settings.slice_ms if run.ab.pairing == "slices" else None)
    if pp.slicing_note is not None:
        run.ab.pairing, run.ab.pairing_note = "calls", f"calls one after the other from round {rnd + 1}: {pp.slicing_note}"
    for side in SIDES:
        run.events[side] += pp.events.get(side, [])
    if pp.no_room is not None:
        run.ab.pairing, run.ab.pairing_note = "processes", f"paired by processes from round {rnd + 1}: {pp.no_room}"
        _one_round(run, rnd, rng, settings, options, progress)
        return
    run.ab.order.append("base" if pp.blocks and pp.blocks[0] == "ABBA" else "candidate")
    for side in SIDES:
        if pp.status.get(side, "ok") != "ok":
            _side_failed(run, side, rnd, pp.status[side], pp.errors[side])
            return
    run.ab.rounds = rnd + 1
    calls = [{side: median_values(p.events[side], spec[side]) for side in SIDES} for p in pp.pairs]
    process = {side: median_values(pp.process_events(side), spec[side]) for side in SIDES}
    for metric in settings.metrics or DEFAULT_METRICS:
        got = [(c["base"][metric], c["candidate"][metric]) for c in calls
               if c["base"].get(metric, 0) > 0 and c["candidate"].get(metric, 0) > 0]
        if got:
            run.call_logs.setdefault(metric, []).append([math.log(c / b) for b, c in got])
            _keep(run, metric, statistics.median(b for b, _ in got), statistics.median(c for _, c in got))
        elif metric in process["base"] and metric in process["candidate"]:
            _keep(run, metric, process["base"][metric], process["candidate"][metric])


def _judge_cell(run: _CellRun, alpha: float, settings: ABSettings) -> None:
    """Every metric's judgement after this round; a verdict, once settled, stands (the sequence was valid
    when it was taken) while the figures keep following the rounds."""
    run.ab.metrics = []
    for metric, vals in run.values.items():
        m = judge(metric, vals["base"], vals["candidate"], alpha,
                  settings.thresholds.get(metric, DEFAULT_THRESHOLDS.get(metric, 0.05)),
                  settings.target_rounds, settings.min_rounds, run.call_logs.get(metric))
        if metric in run.settled:
            first = run.settled[metric]
            m.verdict, m.cs_low, m.cs_high, m.settled_at = first.verdict, first.cs_low, first.cs_high, first.settled_at
        elif m.verdict != "inconclusive":
            m.settled_at = run.ab.rounds
            run.settled[metric] = m.model_copy()
        run.ab.metrics.append(m)
    run.ab.settled = bool(run.ab.metrics) and all(m.metric in run.settled for m in run.ab.metrics)
