"""`harness history changes`: change points in the history's series, and a gate on recent regressions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from harness.cli.common import check_format, check_metrics, err_console, wide_console, write_out
from harness.cli.history.common import DbOpt, open_store, parse_since, similar_cells
from harness.core.console import styled
from harness.core.errors import EXIT_NOT_JUDGED, HarnessInputError
from harness.core.escaping import json_of


def changes(
    db: DbOpt = None,
    cell: Annotated[list[str] | None, typer.Option(help="only this cell key (repeatable)")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="only this metric tag (repeatable; default: every "
                                                     "metric but token counts)")] = None,
    suite: Annotated[str | None, typer.Option(help="only runs of this suite: a suite file or shipped suite (its "
                                              "`changes:` settings apply) or a recorded suite name")] = None,
    host: Annotated[str | None, typer.Option(help="only runs of this hostname")] = None,
    since: Annotated[str | None, typer.Option(help="only runs started at or after this date, e.g. 2026-11-01")] = None,
    limit: Annotated[int, typer.Option(min=2, max=1_000_000, help="newest runs per series")] = 500,
    recent: Annotated[int | None, typer.Option(min=1, max=1_000_000, show_default=False,
                                               help="exit 1 when a regression change point's first run at the new "
                                                    "level is among the newest N runs of its series")] = None,
    max_pvalue: Annotated[float | None, typer.Option(show_default=False, help="significance a change point "
                                                     "needs (default 0.001)")] = None,
    min_magnitude: Annotated[float | None, typer.Option(show_default=False, help="smallest relative shift "
                                                        "reported, 0.02 = 2% (default 0.02)")] = None,
    min_segment: Annotated[int | None, typer.Option(show_default=False, help="runs needed on each side of a "
                                                    "change point (default 3)")] = None,
    penalty: Annotated[float | None, typer.Option(show_default=False, help="PELT penalty in units of run-to-run "
                                                  "variance x log(runs) (default 3)")] = None,
    on: Annotated[str, typer.Option("--on", help="which series: value (run medians), ratio (candidate / reference "
                                    "side, where a suite has reference_side) or both")] = "both",
    format: Annotated[str, typer.Option("--format", "-f", help="table | md | json")] = "table",
    out: Annotated[Path | None, typer.Option(help="write the md or json here instead of stdout")] = None,
) -> None:
    """Change points in every suite x host x cell x metric series of the history (PELT, then a trimmed Welch
    t-test), and in every series of ratios to a reference side; exit 1 with --recent N when a regression starts
    among a series' newest N runs, 3 when nothing could be judged (no recorded series match; with --recent, none
    long enough to hold a change point)."""
    from harness.analyze.changes import SeriesKey, SeriesPoint, default_metrics, recent_regressions, untriaged
    from harness.analyze.history_changes import (
        ChangeRules,
        change_settings,
        changes_in,
        recorded_rules,
        too_short,
    )
    from harness.analyze.triage import with_triage
    from reports.changes_report import ChangesReport, SeriesOn, changes_table, pct, render_changes_md

    check_format(format, ("table", "md", "json"))
    if on not in get_args(SeriesOn):  # checked here, not by typer, for the one-line error every option gives
        raise HarnessInputError("command line", "--on", on, f"choose from {', '.join(get_args(SeriesOn))}")
    which = cast("SeriesOn", on)
    if out is not None and format == "table":
        raise HarnessInputError("command line", "--out", str(out), "writes md or json: add --format md or --format json")
    check_metrics(metric or [])
    since_iso = parse_since(since) if since is not None else None
    settings, ratio_settings, suite_name = change_settings(suite)
    # the options apply to both kinds of series
    overrides = {k: v for k, v in (("max_pvalue", max_pvalue), ("min_magnitude", min_magnitude),
                                   ("min_segment", min_segment), ("penalty", penalty)) if v is not None}
    with open_store(db) as store:
        # without --suite, each recorded suite's own settings (from its file, where that is still there)
        rules = ChangeRules(settings, ratio_settings) if suite is not None else recorded_rules(store)
        try:
            rules = rules.overridden(overrides)
        except Exception as e:  # noqa: BLE001 - pydantic ValidationError: one line naming the option
            err = e.errors()[0]  # type: ignore[attr-defined]
            raise HarnessInputError("command line", f"--{str(err['loc'][0]).replace('_', '-')}", err["input"],
                                    err["msg"]) from None
        segment = rules.widest_segment(values=on != "ratio", ratios=on != "value")
        if recent is not None and recent < segment:
            raise HarnessInputError("command line", "--recent", recent, f"is below the minimum segment "
                                    f"({segment} runs): a change point needs that many runs at the new "
                                    "level, so one among fewer could never be flagged")
        if suite_name is not None and suite_name not in store.suite_names():
            raise HarnessInputError(store.url, "--suite", suite, "no runs of this suite recorded (recorded: "
                                    f"{', '.join(store.suite_names()) or 'none'})")
        if cell:
            known = set(store.cell_keys())
            for key in cell:
                if key not in known:
                    raise HarnessInputError(store.url, "--cell", key,
                                            f"no recorded values for this cell{similar_cells(key, sorted(known))}")
        series: dict[SeriesKey, list[SeriesPoint]] = {}
        for query, wanted in ((store.series, on != "ratio"), (store.ratio_series, on != "value")):
            if wanted:
                series |= query(cells=cell or (), metrics=metric or default_metrics(), suite=suite_name, host=host,
                                since=since_iso, limit=limit)
        marks = store.triage_marks()
        url = store.url
    ratio_series = sum(k.reference is not None for k in series)
    found = with_triage(changes_in(series, rules), marks)
    recent_found = recent_regressions(found, recent) if recent is not None else []
    flagged = untriaged(recent_found)
    report = ChangesReport(database=url, on=which, settings=rules.value, ratio_settings=rules.ratio,
                           suite_settings={k: v for k, (v, _) in rules.suites.items()},
                           series=len(series), ratio_series=ratio_series, too_short=too_short(series, rules),
                           recent=recent, recent_regressions=len(flagged),
                           recent_triaged=len(recent_found) - len(flagged), changes=found)
    if format == "table":  # no series at all is said below (nothing judged)
        if found:
            wide_console().print(changes_table(report))
        elif series:
            err_console.print(f"no change points in {len(series)} series of {url} ({ratio_series} of them "
                              f"ratios to a reference side; {report.too_short} too short to have one: under "
                              f"{2 * segment} runs)", highlight=False)
    else:
        text = json_of(report, indent=1, ascii_only=True) if format == "json" else render_changes_md(report)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_out(out, text + ("" if text.endswith("\n") else "\n"))
            err_console.print(f"wrote {out}", highlight=False)
        else:
            typer.echo(text, nl=not text.endswith("\n"))
    if recent_found and len(recent_found) > len(flagged):
        err_console.print("triaged, so not failing the gate: " + "; ".join(
            f"{c.label()} {pct(c.change)} ({c.triage.state})" for c in recent_found if c.triage), highlight=False)
    if flagged:
        err_console.print(styled("red", "regression:", f"{len(flagged)} change point(s) of regression among the "
                                 f"newest {recent} runs: " + "; ".join(f"{c.label()} {pct(c.change)} from run "
                                                                      f"{c.after_run}" for c in flagged)))
        raise typer.Exit(1)
    if not series or (recent is not None and report.too_short == len(series)):  # a gate that looked at nothing
        what = {"value": "series", "ratio": "ratio series", "both": "series"}[on]
        why = (f"no recorded {what} match in {url}" if not series else f"each of the {len(series)} series is too "
               f"short to hold a change point (under {2 * segment} runs)")
        err_console.print(styled("red", "nothing judged:", why))
        raise typer.Exit(EXIT_NOT_JUDGED)
