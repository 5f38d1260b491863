"""`harness ab SUITE --base SPEC --candidate SPEC`: the command line of harness/experiment/ab.py."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.cli.common import check_alpha, check_metrics, check_rounds, err_console
from harness.core.console import PlainConsole
from harness.core.errors import EXIT_NOT_JUDGED, HarnessInputError
from harness.records.run_files import write_whole

if TYPE_CHECKING:
    from harness.experiment.ab import ABResult
    from harness.experiment.ab_session import ABRequest
    from harness.plan.overrides import OverriddenSuite


def parse_duration(text: str, where: str = "command line", field: str = "--budget") -> float:
    """'10m', '90s', '1h', '1h30m' or seconds as a number."""
    t = text.strip().lower()
    try:
        value = float(t)
    except ValueError:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or not parts or not any(parts.groups()):
            raise HarnessInputError(where, field, text, "expected a duration such as 10m, 90s or 1h") from None
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        value = h * 3600 + m * 60 + s
    if not 0 < value <= 7 * 24 * 3600:
        raise HarnessInputError(where, field, text, "must be more than 0 and at most 7 days")
    return value


def ab(
    suite: Annotated[str, typer.Argument(help="suite file or shipped suite name")],
    base: Annotated[list[str], typer.Option(help="base side: env=NAME, model=DIR, device=NAME, "
                                            "properties.NAME=VALUE or params.NAME=VALUE (a scenario parameter) "
                                            "(repeatable); nothing: the suite as is")] = [],  # noqa: B006
    candidate: Annotated[list[str], typer.Option(help="candidate side, as --base")] = [],  # noqa: B006
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="define an environment NAME=PINS or NAME=/path/to/python (repeatable), beside the suite's")] = None,
    budget: Annotated[str | None, typer.Option(help="time budget for the rounds, e.g. 10m (default: the suite's "
                                                "ab.budget, else 10m)")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="judge only these metrics (repeatable)")] = None,
    threshold: Annotated[list[str] | None, typer.Option(help="minimum effect per metric, e.g. tpot_ms=0.03")] = None,
    alpha: Annotated[float, typer.Option(help="error rate of the whole comparison")] = 0.05,
    min_rounds: Annotated[int, typer.Option(min=2, max=10000, help="rounds before any verdict")] = 5,
    max_rounds: Annotated[int, typer.Option(min=2, max=100000)] = 200,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="seed of the side order")] = 0,
    pairing: Annotated[str | None, typer.Option(help="slices (default): both sides loaded in long-lived processes, "
                                                "the two calls of a pair run at once, one side at a time, switching "
                                                "every --slice-ms; calls: the same processes, one call after the "
                                                "other; processes: one fresh process per side per round")] = None,
    blocks: Annotated[int | None, typer.Option(min=1, max=10000, help="slices and calls pairing: blocks (two call "
                                               "pairs each) per pair of processes [default: 4]")] = None,
    slice_ms: Annotated[float | None, typer.Option(help="slices pairing: ms one side runs before the other takes "
                                                   "over, 1 to 10000 [default: 25]")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory (default: results/<time>-ab-<suite>)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="model and environment cache [default: HARNESS_CACHE_DIR or "
                                                        "~/.cache/ov-genai-harness]")] = None,
    db: Annotated[str | None, typer.Option("--db", help="history database URL")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change a suite field, KEY=VALUE as for harness run (repeatable; HARNESS_SET applies first)")] = None,
) -> None:
    """Interleaved, paired A/B comparison of two sides of a suite with sequential stopping; exit 1 on a
    regression, 3 when no cell was measured on both sides. Writes base/ and candidate/ results, ab.json, ab.md and
    ab.html; records the pair in the history."""
    from harness.analyze.compare import parse_thresholds
    from harness.experiment.ab import INTERRUPTED, ABSettings, parse_side
    from harness.experiment.ab_session import (
        AB_JSON,
        ABRequest,
        ab_cells,
        declared_environments,
        read_suite,
        validate_side,
    )
    from harness.models.cache import default_cache_dir
    from reports.ab_report import ab_table

    cache_dir = cache_dir or default_cache_dir()
    suite_path, sha, overridden = read_suite(suite, set_)
    parsed = overridden.suite
    say_dropped(overridden)
    if parsed.ab is not None:  # the suite's own sides, unless the command line names them
        base, candidate = base or parsed.ab.base, candidate or parsed.ab.candidate
        budget = budget or parsed.ab.budget
        metric = metric or parsed.ab.metrics
        pairing = pairing or parsed.ab.pairing
        blocks = blocks or parsed.ab.blocks
        slice_ms = slice_ms or parsed.ab.slice_ms
    if pairing not in (None, "slices", "calls", "processes"):
        raise HarnessInputError("command line", "--pairing", pairing, "must be slices, calls or processes")
    if slice_ms is not None and not 1 <= slice_ms <= 10000:  # one check: typer's range check lets NaN through
        raise HarnessInputError("command line", "--slice-ms", str(slice_ms), "must be a number of ms from 1 to 10000")
    budget_s = parse_duration(budget or "10m")
    check_alpha(alpha)
    check_rounds(min_rounds, max_rounds)
    check_metrics(metric or [])
    sides = {"base": parse_side("--base", base), "candidate": parse_side("--candidate", candidate)}
    if sides["base"] == sides["candidate"]:
        err_console.print("note: both sides are the same: this is an A/A comparison", highlight=False)
    by_name = declared_environments(parsed, env)
    for option, side in sides.items():
        validate_side("command line", f"--{option}", side, by_name)
    cells, left_out = ab_cells(parsed, suite_path, sides)
    if left_out:
        err_console.print(f"note: {len(left_out)} cells left out, a side cannot run them ({left_out[0]}"
                          + (f"; and {len(left_out) - 1} more" if len(left_out) > 1 else "") + ")", highlight=False)
    if not cells:
        raise HarnessInputError(str(suite_path), "--base/--candidate", " | ".join(s.label() for s in sides.values()),
                                f"no cell of the suite runs on both sides ({left_out[0]})")
    given = {k: v for k, v in {"pairing": pairing, "blocks": blocks, "slice_ms": slice_ms}.items()
             if v is not None}  # else ABSettings'
    settings = ABSettings(alpha=alpha, budget_s=budget_s, min_rounds=min_rounds, max_rounds=max_rounds,
                          metrics=list(metric or []), seed=seed, **given)
    settings.thresholds.update(parsed.compare_thresholds)
    settings.thresholds.update(parse_thresholds(threshold))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out or Path("results") / f"{stamp}-ab-{parsed.name}"
    if (out_dir / AB_JSON).exists():
        raise HarnessInputError(str(out_dir), "--out", None, "already holds an A/B comparison")
    result = compare_sides(ABRequest(
        suite=parsed, suite_path=suite_path, suite_sha=sha, cells=cells, sides=sides,
        environments=[by_name[s.env] for s in sides.values() if s.env], settings=settings, out_dir=out_dir,
        cache_dir=cache_dir, db=db, overridden=overridden))
    PlainConsole(width=200).print(ab_table(result))
    err_console.print(f"wrote {out_dir / AB_JSON}, ab.md, ab.html and base/, candidate/ results", highlight=False)
    if result.stop_reason == INTERRUPTED:
        err_console.print(f"interrupted: the finished rounds are kept in {out_dir}")
        raise typer.Exit(130)
    for c in result.cells:  # one line per side that failed, with its error
        for failed, error in c.errors.items():
            err_console.print(f"not judged: {c.key}: {failed} {getattr(c, f'{failed}_status')}: {error}",
                              highlight=False)
        if not c.errors and not c.metrics:
            err_console.print(f"not judged: {c.key}: no metric measured on both sides", highlight=False)
    if not any(c.error is None and c.metrics for c in result.cells):
        err_console.print(f"nothing judged: no cell measured on both sides ({result.stop_reason or 'no round ran'})")
        raise typer.Exit(EXIT_NOT_JUDGED)
    if result.counts()["regression"]:
        raise typer.Exit(1)


def say_dropped(overridden: OverriddenSuite) -> None:
    """One line per gate the overrides left without a cell."""
    for d in overridden.dropped_gates:
        err_console.print(f"gate dropped: {d.describe()}", highlight=False)


def compare_sides(req: ABRequest) -> ABResult:
    """Run the comparison, write ab.md and ab.html beside its ab.json, record the pair in the history."""
    from harness.analyze.history import default_history_url
    from harness.cli.history.recording import record_ab_in_history
    from harness.experiment.ab_session import execute_ab
    from reports.ab_report import render_ab_html, render_ab_md

    result, runs = execute_ab(req, log=lambda m: err_console.print(m, highlight=False))
    write_whole(req.out_dir, "ab.md", render_ab_md(result))
    write_whole(req.out_dir, "ab.html", render_ab_html(result))
    record_ab_in_history(result, runs["base"], runs["candidate"], req.out_dir,
                         req.db or default_history_url(beside=req.out_dir))
    return result
