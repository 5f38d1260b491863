"""`harness compare BASE CANDIDATE`: two runs, cell by cell; exit 1 on a regression or a cell that ran in the base
and failed in the candidate, 3 when no cell could be compared."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.cli.common import check_alpha, check_format, err_console, wide_console, write_out
from harness.core.console import styled
from harness.core.errors import EXIT_NOT_JUDGED

if TYPE_CHECKING:
    from harness.analyze.compare import Comparison


def compare(
    base: Annotated[str, typer.Argument(help="run dir, results.json, run id, baseline name or last-good")],
    candidate: Annotated[str, typer.Argument(help="run dir, results.json, run id or baseline name")],
    threshold: Annotated[list[str] | None, typer.Option(help="minimum effect, e.g. tpot_ms=0.05 (repeatable)")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="compare only these metrics (repeatable)")] = None,
    alpha: Annotated[float, typer.Option(help="significance level after Benjamini–Hochberg correction")] = 0.05,
    format: Annotated[str, typer.Option("--format", "-f", help="table | md | json")] = "table",
    out: Annotated[Path | None, typer.Option(help="write the report here instead of stdout")] = None,
    db: Annotated[str | None, typer.Option(help="history database URL (env HARNESS_HISTORY_URL)")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="also write a self-contained HTML page here")] = None,
    history_noise: Annotated[bool, typer.Option(
        help="raise each cell's minimum effect to its run-to-run noise in the history (>= 5 earlier runs)")] = True,
) -> None:
    """Compare two runs; exit code 1 when any metric of any cell regressed or a cell failed in the candidate only,
    3 when no cell ran in both runs (nothing compared)."""
    from harness.analyze.compare import DEFAULT_THRESHOLDS, CompareSettings, compare_runs, parse_thresholds
    from harness.analyze.history import load_run
    from reports.comparison import comparison_table, render_comparison_json, render_comparison_md

    check_format(format, ("table", "md", "json"))
    check_alpha(alpha)
    b, c = load_run(base, db), load_run(candidate, db)
    thresholds = {**DEFAULT_THRESHOLDS, **c.metadata.compare_thresholds, **parse_thresholds(threshold)}
    if metric:
        unknown = [m for m in metric if m not in thresholds and m not in parse_thresholds([f"{m}=0"])]
        thresholds = {m: thresholds.get(m, 0.05) for m in metric if m not in unknown}
    noise = _noise_floor(db, {b.metadata.run_id, c.metadata.run_id}) if history_noise else None
    comp = compare_runs(b, c, CompareSettings(thresholds=thresholds, alpha=alpha), noise)
    if html is not None:
        from reports.html import render_comparison_html

        write_out(html, render_comparison_html(comp, b, c))
        err_console.print(f"HTML comparison: {html}")
    if format == "table" and out is None:
        wide_console().print(comparison_table(comp))
        for d in comp.drift:
            err_console.print(styled("yellow", "drift:", f"{d.field}: {d.base} → {d.candidate}"))
        for k in comp.only_in_base:
            err_console.print(f"only in base: {k}")
        for k in comp.only_in_candidate:
            err_console.print(f"only in candidate: {k}")
    else:
        text = render_comparison_json(comp) if format == "json" else render_comparison_md(comp)
        if out:
            write_out(out, text)
        else:
            typer.echo(text)
    _exit(comp)


def _exit(comp: Comparison) -> None:
    """1 for a regression or a cell that ran in the base and failed in the candidate; 3 when no metric of any cell
    was compared (no cell in both runs, or none that ran in both); else 0."""
    from harness.core.schema import FAILED_STATUSES

    newly_failed = [c for c in comp.cells if c.base_status == "ok" and c.candidate_status in FAILED_STATUSES]
    for c in newly_failed:
        err_console.print(styled("red", "failed in the candidate:", f"{c.key} ({c.candidate_status}; ok in the base)"))
    if comp.regressions() or newly_failed:
        raise typer.Exit(1)
    if not any(c.metrics for c in comp.cells):
        ran = sum(c.base_status == c.candidate_status == "ok" for c in comp.cells)
        err_console.print(styled("red", "nothing judged:", f"no metric of any cell compared ({len(comp.cells)} cells "
                                 f"in both runs, {ran} of them ran in both; {len(comp.only_in_base)} only in the base, "
                                 f"{len(comp.only_in_candidate)} only in the candidate)"))
        raise typer.Exit(EXIT_NOT_JUDGED)


def _noise_floor(db: str | None, runs: set[str]):
    """The history's run-to-run noise for these two runs' comparison, or None (with a warning) when the history
    cannot be opened: the comparison then uses the configured minimum effects alone."""
    from harness.analyze.history_access import noise_lookup

    try:
        return noise_lookup(db, runs)
    except Exception as e:  # noqa: BLE001 - the comparison must not fail because the history is unreachable
        err_console.print(styled("yellow", "no run-to-run noise floor:", f"history unavailable ({type(e).__name__}: {e})"))
        return None
