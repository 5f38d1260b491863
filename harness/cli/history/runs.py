"""`harness history`: the recorded runs, or with --cell and --metric a metric's trend for one cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from harness.cli.common import check_metrics, err_console, wide_console
from harness.cli.history.common import DbOpt, open_store, similar_cells, when
from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.analyze.changes import ChangePoint
    from harness.analyze.history import HistoryStore
    from harness.analyze.history_queries import TrendPoint


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
    with open_store(db) as store:
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
        table.add_row(r.run_id, r.suite_name, when(r.started_at), r.hostname or "?", r.cpu_model or "?",
                      r.genai_version or "?", r.openvino_version or "?",
                      Text(cells, style="red" if r.n_failed else ""), (r.harness_commit or "")[:12],
                      ", ".join(named.get(r.run_id, [])), r.run_dir or "")
    wide_console().print(table)


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _change(prev: TrendPoint | None, cur: TrendPoint, higher_is_better: bool) -> Text | str:
    if prev is None or prev.median == 0:
        return ""
    pct = (cur.median - prev.median) / abs(prev.median) * 100
    better = pct > 0 if higher_is_better else pct < 0
    colour = "green" if better else "red" if pct else "default"
    return Text(f"{pct:+.1f}%", style=colour)


def _print_trend(store: HistoryStore, cell: str, metric: str, limit: int, suite: str | None) -> None:
    from harness.analyze.history_changes import change_starts
    from harness.core.metrics import METRICS

    check_metrics([metric])
    points = store.trend(cell, metric, limit=limit)
    if not points:
        hint = similar_cells(cell, store.cell_keys(metric))
        raise HarnessInputError(store.url, "--cell", cell, f"no recorded {metric} values for this cell{hint}")
    m = METRICS[metric]
    direction = "higher" if m.higher_is_better else "lower"
    # change points are marked on their first run at the new level
    starts = change_starts(store, cell, metric, suite)
    # where the cell ran beside a reference side: its ratio to it, a series of its own with its own change points
    ratios = any(p.ratio is not None for p in points)
    ratio_starts = change_starts(store, cell, metric, suite, ratios=True) if ratios else {}
    table = Table("run", "date", f"median ± stdev ({m.unit})", "n", "genai", "vs previous", "change point",
                  *(["÷ reference [95% CI]", "ratio change point"] if ratios else []),
                  title=f"{metric} of {cell} ({direction} is better)")
    prev = None
    for p in points:
        spread = f" ± {_num(p.stdev)}" if p.stdev is not None else ""
        ratio = [_ratio(p), _mark(ratio_starts.get(p.run_id))] if ratios else []
        table.add_row(p.run_id, when(p.started_at), f"{_num(p.median)}{spread}", str(p.n),
                      p.genai_version or "?", _change(prev, p, m.higher_is_better), _mark(starts.get(p.run_id)),
                      *ratio)
        prev = p
    wide_console().print(table)


def _mark(c: ChangePoint | None) -> Text | str:
    from reports.changes_report import magnitude, pvalue

    if c is None:
        return ""
    return Text(f"▶ {magnitude(c)} {c.direction}, p={pvalue(c.pvalue)}",
                style="red" if c.direction == "regression" else "green")


def _ratio(p: TrendPoint) -> str:
    if p.ratio is None:
        return ""
    interval = f" [{p.ratio_low:.3f}, {p.ratio_high:.3f}]" if p.ratio_low is not None and p.ratio_high is not None else ""
    return f"{p.ratio:.3f}{interval} ÷ {p.reference}"
