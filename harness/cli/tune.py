"""`harness tune SUITE --cell KEY --objective M --slo "M STAT < LIMIT" --budget 30m`: the command line of
harness/experiment/tune.py. Exit 0 when the search (and the proof) finished, whatever they found; 2 on bad input;
3 when no trial measured the objective (every setting failed); 130 when interrupted (the trials so far are kept in
the study: the same command resumes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from harness.cli.common import err_console
from harness.core.console import PlainConsole
from harness.core.errors import EXIT_NOT_JUDGED, HarnessInputError
from harness.core.escaping import json_of
from harness.experiment.ab import ABSettings
from harness.experiment.tune import INTERRUPTED, TUNE_JSON, TuneRequest, TuneResult, study_name
from harness.records.run_files import write_whole

if TYPE_CHECKING:
    from harness.core.schema import CellResult, CellSpec, Gate, NodeIdentity, PropertyValue, SideSpec
    from harness.execute.run_options import RunOptions
    from harness.experiment.ab_session import ABRequest
    from harness.experiment.tune import Measure
    from harness.plan.overrides import OverriddenSuite
    from harness.plan.suite_model import Suite, SuiteTune
    from harness.plan.tuning import Dimension, Objective

DEFAULT_BUDGET = "30m"
T = TypeVar("T")


def tune(
    suite: Annotated[str, typer.Argument(help="suite file or shipped suite name")],
    cell: Annotated[str | None, typer.Option(help="key of the cell to tune (harness run SUITE --list shows them); "
                                             "may be left out when the suite has one cell")] = None,
    objective: Annotated[list[str] | None, typer.Option(
        help="figure to optimise, METRIC [STAT] (repeatable: several make a Pareto front), e.g. output_tps or "
             "'ttft_ms p90' [default: the suite's tune.objective, else the kind's throughput]")] = None,
    slo: Annotated[list[str] | None, typer.Option(
        help="limit every setting must meet, 'METRIC [STAT] < LIMIT' (repeatable), e.g. 'ttft_ms p90 < 500'")] = None,
    knob: Annotated[list[str] | None, typer.Option(
        help="a knob and its values, NAME=V1,V2 (null: the suite's own), e.g. properties.INFERENCE_NUM_THREADS=null,1,2 "
             "(repeatable; replaces the suite's tune.space and the kind's default space)")] = None,
    budget: Annotated[str | None, typer.Option(help="wall time of the search and the proof, e.g. 30m [default: the "
                                               "suite's tune.budget, else 30m]; a resumed study counts its earlier "
                                               "search time")] = None,
    proof_budget: Annotated[str | None, typer.Option(help="what the interleaved A/B proof of the winner gets of the "
                                                     "budget [default: a third]")] = None,
    min_gain: Annotated[float | None, typer.Option(help="the smallest gain over the defaults the proof counts, "
                                                   "0.02 = 2% [default: the suite's tune.min_gain, else 0.02]")] = None,
    min_rounds: Annotated[int, typer.Option(min=2, max=10000, help="the proof's A/B rounds before any "
                                            "verdict")] = 5,
    max_trials: Annotated[int | None, typer.Option(min=1, max=100000, help="stop after this many measured "
                                                   "trials")] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="seed of the sampler and the A/B order")] = 0,
    proof: Annotated[bool, typer.Option(help="prove the winner against the defaults (--no-proof: search only)")] = True,
    restart: Annotated[bool, typer.Option(help="forget the study of the same question and start over")] = False,
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/tune-<suite>-<study>]")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="model cache [default: HARNESS_CACHE_DIR or "
                                                        "~/.cache/ov-genai-harness]")] = None,
    db: Annotated[str | None, typer.Option("--db", help="database holding the study and the proof's A/B record "
                                           "[default: the history database]")] = None,
    cluster: Annotated[str | None, typer.Option(
        help="tune on every matching node of this Ray cluster (HEAD:PORT, or 'auto'), each node its own study (the "
             "node is part of the question); --db must be a database every node reaches (the lab's PostgreSQL)")] = None,
    nodes: Annotated[list[str] | None, typer.Option(
        "--nodes", help="with --cluster: only nodes with this Ray label value, LABEL=VALUE (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change a suite field, KEY=VALUE as for harness run (repeatable; HARNESS_SET applies first)")] = None,
) -> None:
    """Search one cell's OpenVINO properties and scenario parameters with Optuna under an SLO, then prove the winner
    against the defaults by an interleaved A/B; resumable (the study is kept in the database)."""
    import openvino as ov

    from harness.analyze.history import database_url, default_history_url
    from harness.cli.ab import parse_duration, say_dropped
    from harness.core.host import fingerprint, host_info
    from harness.experiment.ab_session import ab_cells, read_suite
    from harness.experiment.bisect import cell_named
    from harness.models.cache import default_cache_dir
    from harness.plan.tuning import space_size
    from reports.tune_report import render_tune_html, render_tune_md, tune_table

    cache_dir = cache_dir or default_cache_dir()
    suite_path, sha, overridden = read_suite(suite, set_)
    parsed = overridden.suite
    say_dropped(overridden)
    settings = parsed.tune
    where = str(suite_path)
    cells, _ = ab_cells(parsed, suite_path)
    if cell is None and len(cells) != 1:
        raise HarnessInputError("command line", "--cell", None, f"the suite has {len(cells)} cells: name one with "
                                f"--cell (harness run {suite} --list)")
    target = cell_named(cells, cell, suite_path, suite)[0] if cell is not None else cells[0]
    objectives = _objectives(objective, settings, target, where)
    slos = _slos(slo, settings, where)
    host = host_info()
    space = _space(knob, settings, target, where, host.logical_cores or 1)
    declared = bool(knob or (settings and settings.space))
    if not space:
        raise HarnessInputError(where, "tune.space", target.scenario.kind, "this kind has no default space to "
                                "search here: declare the knobs in the suite's tune.space or with --knob")
    budget_s = parse_duration(budget or (settings.budget if settings and settings.budget else DEFAULT_BUDGET),
                              "command line" if budget else where, "--budget" if budget else "tune.budget")
    proof_text = proof_budget or (settings.proof_budget if settings else None)
    proof_s = parse_duration(proof_text, "command line" if proof_budget else where,
                             "--proof-budget" if proof_budget else "tune.proof_budget") if proof_text else budget_s / 3
    if proof and proof_s >= budget_s:
        raise HarnessInputError("command line" if proof_budget else where,
                                "--proof-budget" if proof_budget else "tune.proof_budget", proof_text,
                                f"must leave the search some of the budget ({budget_s / 60:g} min)")
    gain = min_gain if min_gain is not None else (settings.min_gain if settings and settings.min_gain else 0.02)
    if not 0 < gain < 1:
        raise HarnessInputError("command line", "--min-gain", min_gain, "a fraction above 0 and below 1, e.g. 0.02")
    db_url = db or default_history_url(beside=out)
    database_url(db_url)  # one line before anything runs for what is no database URL
    core = ov.Core()
    req = TuneRequest(suite_name=parsed.name, suite_file=suite_path, cell=target, space=space, objectives=objectives,
                      slo=slos, budget_s=budget_s, proof_budget_s=proof_s if proof else 0.0, min_gain=gain,
                      out_dir=Path("."), storage=db_url, host=host.hostname, machine=fingerprint(host), seed=seed,
                      max_trials=max_trials, restart=restart)
    req.out_dir = out or Path("results") / f"tune-{parsed.name}-{study_name(req).removeprefix('tune-')}"
    if req.out_dir.exists() and not req.out_dir.is_dir():
        raise HarnessInputError("command line", "--out", str(req.out_dir), "is a file, not a folder")
    proving = ProofSetup(parsed, suite_path, sha, overridden, target, db_url,
                         ABSettings(budget_s=proof_s, seed=seed, min_rounds=min_rounds)) if proof else None
    err_console.print(f"tune {target.key}: {len(space)} knobs, {space_size(space)} settings; objective "
                      f"{', '.join(o.label() for o in objectives)}"
                      + (f"; SLO {', '.join(g.describe() for g in slos)}" if slos else "")
                      + f"; budget {budget_s / 60:.3g} min" + (f" ({proof_s / 60:.3g} proof)" if proof else ", no proof")
                      + f" -> {req.out_dir}", highlight=False)
    if cluster is not None:
        results = _on_cluster(cluster, nodes or [], req, proving, declared)
    else:
        results = {"": tune_here(req, proving, cache_dir, list(core.available_devices),
                                 log=lambda m: err_console.print(m, highlight=False))}
    for node, result in results.items():
        folder = req.out_dir / node if node else req.out_dir
        folder.mkdir(parents=True, exist_ok=True)
        write_whole(folder, TUNE_JSON, json_of(result, indent=1))
        write_whole(folder, "tune.md", render_tune_md(result))
        write_whole(folder, "tune.html", render_tune_html(result))
        PlainConsole(width=200).print(tune_table(result))
        err_console.print((f"{node}: " if node else "") + result.conclusion, highlight=False)
        err_console.print(f"wrote {folder / TUNE_JSON}, tune.md, tune.html; study {result.study} in "
                          f"{result.storage}", highlight=False)
    if any(r.stop_reason == INTERRUPTED for r in results.values()):
        err_console.print("interrupted: the measured trials are kept; the same command resumes", highlight=False)
        raise typer.Exit(130)
    if all(r.best is None for r in results.values()):
        err_console.print("nothing judged: no setting measured the objective within the SLO", highlight=False)
        measured = any(t.status in ("ok", "slo_violated") for r in results.values() for t in r.trials)
        raise typer.Exit(0 if measured else EXIT_NOT_JUDGED)


def _objectives(given: list[str] | None, settings: SuiteTune | None, cell: CellSpec, where: str) -> list[Objective]:
    from harness.kinds import kind_spec
    from harness.plan.tuning import objective_of

    texts, field, origin = (given, "--objective", "command line") if given else (
        (settings.objective, "tune.objective", where) if settings and settings.objective else
        ([kind_spec(cell.scenario.kind).throughput_metric], "--objective", "command line"))
    out = _each(texts, origin, field, objective_of)
    if len({o.label() for o in out}) != len(out):
        raise HarnessInputError(origin, field, texts, "an objective is named twice")
    return out


def _slos(given: list[str] | None, settings: SuiteTune | None, where: str) -> list[Gate]:
    from harness.plan.tuning import slo_of

    texts, field, origin = (given, "--slo", "command line") if given else (
        (settings.slo if settings else [], "tune.slo", where))
    return _each(texts, origin, field, slo_of)


def _each(texts: list[str], origin: str, field: str, parse: Callable[[str], T]) -> list[T]:
    """Each text read, the first that cannot be one line naming where it was given."""
    out = []
    for text in texts:
        try:
            out.append(parse(text))
        except ValueError as e:
            raise HarnessInputError(origin, field, text, str(e)) from None
    return out


def _space(knobs: list[str] | None, settings: SuiteTune | None, cell: CellSpec, where: str,
           cpus: int) -> list[Dimension]:
    from harness.plan.sides import parse_value
    from harness.plan.tuning import declared_space, default_space

    if knobs:
        declared: dict[str, list[PropertyValue | None]] = {}
        for item in knobs:
            name, sep, values = item.partition("=")
            if not sep or not values:
                raise HarnessInputError("command line", "--knob", item, "expected NAME=V1,V2, e.g. "
                                        "properties.INFERENCE_NUM_THREADS=null,1,2")
            if name in declared:
                raise HarnessInputError("command line", "--knob", item, f"{name} is given twice")
            declared[name] = [None if v.strip() in ("null", "default") else parse_value(v.strip())
                              for v in values.split(",")]
        origin, field, space = "command line", "--knob", declared
    elif settings and settings.space:
        origin, field, space = where, "tune.space", dict(settings.space)
    else:
        return default_space(cell, cpus)
    try:
        return declared_space(cell, space)
    except ValueError as e:
        raise HarnessInputError(origin, field, None, str(e)) from None


@dataclass(frozen=True)
class ProofSetup:
    """What the proof's A/B is built from: the tuned cell as the suite has it (base) against a setting
    (candidate); sent to a cluster node as it is."""

    suite: Suite
    suite_path: Path
    sha: str
    overridden: OverriddenSuite
    cell: CellSpec
    db: str
    defaults: ABSettings

    def maker(self, cache_dir: Path) -> Callable[[SideSpec, Path, float, list[str], dict[str, float]], ABRequest]:
        from harness.core.schema import SideSpec
        from harness.experiment.ab_session import ABRequest

        def make(candidate: SideSpec, out_dir: Path, budget_s: float, metrics: list[str],
                 thresholds: dict[str, float]) -> ABRequest:
            settings = self.defaults.model_copy(update={"budget_s": budget_s, "metrics": metrics,
                                                        "thresholds": dict(self.defaults.thresholds)})
            settings.thresholds.update(self.suite.compare_thresholds)
            settings.thresholds.update(thresholds)
            return ABRequest(suite=self.suite, suite_path=self.suite_path, suite_sha=self.sha, cells=[self.cell],
                             sides={"base": SideSpec(), "candidate": candidate}, environments=[], settings=settings,
                             out_dir=out_dir, cache_dir=cache_dir, db=self.db, overridden=self.overridden)

        return make


def tune_here(req: TuneRequest, proving: ProofSetup | None, cache_dir: Path, devices: list[str],
              log: Callable[[str], None]) -> TuneResult:
    """The study run on this host (the submitter's, or a cluster node's)."""
    from harness.cli.ab import compare_sides
    from harness.execute.run_options import RunOptions
    from harness.experiment.tune import run_tune

    options = RunOptions(cache_dir=cache_dir, available_devices=devices)
    req = dataclasses.replace(req, ab_request=proving.maker(cache_dir) if proving else None)
    return run_tune(req, _local_measure(req.out_dir, options), compare_sides if proving else None, log)


def _tune_on_node(req: TuneRequest, proving: ProofSetup | None, cache_dir: str, devices: list[str],
                  said: Any) -> TuneResult:
    """A cluster node's own study, in a folder of the node's (what comes back is its TuneResult); its progress lines
    go to the submitter through `said` (a Ray queue)."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / "ov-genai-harness-cluster" / study_name(req)
    return tune_here(dataclasses.replace(req, out_dir=folder), proving, Path(cache_dir), devices,
                     log=lambda m: said.put(f"{req.host}: {m}"))


def _on_cluster(address: str, nodes: list[str], req: TuneRequest, proving: ProofSetup | None, declared: bool
                ) -> dict[str, TuneResult]:
    """One study per matching node that can run the cell, each holding its node's CPUs while it runs; each node's
    result by node name. Ctrl-C cancels the nodes' studies (their measured trials stay in the database)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from harness.execute.cluster import placement
    from harness.execute.cluster.executor import ClusterOptions, connect, node_filter
    from harness.plan.tuning import default_space

    fleet = connect(ClusterOptions(address=address, mode="each-node", node_filter=node_filter(nodes)),
                    log=lambda m: err_console.print(m, highlight=False))
    capable = placement.capable(req.cell, fleet.nodes)
    if not capable:
        raise HarnessInputError("command line", "--cluster", address, placement.no_node_reason(req.cell, fleet.nodes))
    from ray.util.queue import Queue

    remote = fleet.ray.remote(max_retries=0)(_tune_on_node)
    said = Queue()
    # nodes on one machine (one fingerprint) take turns: two studies side by side would measure each other
    waiting: dict[str, list[NodeIdentity]] = {}
    for n in capable:
        waiting.setdefault(placement.machine(n), []).append(n)
    running: dict[Any, str] = {}

    def submit(machine: str) -> None:
        n = waiting[machine].pop(0)
        # a default space's thread counts are the node's own (its cores, not the submitter's)
        space = req.space if declared else default_space(req.cell, n.host.logical_cores or 1)
        node_req = dataclasses.replace(req, host=n.name, machine=placement.machine(n), ab_request=None, space=space)
        err_console.print(f"node {n.name}: study {study_name(node_req)}", highlight=False)
        ref = remote.options(num_cpus=n.cpus, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n.node_id, soft=False)).remote(node_req, proving, fleet.cache_dirs[n.node_id], placement.device_names(n),
                                           said)
        running[ref] = machine + "\0" + n.name

    def relay() -> None:
        while not said.empty():
            err_console.print(said.get(), highlight=False)

    out: dict[str, TuneResult] = {}
    try:
        for machine in waiting:
            submit(machine)
        while running:
            done, _ = fleet.ray.wait(list(running), num_returns=1, timeout=1.0)
            relay()
            if not done:
                continue
            machine, _, name = running.pop(done[0]).partition("\0")
            try:
                out[name] = fleet.ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a node that died or failed: said, the others' studies kept
                err_console.print(f"node {name}: no result: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                                  highlight=False)
            if waiting[machine]:
                submit(machine)
    except KeyboardInterrupt:
        for ref in running:
            fleet.ray.cancel(ref, force=True)
        raise
    return out


def _local_measure(out_dir: Path, options: RunOptions) -> Measure:
    """Each trial's cell through the runner on this host; the cell's models prepared once for every trial."""
    from harness.execute.preparations import Preparations
    from harness.execute.runner import run_cell
    from harness.execute.worker_process import ProgressSink

    progress = ProgressSink()
    preparations = Preparations(out_dir, options, progress)

    def measure(cell: CellSpec, folder: Path) -> CellResult:
        return run_cell(cell, folder, options, progress, preparations)

    return measure
