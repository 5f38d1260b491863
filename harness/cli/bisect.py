"""`harness bisect SUITE --cell KEY --metric M --good PIN --bad PIN` (or --candidates): the command line of
harness/experiment/bisect.py. Exit 0 when the first bad candidate is named, 1 when it cannot be (a range of skipped
candidates, no regression at the bad end), 2 on bad input, 3 when no candidate could be judged good or bad (every
step skipped: the bad end could not be measured, ...), 130 when interrupted (the steps so far are kept; the same
command resumes)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from harness.cli.common import check_alpha, check_metrics, check_rounds, err_console
from harness.core.console import PlainConsole, styled
from harness.core.errors import EXIT_NOT_JUDGED, HarnessInputError

if TYPE_CHECKING:
    from harness.experiment.ab import ABResult
    from harness.experiment.bisect import BisectRecord, Candidate, Step

_COLOUR = {"bad": "red", "good": "green", "skip": "yellow"}


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
    from harness.cli.ab import compare_sides, parse_duration, say_dropped
    from harness.execute.run_record import now_iso
    from harness.experiment.ab import ABSettings
    from harness.experiment.ab_session import ABRequest, ab_cells, declared_environments, read_suite
    from harness.experiment.bisect import BisectRecord, bisect_id, cell_named, choose_candidates
    from harness.experiment.bisect_steps import StepHooks, prepare_good_end, resume_or_start, run_steps
    from harness.models.cache import default_cache_dir
    from reports.bisect_report import evidence_text, render_bisect_md

    cache_dir = cache_dir or default_cache_dir()
    suite_path, sha, overridden = read_suite(suite, set_)
    parsed = overridden.suite
    say_dropped(overridden)
    check_metrics([metric])
    check_alpha(alpha)
    check_rounds(min_rounds, max_rounds)
    if threshold is not None and not 0 < threshold < 10:
        raise HarnessInputError("command line", "--threshold", threshold, "a minimum effect is a fraction above 0, "
                                "e.g. 0.05 for 5%")
    budget_s = parse_duration(budget)
    cells = cell_named(ab_cells(parsed, suite_path)[0], cell, suite_path, suite)
    listed, known_envs = choose_candidates(candidates, good, bad, declared_environments(parsed, env))
    th = threshold if threshold is not None else parsed.compare_thresholds.get(metric, DEFAULT_THRESHOLDS.get(metric, 0.05))
    settings = ABSettings(alpha=alpha, budget_s=budget_s, min_rounds=min_rounds, max_rounds=max_rounds,
                          metrics=[metric], thresholds={metric: th})
    # a bisect of the suite with overrides is another question than one of the suite as written
    asked = "|".join([sha, *overridden.overrides])
    key = bisect_id(asked, cell, metric, listed, check_ends, settings.model_dump(mode="json"))
    log = lambda m: err_console.print(m, highlight=False)  # noqa: E731

    def compare(cand: Candidate, step_dir: Path) -> ABResult:
        sides = {"base": listed[0].side, "candidate": cand.side}
        return compare_sides(ABRequest(
            suite=parsed, suite_path=suite_path, suite_sha=sha, cells=cells, sides=sides,
            environments=[known_envs[s.env] for s in sides.values() if s.env], settings=settings, out_dir=step_dir,
            cache_dir=cache_dir, db=db, overridden=overridden))

    with HistoryStore(db) as store:
        record = resume_or_start(store, key, restart, retry_skipped, log)
        if record is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            record = BisectRecord(bisect_id=key, suite_name=parsed.name, suite_file=str(suite_path.resolve()),
                                  cell_key=cell, metric=metric, candidates=listed, check_ends=check_ends,
                                  out_dir=str((out or Path("results") / f"{stamp}-bisect-{parsed.name}").resolve()),
                                  started_at=now_iso())
            log(f"bisect {key}: {len(listed)} candidates from {listed[0].name} (good) to {listed[-1].name} (bad), "
                f"{cell} {metric}, minimum effect {th:.0%} -> {record.out_dir}")
        Path(record.out_dir).mkdir(parents=True, exist_ok=True)
        prepare_good_end(listed[0], known_envs, cache_dir, log)
        interrupted = run_steps(record, store, StepHooks(compare, evidence_text, render_bisect_md, log, _say_mark))
    _print_record(record)
    if interrupted:
        err_console.print(f"interrupted: {len(record.steps)} steps kept; run the same command to resume")
        raise typer.Exit(130)
    if record.status == "found":
        return
    if not any(s.mark in ("good", "bad") for s in record.steps):  # every step skipped: nothing was judged
        skipped = ", ".join(s.candidate for s in record.steps) or "none measured"
        err_console.print(styled("red", "nothing judged:", f"no candidate could be judged good or bad (skipped: "
                                 f"{skipped})"), highlight=False)
        raise typer.Exit(EXIT_NOT_JUDGED)
    raise typer.Exit(1)


def _say_mark(step: Step) -> None:
    err_console.print(styled(_COLOUR[step.mark], f"{step.mark}:", f"{step.candidate}: {step.reason}"))


def _print_record(record: BisectRecord) -> None:
    from reports.bisect_report import summary_lines

    table = Table("step", "candidate", "mark", "evidence (vs the good end)", "min", title=f"bisect {record.bisect_id}")
    for s in record.steps:
        table.add_row(str(s.step), s.candidate, Text(s.mark, style=_COLOUR[s.mark]), s.reason, f"{s.minutes:.1f}")
    PlainConsole(width=200).print(table)
    for line in summary_lines(record):
        err_console.print(line, highlight=False)
