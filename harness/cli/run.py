"""`harness run`: a suite planned, executed (harness/execute/session.py) and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import CacheOpt, err_console
from harness.cli.history.recording import history_trends, record_in_history
from harness.core.console import styled
from harness.core.errors import EXIT_NOT_JUDGED
from harness.core.schema import FAILED_STATUSES, DroppedGate, RunResults
from harness.models.cache import default_cache_dir
from harness.records.run_files import write_whole


def run(
    suite: Annotated[str | None, typer.Argument(help="suite file or shipped suite name (default: suites/default.yaml)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default: results/<timestamp>-<suite>)")] = None,
    resume: Annotated[Path | None, typer.Option(help="run directory of an interrupted run: run only missing cells")] = None,
    retry_failed: Annotated[bool, typer.Option(help="with --resume: run again the cells that failed, crashed or timed "
                                               "out (every attempt stays in cells.jsonl)")] = False,
    model: Annotated[str | None, typer.Option(help="run the suite on this model instead: HF dir or id, or IR dir")] = None,
    device: Annotated[list[str] | None, typer.Option(help="override the suite's devices (repeatable)")] = None,
    precision: Annotated[list[str] | None, typer.Option(help="override the suite's precisions (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change a suite field, KEY=VALUE with a YAML value (repeatable): KEY a field or dotted path, "
        "list items by name or * (iterations=1, generation.max_new_tokens=8, models.*.source=synthetic:tiny); "
        "the environment variable HARNESS_SET holds more, applied first")] = None,
    cache_dir: CacheOpt = None,
    fail_on_checks: Annotated[bool, typer.Option(help="exit 1 also when a check fails, not only a cell")] = False,
    list_cells: Annotated[bool, typer.Option("--list", help="print the cells the suite expands to and exit")] = False,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="run every cell in this environment instead of the suite's: NAME=PINS (e.g. "
        "'r263=openvino-genai==2026.3.1') or NAME=/path/to/python; repeatable")] = None,
    cluster: Annotated[str | None, typer.Option(
        help="run the cells on this Ray cluster (HEAD:PORT, or 'auto' for the one this host belongs to); "
        "results come back to this run directory (docs/fleet.md)")] = None,
    each_node: Annotated[bool, typer.Option(
        "--each-node/--spread", help="with --cluster: the whole suite on every matching node, the node an axis "
        "of the cell key (qualification across a lab), or the cells spread over the nodes to finish sooner")] = False,
    nodes: Annotated[list[str] | None, typer.Option(
        "--nodes", help="with --cluster: only nodes with this Ray label value, LABEL=VALUE (repeatable)")] = None,
    shared_cache: Annotated[str | None, typer.Option(
        help="with --cluster: a model cache path every node reads and prepares into (a shared file system); "
        "default: each node its own cache")] = None,
    history: Annotated[str | None, typer.Option(
        "--history", help="history database to record the run in (e.g. postgresql://user@host/db; "
        "env HARNESS_HISTORY_URL; default: history.sqlite beside the run directory, results/history.sqlite for "
        "a default one)")] = None,
    fault: Annotated[list[str] | None, typer.Option(hidden=True, help="test only: KEY=KIND (the module HARNESS_FAULTS_MODULE names)")] = None,
) -> None:
    """Run a suite; write results.json, report.md, report.csv and report.html; print the report.

    Exit code: 0 when every cell ran or was skipped for a missing device, 1 when a cell failed,
    crashed or timed out (or, with --fail-on-checks, a check failed), 2 for bad input, 3 when no cell ran
    (every one failed or was skipped), 130 when interrupted."""
    from harness.cli.progress import RichProgress
    from harness.core.escaping import terminal
    from harness.execute.session import ClusterRequest, RunRequest, open_run, plan_run

    request = RunRequest(
        suite=suite, cache_dir=cache_dir or default_cache_dir(), out=out, resume=resume, retry_failed=retry_failed,
        model=model, devices=tuple(device or ()), precisions=tuple(precision or ()), sets=tuple(set_ or ()),
        envs=tuple(env or ()), cluster=ClusterRequest(cluster, each_node, tuple(nodes or ()), shared_cache),
        faults=tuple(fault or ()))
    planned = plan_run(request)
    if list_cells:
        for c in planned.cells:
            print(terminal(c.key))
        _say_dropped(planned.overridden.dropped_gates)
        err_console.print(f"{len(planned.cells)} cells from {planned.suite_path}")
        beside = [c for c in planned.cells if c.reference_side is not None]
        if beside:
            ref = beside[0].reference_side
            assert ref is not None
            how = f"sliced every {ref.slice_ms:g} ms" if ref.slice_ms is not None else "calls one after the other"
            err_console.print(terminal(
                f"{len(beside)} of them measured against the reference side {ref.label} ({ref.side.label()}): "
                f"{ref.process_pairs} process pairs x {ref.blocks} blocks a cell, {how}"), highlight=False)
        return
    _say_dropped(planned.overridden.dropped_gates)
    session = open_run(planned, ConsoleSay())
    where = (f"cluster {cluster}, {len(session.fleet.nodes)} node(s)" if session.fleet is not None
             else f"cache {request.cache_dir}")
    err_console.print(f"run directory: {session.run_dir}  ({len(session.cells)} cells, {where})", highlight=False)
    try:
        with RichProgress(err_console, total=len(session.cells)) as progress:
            results = session.execute(progress)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished cells are kept in {session.run_dir}; continue with --resume "
                          f"{session.run_dir}")
        raise typer.Exit(130) from None
    write_reports(results, session.run_dir, history)
    bad = [c for c in results.cells if c.status in FAILED_STATUSES]
    failed_checks = [c for c in results.cells for ch in c.checks if ch.status == "fail"]
    if not any(c.status == "ok" for c in results.cells):  # a gate must not read "failed" or "fine" into nothing
        err_console.print(styled("red", "nothing judged:", f"no cell ran ({len(bad)} failed, "
                                 f"{len(results.cells) - len(bad)} skipped of {len(results.cells)})"))
        raise typer.Exit(EXIT_NOT_JUDGED)
    if bad or (fail_on_checks and failed_checks):
        raise typer.Exit(1)


class ConsoleSay:
    def info(self, text: str) -> None:
        err_console.print(text, highlight=False)

    def warn(self, text: str) -> None:
        err_console.print(styled("yellow", "warning:", text))


def _say_dropped(dropped: list[DroppedGate]) -> None:
    for d in dropped:
        err_console.print(styled("yellow", "gate dropped:", d.describe()), highlight=False)


def write_reports(results: RunResults, run_dir: Path, history: str | None) -> None:
    """report.md (also printed), report.csv, the run in the history database, report.html with its trends."""
    from harness.analyze.history import default_history_url
    from reports import render
    from reports.html import render_html

    for fmt in ("md", "csv"):
        write_whole(run_dir, f"report.{fmt}", render(results, fmt))
    typer.echo(render(results, "md"))
    history = history or default_history_url(beside=run_dir)  # beside the run, where --out put it
    record_in_history(results, run_dir, history)
    write_whole(run_dir, "report.html", render_html(results, trends=history_trends(results, history)))
    err_console.print(f"wrote {run_dir / 'results.json'}, report.md, report.csv and report.html")
