"""`harness bisect SUITE --cell KEY --metric M --good PIN --bad PIN` (or --candidates): the command line of
harness/experiment/bisect.py. Exit 0 when the first bad candidate is named, 1 when it cannot be (a range of skipped
candidates, no regression at the bad end, or the bad end could not be measured), 2 on bad input, 130 when
interrupted (the steps so far are kept; the same command resumes)."""

from __future__ import annotations

import difflib
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from harness.core.console import PlainConsole, styled
from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore
    from harness.cli.ab import ABRequest
    from harness.experiment.bisect import BisectRecord, Candidate, Step
    from harness.plan.environments import EnvironmentSpec

err_console = PlainConsole(stderr=True)
BISECT_JSON = "bisect.json"


def bisect(
    suite: Annotated[str, typer.Argument(help="suite file or shipped suite name")],
    cell: Annotated[str, typer.Option(help="key of the cell to bisect (harness run SUITE --list shows them)")],
    metric: Annotated[str, typer.Option(help="metric whose regression is looked for, e.g. tpot_ms")],
    good: Annotated[str | None, typer.Option(help="good end as a pin, e.g. openvino-genai==2026.2.0: the released "
                                             "versions up to --bad are listed from the package registry")] = None,
    bad: Annotated[str | None, typer.Option(help="bad end as a pin, e.g. openvino-genai==2026.4.1")] = None,
    candidates: Annotated[str | None, typer.Option(
        help="ordered candidates, good first: a YAML/JSON file (entries: name plus env, model, device, properties, "
             "packages) or a comma-separated list of environments and pins")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="define an environment NAME=PINS or NAME=/path/to/python (repeatable), beside the suite's")] = None,
    budget: Annotated[str, typer.Option(help="time budget of each step's A/B comparison")] = "10m",
    threshold: Annotated[float | None, typer.Option(help="minimum effect that counts as a regression, 0.05 = 5% "
                                                    "(default: the suite's or harness compare's for the metric)")] = None,
    alpha: Annotated[float, typer.Option(help="error rate of each step's comparison")] = 0.05,
    min_rounds: Annotated[int, typer.Option(min=2, max=10000, help="rounds before a step's verdict")] = 5,
    max_rounds: Annotated[int, typer.Option(min=2, max=100000)] = 200,
    check_ends: Annotated[bool, typer.Option(help="measure the bad end first (--no-check-ends trusts it)")] = True,
    restart: Annotated[bool, typer.Option(help="forget a recorded bisect of the same question and start over")] = False,
    retry_skipped: Annotated[bool, typer.Option(help="resuming: measure again the candidates a step skipped (an "
                                                "environment fixed since, a budget too short)")] = False,
    out: Annotated[Path | None, typer.Option(help="output directory (default: results/<time>-bisect-<suite>)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="model and environment cache [default: HARNESS_CACHE_DIR or "
                                                        "~/.cache/ov-genai-harness]")] = None,
    db: Annotated[str | None, typer.Option("--db", help="history database URL (holds the bisect's record)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change a suite field, KEY=VALUE as for harness run (repeatable; HARNESS_SET applies first)")] = None,
) -> None:
    """Find the first candidate (version, environment or configuration) between a good and a bad one that
    regresses one cell's metric, by A/B comparisons against the good end; resumable, skips what cannot run."""
    from harness.analyze.compare import DEFAULT_THRESHOLDS
    from harness.analyze.history import HistoryStore
    from harness.cli.ab import parse_duration, say_dropped, validate_side
    from harness.core.metrics import METRICS
    from harness.execute.runner import now_iso
    from harness.experiment.ab import ABSettings
    from harness.experiment.bisect import (
        BisectRecord,
        bisect_id,
        check_candidates,
        load_candidate_file,
        parse_candidate_items,
        registry_versions,
        version_candidates,
    )
    from harness.models.cache import default_cache_dir
    from harness.plan.environments import with_environments
    from harness.plan.overrides import expand_overridden, set_overrides
    from harness.plan.suite import expand, load_suite, resolve_suite_path

    cache_dir = cache_dir or default_cache_dir()
    suite_path = resolve_suite_path(suite)
    written, sha = load_suite(suite_path)
    overridden = expand_overridden(written, set_overrides(set_ or []), suite_path)
    parsed = overridden.suite
    say_dropped(overridden)
    if metric not in METRICS:
        raise HarnessInputError("command line", "--metric", metric, f"unknown metric; known: {', '.join(METRICS)}")
    if not 0 < alpha < 1:
        raise HarnessInputError("command line", "--alpha", alpha, "a significance level is between 0 and 1")
    if max_rounds < min_rounds:
        raise HarnessInputError("command line", "--max-rounds", max_rounds, f"is below --min-rounds ({min_rounds})")
    if threshold is not None and not 0 < threshold < 10:
        raise HarnessInputError("command line", "--threshold", threshold, "a minimum effect is a fraction above 0, "
                                "e.g. 0.05 for 5%")
    budget_s = parse_duration(budget)
    cells = [c for c in expand(parsed.model_copy(update={"environments": []}), suite_path) if c.key == cell]
    if not cells:
        keys = [c.key for c in expand(parsed.model_copy(update={"environments": []}), suite_path)]
        close = difflib.get_close_matches(cell, keys, n=3, cutoff=0.4)
        raise HarnessInputError(str(suite_path), "--cell", cell, "no cell of the suite has this key"
                                + (f"; similar: {', '.join(close)}" if close else f" ({len(keys)} cells: harness run "
                                   f"{suite} --list)"))
    declared: dict[str, EnvironmentSpec] = {e.name: e for e in parsed.environments}
    if env:
        declared.update({e.name: e for e in with_environments(parsed, env).environments})
    if candidates is not None:
        if good or bad:
            raise HarnessInputError("command line", "--good" if good else "--bad", good or bad, "give either "
                                    "--good and --bad or --candidates, not both")
        path = Path(candidates)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
            if not path.is_file():
                raise HarnessInputError(str(path), "--candidates", None, "no such file")
            listed = load_candidate_file(path, declared)
            where = str(path)
        else:
            listed = parse_candidate_items([c.strip() for c in candidates.split(",") if c.strip()], declared)
            where = "command line"
    elif good and bad:
        listed, where = version_candidates(good, bad, registry_versions), "package registry"
    else:
        raise HarnessInputError("command line", "--bad" if good else "--good", None, "give --good and --bad "
                                "(PACKAGE==VERSION) or --candidates")
    check_candidates(listed, where)
    known_envs = {**declared, **{c.environment.name: c.environment for c in listed if c.environment}}
    for i, c in enumerate(listed):
        validate_side(where, f"candidate {i} ({c.name})", c.side, known_envs)
    th = threshold if threshold is not None else parsed.compare_thresholds.get(metric, DEFAULT_THRESHOLDS.get(metric, 0.05))
    settings = ABSettings(alpha=alpha, budget_s=budget_s, min_rounds=min_rounds, max_rounds=max_rounds,
                          metrics=[metric], thresholds={metric: th})
    # a bisect of the suite with overrides is another question than one of the suite as written
    asked = "|".join([sha, *overridden.overrides])
    key = bisect_id(asked, cell, metric, listed, check_ends, settings.model_dump(mode="json"))

    with HistoryStore(db) as store:
        record = _resume_or_start(store, key, restart, retry_skipped)
        if record is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            record = BisectRecord(bisect_id=key, suite_name=parsed.name, suite_file=str(suite_path.resolve()),
                                  cell_key=cell, metric=metric, candidates=listed, check_ends=check_ends,
                                  out_dir=str((out or Path("results") / f"{stamp}-bisect-{parsed.name}").resolve()),
                                  started_at=now_iso())
            err_console.print(f"bisect {key}: {len(listed)} candidates from {listed[0].name} (good) to "
                              f"{listed[-1].name} (bad), {cell} {metric}, minimum effect {th:.0%} -> {record.out_dir}",
                              highlight=False)
        out_dir = Path(record.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

        def request(cand: Candidate, step_dir: Path) -> ABRequest:
            from harness.cli.ab import ABRequest

            base = listed[0]
            envs = [known_envs[s.env] for s in (base.side, cand.side) if s.env]
            return ABRequest(suite=parsed, suite_path=suite_path, suite_sha=sha, cells=cells,
                             sides={"base": base.side, "candidate": cand.side}, environments=envs, settings=settings,
                             out_dir=step_dir, cache_dir=cache_dir, db=db, overridden=overridden)

        _prepare_good_end(listed[0], known_envs, cache_dir)
        interrupted = _run_steps(record, store, request)
    _print_record(record)
    if interrupted:
        err_console.print(f"interrupted: {len(record.steps)} steps kept; run the same command to resume")
        raise typer.Exit(130)
    if record.status != "found":
        raise typer.Exit(1)


def _resume_or_start(store: HistoryStore, key: str, restart: bool, retry_skipped: bool) -> BisectRecord | None:
    from harness.experiment.bisect import BisectRecord

    text = store.bisect_json(key)
    if text is None:
        return None
    if restart:
        store.delete_bisect(key)
        err_console.print(f"bisect {key}: recorded steps forgotten (--restart)", highlight=False)
        return None
    record = BisectRecord.model_validate_json(text)
    state = "finished" if record.status != "running" else "interrupted"
    if retry_skipped and any(s.mark == "skip" for s in record.steps):
        dropped = [s.candidate for s in record.steps if s.mark == "skip"]
        record.steps = [s for s in record.steps if s.mark != "skip"]
        record.status, record.finished_at, record.first_bad, record.range = "running", None, None, []
        err_console.print(f"bisect {key}: measuring again the skipped {', '.join(dropped)}", highlight=False)
    err_console.print(f"bisect {key}: resuming the {state} bisect of {record.started_at} from its {len(record.steps)} "
                      f"recorded steps ({record.out_dir}; --restart starts over)", highlight=False)
    return record


def _prepare_good_end(good: Candidate, envs: dict[str, EnvironmentSpec], cache_dir: Path) -> None:
    """The good end is every step's base: when its environment cannot be had, nothing can be bisected."""
    from harness.plan.environments import prepare_environments

    if good.side.env:
        prepare_environments([envs[good.side.env]], cache_dir, log=lambda m: err_console.print(m, highlight=False))


def _run_steps(record: BisectRecord, store: HistoryStore, request) -> bool:
    """Measure until the answer is known; save the record after each step. True when interrupted."""
    from harness.execute.runner import now_iso
    from harness.experiment.bisect import conclusion, next_probe

    n = len(record.candidates)
    while (index := next_probe(n, record.measured(), record.check_ends)) is not None:
        record.status = "running"
        cand = record.candidates[index]
        lo_hi = ", ".join(f"{m}: {record.candidates[i].name}" for i, m in sorted(record.measured().items()))
        err_console.print(f"step {len(record.steps) + 1}: {cand.name} (candidate {index + 1} of {n})"
                          + (f"; so far {lo_hi}" if lo_hi else ""), highlight=False)
        step = _measure(record, index, request)
        if step is None:
            return True
        record.steps.append(step)
        err_console.print(styled({"bad": "red", "good": "green", "skip": "yellow"}[step.mark], f"{step.mark}:",
                                 f"{cand.name}: {step.reason}"))
        _save(record, store)
    status, indices = conclusion(n, record.measured())
    record.status = status
    record.first_bad = record.candidates[indices[0]].name if status == "found" else None
    record.range = [record.candidates[i].name for i in indices] if status == "range" else []
    record.finished_at = record.finished_at or now_iso()
    _save(record, store)
    return False


def _save(record: BisectRecord, store: HistoryStore) -> None:
    store.save_bisect(record)
    out = Path(record.out_dir)
    (out / BISECT_JSON).write_text(record.model_dump_json(indent=1), encoding="utf-8")
    from reports.bisect_report import render_bisect_md

    (out / "bisect.md").write_text(render_bisect_md(record), encoding="utf-8")


def _measure(record: BisectRecord, index: int, request) -> Step | None:
    """One step: the candidate against the good end; None when the user interrupted it."""
    from harness.cli.ab import execute_ab
    from harness.execute.runner import now_iso
    from harness.experiment.ab import INTERRUPTED
    from harness.experiment.bisect import Evidence, Step, safe_name

    cand = record.candidates[index]
    t0 = time.monotonic()
    step_dir = Path(record.out_dir) / f"step-{len(record.steps) + 1:02d}-{safe_name(cand.name, 40)}-{uuid.uuid4().hex[:4]}"

    def done(mark: str, reason: str, evidence: Evidence | None = None) -> Step:
        return Step(step=len(record.steps) + 1, index=index, candidate=cand.name, mark=mark, reason=reason,
                    evidence=evidence, minutes=(time.monotonic() - t0) / 60, finished_at=now_iso())

    try:
        result = execute_ab(request(cand, step_dir))
    except HarnessInputError as e:  # an environment that cannot be installed
        return done("skip", e.line())
    except KeyboardInterrupt:
        return None
    if result.stop_reason == INTERRUPTED:
        return None
    ab_cell = result.cells[0]
    if ab_cell.error:
        return done("skip", f"the cell failed: {ab_cell.error}")
    m = next((m for m in ab_cell.metrics if m.metric == record.metric), None)
    if m is None:
        return done("skip", f"the cell did not measure {record.metric}")
    evidence = Evidence(ab_id=result.ab_id, ab_dir=str(step_dir), verdict=m.verdict, ratio=m.ratio, ci_low=m.ci_low,
                        ci_high=m.ci_high, good_median=m.base_median, candidate_median=m.candidate_median,
                        unit=m.unit, rounds=m.rounds)
    from reports.bisect_report import evidence_text

    text = evidence_text(evidence)
    if m.verdict == "regression":
        return done("bad", text, evidence)
    if m.verdict in ("unchanged", "improvement"):
        return done("good", text, evidence)
    return done("skip", f"inconclusive within the step's budget ({result.stop_reason}): {text}", evidence)


def _print_record(record: BisectRecord) -> None:
    from reports.bisect_report import summary_lines

    table = Table("step", "candidate", "mark", "evidence (vs the good end)", "min", title=f"bisect {record.bisect_id}")
    for s in record.steps:
        colour = {"bad": "red", "good": "green", "skip": "yellow"}[s.mark]
        table.add_row(str(s.step), s.candidate, Text(s.mark, style=colour), s.reason, f"{s.minutes:.1f}")
    PlainConsole(width=200).print(table)
    for line in summary_lines(record):
        err_console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="bisect")(bisect)
