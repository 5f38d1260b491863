"""`harness tune`: one cell's settings searched with Optuna under an SLO, and the winner proven against the defaults.

Every trial is the cell measured through the normal runner with one setting of the space (OpenVINO properties and
scenario parameters, harness/plan/tuning.py); the suite's own setting is always trial 0. Optuna's TPE sampler
proposes the next setting from those measured (several objectives: a Pareto front), with the SLO as a constraint, so
a setting that breaks it is measured, kept and steered away from. The study lives in a database (the history's by
default), so the same command resumes it: finished trials are read back, an interrupted one is measured again.

On a noisy machine the best of many single measurements is biased upwards (the winner's curse): the top trial is
often a lucky draw. So the winner (and the Pareto front's knee) is compared with the defaults by an interleaved A/B
(harness/experiment/ab.py), and only a gain whose always-valid interval excludes no change is reported as one."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from harness.analyze.history import database_url
from harness.core.digest import digest
from harness.core.escaping import json_of
from harness.core.schema import CellResult, CellSpec, Gate, PropertyValue, SideSpec
from harness.execute.run_record import now_iso
from harness.experiment.ab import INTERRUPTED as AB_INTERRUPTED
from harness.plan.tuning import (
    Dimension,
    Objective,
    SloReading,
    objective_of,
    setting_side,
    slo_readings,
    space_size,
    suite_snippet,
    tuned_cell,
)
from harness.records.run_files import write_whole

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import URL

    from harness.experiment.ab import ABResult
    from harness.experiment.ab_session import ABRequest

TUNE_VERSION = "1.0"
TUNE_JSON = "tune.json"
INTERRUPTED = "interrupted by the user"
ATTR = "harness"  # the trial's user attribute holding its TuneTrial
SEARCH_S = "search_s"  # the study's user attribute: search time spent over every session
MAX_REPEATS = 25  # proposals in a row of settings already measured before the search is called exhausted
# best: the best trial; knee: the front's knee (several objectives); runner_up: the best trial other than the
# defaults, when the defaults measured best (its A/B shows by how much the defaults hold)
Role = Literal["best", "knee", "runner_up"]
TrialStatus = Literal["ok", "slo_violated", "failed", "timeout", "crashed", "skipped", "not_measured"]


class TuneTrial(BaseModel):
    """One measured setting."""

    number: int
    setting: dict[str, PropertyValue | None] = Field(description="knob -> value; None: the suite's own")
    status: TrialStatus = Field(description="ok: measured within the SLO; slo_violated: measured, outside it; "
                                "not_measured: the cell ran but measured no objective; else the cell's status")
    values: list[float | None] = Field(default_factory=list, description="each objective, in order")
    slo: list[SloReading] = Field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    started_at: str = ""
    result_file: str | None = Field(None, description="the trial's cell result, relative to the tune folder")
    repeat_of: int | None = Field(None, description="a setting already measured: its figures are that trial's")

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and self.repeat_of is None and all(v is not None for v in self.values)

    @property
    def is_defaults(self) -> bool:
        return all(v is None for v in self.setting.values())


class ProofMetric(BaseModel):
    metric: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    cs_low: float | None
    cs_high: float | None
    verdict: str
    rounds: int


class TuneProof(BaseModel):
    """A setting compared with the defaults by an interleaved A/B."""

    role: Role
    trial: int
    candidate: SideSpec
    ab_dir: str
    ab_id: str | None = None
    stop_reason: str = ""
    metrics: list[ProofMetric] = Field(default_factory=list)
    gain: bool = Field(False, description="the first objective improved and its always-valid interval excludes no "
                       "change (the A/B's verdict improvement)")
    error: str | None = None


class TuneResult(BaseModel):
    version: str = TUNE_VERSION
    study: str = Field(description="the Optuna study's name in its storage")
    storage: str = Field(description="where the study is kept (the database URL, password left out)")
    suite_name: str
    suite_file: str
    cell_key: str
    host: str
    objectives: list[str]
    slo: list[Gate] = Field(default_factory=list)
    space: list[dict[str, Any]] = Field(default_factory=list, description="knob name and the values tried")
    space_size: int = 0
    budget_s: float
    proof_budget_s: float
    min_gain: float
    seed: int = 0
    started_at: str
    finished_at: str | None = None
    search_s: float = Field(0.0, description="search time spent, over every session of the study")
    stop_reason: str = ""
    trials: list[TuneTrial] = Field(default_factory=list)
    pareto: list[int] = Field(default_factory=list, description="trials on the Pareto front (one objective: the best)")
    best: int | None = None
    knee: int | None = Field(None, description="several objectives: the front's trial nearest the ideal point, each "
                             "objective scaled to the front's range")
    importances: dict[str, float] = Field(default_factory=dict, description="Optuna's fANOVA importance of each knob "
                                          "for the first objective")
    importance_note: str | None = None
    proofs: list[TuneProof] = Field(default_factory=list)
    conclusion: str = ""
    snippet: str = Field("", description="the suite lines that run the proven winner (or the best measured setting)")

    def trial(self, number: int) -> TuneTrial:
        return next(t for t in self.trials if t.number == number)


@dataclass
class TuneRequest:
    """One tuning question whose inputs are validated."""

    suite_name: str
    suite_file: Path
    cell: CellSpec
    space: list[Dimension]
    objectives: list[Objective]
    slo: list[Gate]
    budget_s: float
    proof_budget_s: float
    min_gain: float
    out_dir: Path
    storage: str
    host: str
    machine: str = ""  # the host's fingerprint (harness/core/host.py): the same name on other hardware is another study
    seed: int = 0
    max_trials: int | None = None
    restart: bool = False
    # the proof's A/B, built on the suite's cells (harness/experiment/ab_session.py); None: no proof
    ab_request: Callable[[SideSpec, Path, float, list[str], dict[str, float]], ABRequest] | None = None


Measure = Callable[[CellSpec, Path], CellResult]  # a setting's cell measured into a trial folder
Prove = Callable[["ABRequest"], "ABResult"]


def study_name(req: TuneRequest) -> str:
    """What the study is about, so the same question resumes it and another starts its own."""
    return "tune-" + digest({"v": TUNE_VERSION, "suite": req.suite_name, "cell": req.cell.key, "host": req.host, "machine": req.machine,
                             "objectives": [o.label() for o in req.objectives],
                             "slo": [g.describe() for g in req.slo],
                             "space": [[d.name, list(d.choices)] for d in req.space]}, 12)


def open_study(req: TuneRequest, url: URL, connect_args: dict[str, Any]) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(req)
    storage = optuna.storages.RDBStorage(url.render_as_string(hide_password=False),
                                         engine_kwargs={"connect_args": connect_args})
    if req.restart:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
    directions: list[Literal["minimize", "maximize"]] = ["maximize" if o.higher_is_better else "minimize"
                                                         for o in req.objectives]
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, directions=directions)
    # the SLO as constraints (Trial.set_constraint): TPE weighs settings that meet it above those that do not. A
    # resumed study's sampler is seeded past its trials, or it would propose the first session's settings again
    sampler = optuna.samplers.TPESampler(seed=req.seed + len(study.get_trials(deepcopy=False)),
                                         n_startup_trials=min(10, max(3, space_size(req.space) // 4)))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def _distributions(space: Sequence[Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    return {d.name: CategoricalDistribution(list(d.choices)) for d in space}


def _key(setting: dict[str, PropertyValue | None]) -> str:
    return json.dumps(setting, sort_keys=True)


def recorded_trials(study: optuna.Study) -> tuple[list[TuneTrial], list[dict[str, Any]]]:
    """The trials earlier sessions finished (from the study), and the settings of those they left unfinished."""
    from optuna.trial import TrialState

    done: list[TuneTrial] = []
    unfinished: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        if ATTR in t.user_attrs and t.state in (TrialState.COMPLETE, TrialState.FAIL):
            done.append(TuneTrial.model_validate(t.user_attrs[ATTR]))
        elif t.state in (TrialState.RUNNING, TrialState.FAIL):  # interrupted: its setting is measured again
            unfinished.append(dict(t.params))
    # an interrupted setting a later session measured is done (its trial stays failed in the study)
    finished = {_key(t.setting) for t in done if t.repeat_of is None}
    return done, [s for s in unfinished if _key(s) not in finished]


def run_tune(req: TuneRequest, measure: Measure, prove: Prove | None, log: Callable[[str], None]) -> TuneResult:
    """Search until the budget (less the proof's share) is spent or every setting is measured, then prove the
    winner; tune.json is written after every trial. Ctrl-C keeps what was measured (stop_reason INTERRUPTED)."""
    url, connect_args = database_url(req.storage)
    study = open_study(req, url, connect_args)
    trials, unfinished = recorded_trials(study)
    result = TuneResult(
        study=study.study_name, storage=url.render_as_string(hide_password=True), suite_name=req.suite_name,
        suite_file=str(req.suite_file), cell_key=req.cell.key, host=req.host,
        objectives=[o.label() for o in req.objectives], slo=req.slo,
        space=[{"name": d.name, "choices": list(d.choices)} for d in req.space], space_size=space_size(req.space),
        budget_s=req.budget_s, proof_budget_s=req.proof_budget_s, min_gain=req.min_gain, seed=req.seed,
        started_at=now_iso(), trials=trials)
    spent = float(study.user_attrs.get(SEARCH_S, 0.0))
    for t in trials:  # a study whose defaults measured no objective stays refused on every resume
        if t.is_defaults and t.repeat_of is None:
            _check_objectives_measured(req, t)
    if trials:
        log(f"resuming study {study.study_name}: {len(trials)} trials kept"
            + (f", {len(unfinished)} interrupted measured again" if unfinished else ""))
    if not any(t.is_defaults for t in trials) and {} not in [{k: v for k, v in u.items() if v is not None}
                                                             for u in unfinished]:
        study.enqueue_trial({d.name: None for d in req.space})
    for setting in unfinished:
        study.enqueue_trial(setting)
    seen = {_key(t.setting): t for t in trials if t.repeat_of is None}
    search_budget = max(0.0, req.budget_s - req.proof_budget_s)
    distributions = _distributions(req.space)
    repeats, session_t0 = 0, time.monotonic()
    out = req.out_dir
    (out / "trials").mkdir(parents=True, exist_ok=True)

    def save() -> None:
        write_whole(out, TUNE_JSON, json_of(result, indent=1))

    try:
        while True:
            measured = [t for t in result.trials if t.repeat_of is None]
            used = spent + time.monotonic() - session_t0
            per_trial = (sum(t.wall_s for t in measured) / len(measured)) if measured else 0.0
            if len(seen) >= result.space_size:
                result.stop_reason = f"every setting of the space measured ({result.space_size})"
                break
            if req.max_trials is not None and len(measured) >= req.max_trials:
                result.stop_reason = f"--max-trials ({req.max_trials}) reached"
                break
            if measured and used + per_trial > search_budget:
                result.stop_reason = (f"the search budget of {search_budget / 60:.1f} min would be exceeded by "
                                      "another trial")
                break
            if repeats >= MAX_REPEATS:
                result.stop_reason = f"the sampler proposed {MAX_REPEATS} measured settings in a row"
                break
            trial = study.ask(distributions)
            setting = {d.name: trial.params[d.name] for d in req.space}
            earlier = seen.get(_key(setting))
            if earlier is not None:  # the figures of the same setting: no new measurement, no new information
                repeats += 1
                copy = earlier.model_copy(update={"number": trial.number, "repeat_of": earlier.number, "wall_s": 0.0})
                _tell(study, trial, copy)
                result.trials.append(copy)
                log(f"trial {trial.number}: the setting of trial {earlier.number} again: its figures, not measured again")
                # TPE settles on the best region of a small space and proposes it again and again: an untried
                # setting is measured next instead, so the budget buys information
                fresh = untried(req.space, seen, random.Random(req.seed + trial.number))
                if fresh is not None:
                    study.enqueue_trial(fresh)
                continue
            repeats = 0
            one = _measure_trial(req, trial.number, setting, measure, log)
            seen[_key(setting)] = one
            result.trials.append(one)
            _tell(study, trial, one)
            if one.number == 0 or one.is_defaults:
                _check_objectives_measured(req, one)
            study.set_user_attr(SEARCH_S, spent + time.monotonic() - session_t0)
            result.search_s = spent + time.monotonic() - session_t0
            save()
    except KeyboardInterrupt:
        result.stop_reason = INTERRUPTED
        try:
            _fail_running(study)
        except Exception:  # noqa: BLE001 - the next session measures a trial left running again anyway
            pass
    result.search_s = spent + time.monotonic() - session_t0
    try:
        study.set_user_attr(SEARCH_S, result.search_s)
    except Exception:  # noqa: BLE001 - interrupted mid-write: the time is in tune.json
        pass
    conclude(result, req, study)
    if result.stop_reason != INTERRUPTED and prove is not None and req.ab_request is not None:
        try:
            prove_winners(result, req, prove, log, save)
        except KeyboardInterrupt:
            result.stop_reason = INTERRUPTED
    won = next((p for p in result.proofs if p.gain), None)
    if won is not None:
        result.snippet = suite_snippet(req.cell, result.trial(won.trial).setting)
    result.conclusion = conclusion(result)
    result.finished_at = now_iso()
    save()
    return result


def untried(space: Sequence[Dimension], seen: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """A setting of the space not measured yet, drawn at random (None when every one is)."""
    if space_size(space) <= 100_000:
        left = [s for s in (dict(zip([d.name for d in space], values, strict=True))
                            for values in itertools.product(*(d.choices for d in space))) if _key(s) not in seen]
        return rng.choice(left) if left else None
    for _ in range(1000):
        s = {d.name: rng.choice(d.choices) for d in space}
        if _key(s) not in seen:
            return s
    return None


def _measure_trial(req: TuneRequest, number: int, setting: dict[str, PropertyValue | None], measure: Measure,
                   log: Callable[[str], None]) -> TuneTrial:
    folder = req.out_dir / "trials" / f"{number:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    started, t0 = now_iso(), time.monotonic()
    cell = tuned_cell(req.cell, setting)
    try:
        cell_result = measure(cell, folder)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a harness error in one trial is that trial's failure
        from harness.analyze.aggregate import cell_result as failed_result

        cell_result = failed_result(cell, [], "failed", f"harness error in this trial: {type(e).__name__}: {e}",
                                    started, now_iso(), time.monotonic() - t0)
    write_whole(folder, "cell.json", json_of(cell_result, indent=1))
    trial = judge_trial(req, number, setting, cell_result, time.monotonic() - t0, started)
    trial.result_file = str((folder / "cell.json").relative_to(req.out_dir))
    log(f"trial {number}: {setting_side(setting).label()}: " + trial_line(req, trial))
    return trial


def judge_trial(req: TuneRequest, number: int, setting: dict[str, PropertyValue | None], result: CellResult,
                wall_s: float, started: str) -> TuneTrial:
    """A measured cell as a trial: its objectives and SLO readings, and what that makes it."""
    status: TrialStatus
    values = [o.value(result) for o in req.objectives] if result.status == "ok" else [None] * len(req.objectives)
    readings = slo_readings(req.slo, result) if result.status == "ok" else []
    if result.status != "ok":
        status = result.status
    elif any(v is None or not math.isfinite(v) for v in values):
        status = "not_measured"
    elif not all(r.met for r in readings):
        status = "slo_violated"
    else:
        status = "ok"
    return TuneTrial(number=number, setting=setting, status=status, values=values,
                     slo=readings,
                     error=result.error, wall_s=wall_s, started_at=started)


def trial_line(req: TuneRequest, t: TuneTrial) -> str:
    figures = ", ".join(f"{o.label()} {v:.4g}" for o, v in zip(req.objectives, t.values, strict=True) if v is not None)
    slo = "; SLO " + ", ".join(f"{c.slo}: {'met' if c.met else 'broken'}" for c in t.slo) if t.slo else ""
    return (f"{t.status}" + (f" ({t.error})" if t.error else "") + (f": {figures}" if figures else "") + slo
            + f" [{t.wall_s:.0f} s]")


def _tell(study: optuna.Study, trial: optuna.Trial, t: TuneTrial) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr(ATTR, t.model_dump(mode="json"))
    if t.status in ("ok", "slo_violated"):
        for c in t.slo:
            trial.set_constraint(c.slo, c.excess)
        study.tell(trial, [float(v) for v in t.values if v is not None])
    else:
        study.tell(trial, state=TrialState.FAIL)


def _fail_running(study: optuna.Study) -> None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)


def _check_objectives_measured(req: TuneRequest, t: TuneTrial) -> None:
    """The defaults ran but measured no objective: the objective does not fit the cell (one line, exit 2)."""
    from harness.core.errors import HarnessInputError

    if t.status == "not_measured":
        missing = [o.label() for o, v in zip(req.objectives, t.values, strict=True) if v is None]
        raise HarnessInputError("command line", "--objective", ", ".join(missing),
                                f"the cell {req.cell.key} does not measure it (see its trial 0: "
                                f"{t.result_file or 'trials/0000/cell.json'})")


def pareto_front(trials: Sequence[TuneTrial], objectives: Sequence[Objective]) -> list[int]:
    """The feasible trials no other feasible trial beats on every objective (at least as good on all, better on
    one)."""
    sign = [1.0 if o.higher_is_better else -1.0 for o in objectives]
    points = [(t.number, [s * float(v or 0.0) for s, v in zip(sign, t.values, strict=True)])
              for t in trials if t.feasible]
    front = []
    for n, p in points:
        if not any(all(a >= b for a, b in zip(q, p, strict=True)) and any(a > b for a, b in zip(q, p, strict=True))
                   for m, q in points if m != n):
            front.append(n)
    return sorted(front)


def knee(trials: Sequence[TuneTrial], front: Sequence[int], objectives: Sequence[Objective]) -> int | None:
    """The front's trial nearest the ideal point (every objective at its best on the front), each objective
    scaled to the front's range: the balanced compromise."""
    if len(objectives) < 2 or not front:
        return None
    by = {t.number: t for t in trials}
    sign = [1.0 if o.higher_is_better else -1.0 for o in objectives]
    pts = {n: [s * float(by[n].values[i] or 0.0) for i, s in enumerate(sign)] for n in front}
    lo = [min(p[i] for p in pts.values()) for i in range(len(sign))]
    hi = [max(p[i] for p in pts.values()) for i in range(len(sign))]

    def distance(n: int) -> float:
        return math.sqrt(sum(((hi[i] - pts[n][i]) / (hi[i] - lo[i])) ** 2 for i in range(len(sign)) if hi[i] > lo[i]))

    return min(front, key=lambda n: (distance(n), n))


def conclude(result: TuneResult, req: TuneRequest, study: optuna.Study) -> None:
    """The front, the best trial, the knee and the knobs' importances, from the trials measured."""
    result.pareto = pareto_front(result.trials, req.objectives)
    first = req.objectives[0]
    feasible = [t for t in result.trials if t.feasible]
    if feasible:  # the earliest of equal figures
        sign = -1.0 if first.higher_is_better else 1.0
        result.best = min(feasible, key=lambda t: (sign * float(t.values[0] or 0.0), t.number)).number
    result.knee = knee(result.trials, result.pareto, req.objectives)
    result.importances, result.importance_note = importances(study, req)
    if result.best is not None:
        result.snippet = suite_snippet(req.cell, result.trial(result.best).setting)


def importances(study: optuna.Study, req: TuneRequest) -> tuple[dict[str, float], str | None]:
    """Optuna's fANOVA importances of the knobs for the first objective (over the settings measured, SLO or not)."""
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get(ATTR, {}).get("repeat_of") is None]
    varied = [d.name for d in req.space if len({repr(t.params.get(d.name)) for t in complete}) > 1]
    if len(complete) < 3 or not varied:
        return {}, f"not computed: {len(complete)} distinct settings measured, {len(varied)} knobs varied"
    try:
        found = optuna.importance.get_param_importances(
            study, target=lambda t: t.values[0], params=varied,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=req.seed))
    except Exception as e:  # noqa: BLE001 - too few or too alike trials for the forest: said, not fatal
        return {}, f"not computed: {type(e).__name__}: {e}"
    return {k: float(v) for k, v in found.items()}, None


def prove_winners(result: TuneResult, req: TuneRequest, prove: Prove, log: Callable[[str], None],
                  save: Callable[[], None]) -> None:
    """The best trial, and the knee where it differs, each against the defaults by an A/B sharing the proof
    budget. Where the defaults measured best, the best other setting is compared with them instead: whether the
    defaults hold is then a measured figure too."""
    assert req.ab_request is not None
    roles: list[tuple[Role, int]] = []
    if result.best is not None:
        roles.append(("best", result.best))
    if result.knee is not None and result.knee != result.best:
        roles.append(("knee", result.knee))
    roles = [(r, n) for r, n in roles if not result.trial(n).is_defaults]
    if not roles and result.best is not None:
        first = req.objectives[0]
        others = [t for t in result.trials if t.feasible and not t.is_defaults]
        if others:
            sign = -1.0 if first.higher_is_better else 1.0
            roles.append(("runner_up", min(others, key=lambda t: (sign * float(t.values[0] or 0.0), t.number)).number))
    if not roles:
        return
    metrics = list(dict.fromkeys([o.metric for o in req.objectives] + [g.metric for g in req.slo]))
    thresholds = {o.metric: req.min_gain for o in req.objectives}
    for role, number in roles:
        side = setting_side(result.trial(number).setting)
        folder = req.out_dir / f"proof-{role}"
        proof = TuneProof(role=role, trial=number, candidate=side, ab_dir=str(folder.relative_to(req.out_dir)))
        result.proofs.append(proof)
        log(f"proof ({role}, trial {number}): {side.label()} against the defaults, "
            f"{req.proof_budget_s / len(roles) / 60:.1f} min")
        try:
            ab = prove(req.ab_request(side, folder, req.proof_budget_s / len(roles), metrics, thresholds))
        except KeyboardInterrupt:
            proof.error = INTERRUPTED
            save()
            raise
        except Exception as e:  # noqa: BLE001 - a proof that could not run is said, the search is kept
            proof.error = f"{type(e).__name__}: {e}"
            save()
            continue
        proof.ab_id, proof.stop_reason = ab.ab_id, ab.stop_reason
        if ab.stop_reason == AB_INTERRUPTED:  # the A/B keeps its rounds and returns; the study stops here too
            proof.error = INTERRUPTED
            save()
            raise KeyboardInterrupt
        cell = ab.cells[0] if ab.cells else None
        if cell is not None and cell.error:
            proof.error = cell.error
        for m in cell.metrics if cell else []:
            proof.metrics.append(ProofMetric(metric=m.metric, ratio=m.ratio, ci_low=m.ci_low, ci_high=m.ci_high,
                                             cs_low=m.cs_low, cs_high=m.cs_high, verdict=m.verdict, rounds=m.rounds))
        judged = next((m for m in proof.metrics if m.metric == req.objectives[0].metric), None)
        proof.gain = judged is not None and judged.verdict == "improvement"
        save()


def conclusion(result: TuneResult) -> str:
    """One sentence: the proven gain, or why there is none."""
    if result.best is None:
        return "no setting was measured within the SLO" if result.trials else "no trial was measured"
    best = result.trial(result.best)
    first = objective_of(result.objectives[0]).metric
    proven = [(p, m) for p in result.proofs if p.gain for m in p.metrics if m.metric == first]
    if proven:  # (a runner-up proven better than defaults that measured best: the A/B outweighs one trial)
        p, m = proven[0]
        return (f"gain: {m.metric} {100 * (m.ratio - 1):+.1f}% [{_pct(m.cs_low)}, {_pct(m.cs_high)}] against the "
                f"defaults with {p.candidate.label()} (trial {p.trial}, {m.rounds} interleaved A/B rounds)")
    if best.is_defaults:
        line = "the defaults were the best measured setting of the space: no gain"
        held = [(p, m) for p in result.proofs for m in p.metrics if m.metric == first]
        if held:
            p, m = held[0]
            line += (f"; the best other setting (trial {p.trial}, {p.candidate.label()}) against them by A/B: "
                     f"{m.metric} {100 * (m.ratio - 1):+.1f}% [{_pct(m.cs_low)}, {_pct(m.cs_high)}] {m.verdict}")
        return line
    if result.stop_reason == INTERRUPTED:
        return (f"trial {best.number} measured best ({setting_side(best.setting).label()}), not proven: "
                "interrupted (the same command resumes)")
    if not result.proofs:
        return (f"trial {best.number} measured best ({setting_side(best.setting).label()}), not proven: "
                "no proof was run")
    if all(p.error and not p.metrics for p in result.proofs):
        return (f"trial {best.number} measured best ({setting_side(best.setting).label()}), not proven: the A/B "
                f"could not run ({result.proofs[0].error})")
    said = []
    for p in result.proofs:
        found = next((m for m in p.metrics if m.metric == first), None)
        said.append(f"trial {p.trial} ({p.role}): " + (p.error or "not measured" if found is None else
                    f"{found.metric} {100 * (found.ratio - 1):+.1f}% [{_pct(found.cs_low)}, {_pct(found.cs_high)}] "
                    f"{found.verdict}"))
    return "no gain: the A/B did not confirm the measured winner over the defaults (" + "; ".join(said) + ")"


def _pct(r: float | None) -> str:
    return "?" if r is None else f"{100 * (r - 1):+.1f}%"
