"""Command line of the history database: `harness history [record]` and `harness baseline set|list`.

`harness.analyze.history` (and with it SQLAlchemy) is imported inside the commands so other commands
start without it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.console import PlainConsole, styled
from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore, TrendPoint
    from harness.core.schema import RunResults
    from reports.html import Trend

err_console = PlainConsole(stderr=True)

DbOpt = Annotated[str | None, typer.Option(
    "--db", show_default=False,
    help="history database URL, e.g. postgresql+psycopg://user:pw@host/db "
         "(default: $HARNESS_HISTORY_URL, else sqlite:///results/history.sqlite)")]

history_app = typer.Typer(help="Runs recorded in the history database, and a metric's trend for a cell.")
baseline_app = typer.Typer(no_args_is_help=True, help="Named baselines (e.g. last-good) in the history database.")


def register(app: typer.Typer) -> None:
    """Add `history` and `baseline` to the harness's command line."""
    app.add_typer(history_app, name="history")
    app.add_typer(baseline_app, name="baseline")


def record_in_history(results: RunResults, run_dir: Path | str, url: str | None = None) -> bool:
    """Record a finished run; a database problem is a warning, not a failed run (results are on disk)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from harness.analyze.history import HistoryStore

        with HistoryStore(url) as store:
            store.record_run(results, str(Path(run_dir).resolve()))
    except (ImportError, HarnessInputError, SQLAlchemyError, OSError) as e:
        err_console.print(styled("yellow", "warning:", f"run not recorded in the history: {e}"))
        return False
    err_console.print(f"recorded run {results.metadata.run_id} in the history {store.url}", highlight=False)
    return True


def _store(db: str | None) -> HistoryStore:
    from harness.analyze.history import HistoryStore

    return HistoryStore(db)


def _wide_console() -> Console:
    console = PlainConsole()
    console.width = max(console.width, 160)  # run ids and cell keys are long; CI logs are not 80 columns
    return console


def _when(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _run_dir_of(path: Path) -> str:
    path = path.resolve()
    return str(path if path.is_dir() else path.parent)


# ---------------------------------------------------------------- harness history


@history_app.callback(invoke_without_command=True)
def history(
    ctx: typer.Context,
    db: DbOpt = None,
    suite: Annotated[str | None, typer.Option(help="only runs of this suite")] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=1_000_000, show_default=False,
                                              help="most recent runs to show (default: 20; trend: 50)")] = None,
    cell: Annotated[str | None, typer.Option(help="cell key: show the trend of --metric for this cell")] = None,
    metric: Annotated[str | None, typer.Option(help="metric tag for the trend, e.g. tpot_ms")] = None,
) -> None:
    """List recorded runs, or with --cell and --metric a metric's trend for one cell."""
    if ctx.invoked_subcommand is not None:
        return
    if (cell is None) != (metric is None):
        missing = "--metric" if metric is None else "--cell"
        raise HarnessInputError("command line", missing, None, "--cell and --metric go together")
    with _store(db) as store:
        if cell is not None and metric is not None:
            _print_trend(store, cell, metric, limit or 50, suite)
        else:
            _print_runs(store, limit or 20, suite)


def _print_runs(store: HistoryStore, limit: int, suite: str | None) -> None:
    rows = store.list_runs(limit=limit, suite=suite)
    if not rows:
        err_console.print(f"no runs recorded in {store.url}" + (f" for suite {suite!r}" if suite else ""),
                          highlight=False)
        return
    named: dict[str, list[str]] = {}
    for name, run_id in store.baselines().items():
        named.setdefault(run_id, []).append(name)
    table = Table("run", "suite", "started", "host", "cpu", "genai", "openvino", "cells ok/failed/all",
                  "commit", "baselines", "run dir", title=f"runs in {store.url}")
    for r in rows:
        cells = f"{r.n_ok}/{r.n_failed}/{r.n_cells}"
        table.add_row(r.run_id, r.suite_name, _when(r.started_at), r.hostname or "?", r.cpu_model or "?",
                      r.genai_version or "?", r.openvino_version or "?",
                      Text(cells, style="red" if r.n_failed else ""), (r.harness_commit or "")[:12],
                      ", ".join(named.get(r.run_id, [])), r.run_dir or "")
    _wide_console().print(table)


def _change(prev: TrendPoint | None, cur: TrendPoint, higher_is_better: bool) -> Text | str:
    if prev is None or prev.median == 0:
        return ""
    pct = (cur.median - prev.median) / abs(prev.median) * 100
    better = pct > 0 if higher_is_better else pct < 0
    colour = "green" if better else "red" if pct else "default"
    return Text(f"{pct:+.1f}%", style=colour)


def _print_trend(store: HistoryStore, cell: str, metric: str, limit: int, suite: str | None) -> None:
    import difflib

    from harness.analyze.changes import series_changes
    from harness.core.metrics import METRICS
    from harness.core.schema import ChangeSettings
    from reports.changes_report import magnitude, pvalue

    if metric not in METRICS:
        raise HarnessInputError("command line", "--metric", metric, f"unknown metric; known: {', '.join(METRICS)}")
    points = store.trend(cell, metric, limit=limit)
    if not points:
        close = difflib.get_close_matches(cell, store.cell_keys(metric), n=3, cutoff=0.5)
        hint = f"; similar cells: {', '.join(close)}" if close else ""
        raise HarnessInputError(store.url, "--cell", cell, f"no recorded {metric} values for this cell{hint}")
    m = METRICS[metric]
    direction = "higher" if m.higher_is_better else "lower"
    # change points within each (suite, host) series of this cell, marked on their first run at the new level
    starts = {c.after_run: c for key, series in store.series(cells=[cell], metrics=[metric], suite=suite).items()
              for c in series_changes(key, series, ChangeSettings())}
    table = Table("run", "date", f"median ± stdev ({m.unit})", "n", "genai", "vs previous", "change point",
                  title=f"{metric} of {cell} ({direction} is better)")
    prev = None
    for p in points:
        spread = f" ± {_num(p.stdev)}" if p.stdev is not None else ""
        c = starts.get(p.run_id)
        mark = Text(f"▶ {magnitude(c)} {c.direction}, p={pvalue(c.pvalue)}",
                    style="red" if c.direction == "regression" else "green") if c else ""
        table.add_row(p.run_id, _when(p.started_at), f"{_num(p.median)}{spread}", str(p.n),
                      p.genai_version or "?", _change(prev, p, m.higher_is_better), mark)
        prev = p
    _wide_console().print(table)


@history_app.command("changes")
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
    format: Annotated[str, typer.Option("--format", "-f", help="table | md | json")] = "table",
    out: Annotated[Path | None, typer.Option(help="write the md or json here instead of stdout")] = None,
) -> None:
    """Change points in every suite x host x cell x metric series of the history (PELT, then a trimmed Welch
    t-test); exit 1 with --recent N when a regression starts among a series' newest N runs."""
    from harness.analyze.changes import default_metrics, recent_regressions, series_changes
    from harness.core.metrics import METRICS
    from harness.core.schema import ChangeSettings
    from reports.changes_report import ChangesReport, changes_table, pct, render_changes_md

    if format not in ("table", "md", "json"):
        raise HarnessInputError("command line", "--format", format, "choose from table, md, json")
    if out is not None and format == "table":
        raise HarnessInputError("command line", "--out", str(out), "writes md or json: add --format md or --format json")
    for m in metric or []:
        if m not in METRICS:
            raise HarnessInputError("command line", "--metric", m, f"unknown metric; known: {', '.join(METRICS)}")
    since_iso = _since(since) if since is not None else None
    settings, suite_name = _change_settings(suite)
    overrides = {k: v for k, v in (("max_pvalue", max_pvalue), ("min_magnitude", min_magnitude),
                                   ("min_segment", min_segment), ("penalty", penalty)) if v is not None}
    try:
        settings = ChangeSettings.model_validate({**settings.model_dump(), **overrides})
    except Exception as e:  # noqa: BLE001 - pydantic ValidationError: one line naming the option
        err = e.errors()[0]  # type: ignore[attr-defined]
        raise HarnessInputError("command line", f"--{str(err['loc'][0]).replace('_', '-')}", err["input"],
                                err["msg"]) from None
    if recent is not None and recent < settings.min_segment:
        raise HarnessInputError("command line", "--recent", recent, f"is below the minimum segment "
                                f"({settings.min_segment} runs): a change point needs that many runs at the new "
                                "level, so one among fewer could never be flagged")
    with _store(db) as store:
        if suite_name is not None and suite_name not in store.suite_names():
            raise HarnessInputError(store.url, "--suite", suite, "no runs of this suite recorded (recorded: "
                                    f"{', '.join(store.suite_names()) or 'none'})")
        if cell:
            known = set(store.cell_keys())
            for key in cell:
                if key not in known:
                    import difflib

                    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
                    hint = f"; similar cells: {', '.join(close)}" if close else ""
                    raise HarnessInputError(store.url, "--cell", key, f"no recorded values for this cell{hint}")
        series = store.series(cells=cell or (), metrics=metric or default_metrics(), suite=suite_name, host=host,
                              since=since_iso, limit=limit)
        url = store.url
    found = [c for key, points in sorted(series.items(), key=lambda kv: tuple(str(v) for v in kv[0].model_dump().values()))
             for c in series_changes(key, points, settings)]
    found.sort(key=lambda c: (c.direction != "regression", c.runs_since, c.label()))
    flagged = recent_regressions(found, recent) if recent is not None else []
    report = ChangesReport(database=url, settings=settings, series=len(series),
                           too_short=sum(len(p) < 2 * settings.min_segment for p in series.values()),
                           recent=recent, recent_regressions=len(flagged), changes=found)
    if format == "table":
        if not series:
            err_console.print(f"no recorded series match in {url}", highlight=False)
        elif not found:
            err_console.print(f"no change points in {len(series)} series of {url} ({report.too_short} too short "
                              f"to have one: under {2 * settings.min_segment} runs)", highlight=False)
        else:
            _wide_console().print(changes_table(report))
    else:
        text = report.model_dump_json(indent=1) if format == "json" else render_changes_md(report)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
            err_console.print(f"wrote {out}", highlight=False)
        else:
            typer.echo(text, nl=not text.endswith("\n"))
    if flagged:
        err_console.print(styled("red", "regression:", f"{len(flagged)} change point(s) of regression among the "
                                 f"newest {recent} runs: " + "; ".join(f"{c.label()} {pct(c.change)} from run "
                                                                      f"{c.after_run}" for c in flagged)))
        raise typer.Exit(1)


def _since(text: str) -> str:
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HarnessInputError("command line", "--since", text, "expected a date such as 2026-11-01 or "
                                "2026-11-01T08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _change_settings(suite: str | None):
    """The suite's `changes:` settings and its name when --suite names a suite file or shipped suite; else
    the defaults and --suite taken as a recorded suite name."""
    from harness.core.schema import ChangeSettings
    from harness.plan.suite import load_suite, resolve_suite_path

    if suite is None:
        return ChangeSettings(), None
    path = resolve_suite_path(suite)
    if path.is_file():
        parsed, _ = load_suite(path)
        return parsed.changes, parsed.name
    return ChangeSettings(), suite


@history_app.command("record")
def record(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories or results.json files")],
    db: DbOpt = None,
) -> None:
    """Import existing runs into the history (re-recording a run replaces it)."""
    from harness.core.store import load_results

    with _store(db) as store:
        for path in run_dirs:
            results = load_results(path)
            store.record_run(results, _run_dir_of(path))
            err_console.print(f"recorded {results.metadata.run_id} ({len(results.cells)} cells) from {path}",
                              highlight=False)


# ---------------------------------------------------------------- harness baseline


@baseline_app.command("set")
def baseline_set(
    name: Annotated[str, typer.Argument(help="baseline name, e.g. last-good")],
    run: Annotated[str, typer.Argument(help="run id, baseline name, last-good, or a run directory / "
                                            "results.json (recorded first when missing)")],
    db: DbOpt = None,
) -> None:
    """Point a named baseline at a run."""
    from harness.core.store import load_results

    if not name.strip():
        raise HarnessInputError("command line", "NAME", name, "a baseline needs a name")
    with _store(db) as store:
        path = Path(run)
        if path.exists():
            results = load_results(path)
            if not store.has_run(results.metadata.run_id):
                store.record_run(results, _run_dir_of(path))
        else:
            results = store.resolve(run)
        store.set_baseline(name, results.metadata.run_id)
    err_console.print(f"baseline {name} -> run {results.metadata.run_id}", highlight=False)


@baseline_app.command("list")
def baseline_list(db: DbOpt = None) -> None:
    """Show the named baselines."""
    with _store(db) as store:
        named = store.baselines()
        if not named:
            err_console.print(f"no baselines in {store.url}", highlight=False)
            return
        table = Table("baseline", "run", title=f"baselines in {store.url}")
        for name, run_id in named.items():
            table.add_row(name, run_id)
        _wide_console().print(table)


TREND_METRICS = ("output_tps", "ttft_ms", "tpot_ms")


def record_ab_in_history(ab, base: RunResults, candidate: RunResults, ab_dir: Path, url: str | None = None) -> bool:
    """Record an A/B comparison with both its runs; a database problem is a warning (results are on disk)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from harness.analyze.history import HistoryStore

        with HistoryStore(url) as store:
            store.record_ab(ab, base, candidate, str(Path(ab_dir).resolve()))
    except (ImportError, HarnessInputError, SQLAlchemyError, OSError) as e:
        err_console.print(styled("yellow", "warning:", f"A/B comparison not recorded in the history: {e}"))
        return False
    err_console.print(f"recorded A/B {ab.ab_id} (runs {base.metadata.run_id}, {candidate.metadata.run_id}) in the "
                      f"history {store.url}", highlight=False)
    return True


def history_trends(results: RunResults, url: str | None) -> dict[str, Trend]:
    """Per ok cell and headline metric, the history's medians of this run's suite and host up to this run
    (when there are two or more), with their change points."""
    try:
        from harness.analyze.changes import series_changes
        from harness.analyze.history import HistoryStore
        from reports.changes_report import magnitude, pvalue
        from reports.html import Trend, TrendMark

        meta = results.metadata
        keys = [c.key for c in results.cells if c.status == "ok"]
        settings = _suite_change_settings(meta.suite_file)
        hosts = {c.key: c.node.name if c.node else meta.host.hostname for c in results.cells}
        with HistoryStore(url) as store:
            series = store.series(cells=keys, metrics=TREND_METRICS, suite=meta.suite_name,
                                  host=None if meta.cluster else meta.host.hostname, limit=10_000)
        # each cell's own host (a cluster node): one series per cell and metric
        by_cell = {(k.cell_key, k.metric): (k, v) for k, v in series.items() if k.host == hosts.get(k.cell_key)}
        trends = {}
        for key in keys:
            for tag in TREND_METRICS:
                if (key, tag) not in by_cell:
                    continue
                series_key, recorded = by_cell[(key, tag)]
                points = [p for p in recorded if p.started_at <= meta.started_at][-50:]
                if len(points) < 2:
                    continue
                found = series_changes(series_key, points, settings)
                marks = [TrendMark(len(points) - c.runs_since, f"{magnitude(c)} {c.direction}, p={pvalue(c.pvalue)}",
                                   c.direction == "regression") for c in found]
                trends[f"{key} {tag}"] = Trend([(p.run_id, p.median) for p in points], marks)
        return trends
    except Exception as e:  # a report must not fail because the history is unreachable
        err_console.print(styled("yellow", "no trend charts:", f"history unavailable ({type(e).__name__}: {e})"))
        return {}


def _suite_change_settings(suite_file: str | None):
    """The `changes:` settings of the suite file a run came from, when it is still there and reads."""
    from harness.core.schema import ChangeSettings
    from harness.plan.suite import load_suite

    if suite_file and Path(suite_file).is_file():
        try:
            return load_suite(Path(suite_file))[0].changes
        except HarnessInputError:
            pass
    return ChangeSettings()


def history_noise_lookup(url: str | None, exclude: set[str]):
    """A (cell key, metric) -> (sd, runs) lookup over the history for `harness compare`, or None when the
    history cannot be opened (the comparison then uses the configured minimum effects alone)."""
    try:
        from harness.analyze.history import HistoryStore

        store = HistoryStore(url)
    except Exception as e:  # noqa: BLE001 - the comparison must not fail because the history is unreachable
        err_console.print(styled("yellow", "no run-to-run noise floor:", f"history unavailable ({type(e).__name__}: {e})"))
        return None
    frozen = frozenset(exclude)
    return lambda key, metric, config=None: store.run_to_run_noise(key, metric, exclude=frozen, config=config)
