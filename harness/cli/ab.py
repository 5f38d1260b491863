"""`harness ab SUITE --base SPEC --candidate SPEC`: the command line of harness/experiment/ab.py."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.core.console import PlainConsole
from harness.core.errors import HarnessInputError

if TYPE_CHECKING:
    from harness.core.schema import CellSpec
    from harness.experiment.ab import ABResult, ABSettings, SideSpec
    from harness.plan.environments import EnvironmentSpec
    from harness.plan.overrides import OverriddenSuite
    from harness.plan.suite import Suite

err_console = PlainConsole(stderr=True)
AB_JSON = "ab.json"


def parse_duration(text: str) -> float:
    """'10m', '90s', '1h', '1h30m' or seconds as a number."""
    t = text.strip().lower()
    try:
        value = float(t)
    except ValueError:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or not parts or not any(parts.groups()):
            raise HarnessInputError("command line", "--budget", text, "expected a duration such as 10m, 90s or 1h") from None
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        value = h * 3600 + m * 60 + s
    if not 0 < value <= 7 * 24 * 3600:
        raise HarnessInputError("command line", "--budget", text, "must be more than 0 and at most 7 days")
    return value


def ab(
    suite: Annotated[str, typer.Argument(help="suite file or shipped suite name")],
    base: Annotated[list[str], typer.Option(help="base side: env=NAME, model=DIR, device=NAME or "
                                            "properties.NAME=VALUE (repeatable); nothing: the suite as is")] = [],  # noqa: B006
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
    out: Annotated[Path | None, typer.Option(help="output directory (default: results/<time>-ab-<suite>)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="model and environment cache [default: HARNESS_CACHE_DIR or "
                                                        "~/.cache/ov-genai-harness]")] = None,
    db: Annotated[str | None, typer.Option("--db", help="history database URL")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change a suite field, KEY=VALUE as for harness run (repeatable; HARNESS_SET applies first)")] = None,
) -> None:
    """Interleaved, paired A/B comparison of two sides of a suite with sequential stopping; exit 1 on a
    regression. Writes base/ and candidate/ results, ab.json, ab.md and ab.html; records the pair in the history."""
    from harness.analyze.compare import parse_thresholds
    from harness.core.metrics import METRICS
    from harness.experiment.ab import INTERRUPTED, ABSettings, parse_side
    from harness.models.cache import default_cache_dir
    from harness.plan.environments import with_environments
    from harness.plan.overrides import expand_overridden, set_overrides
    from harness.plan.suite import expand, load_suite, resolve_suite_path
    from reports.ab_report import ab_table

    cache_dir = cache_dir or default_cache_dir()
    suite_path = resolve_suite_path(suite)
    written, sha = load_suite(suite_path)
    overridden = expand_overridden(written, set_overrides(set_ or []), suite_path)
    parsed = overridden.suite
    say_dropped(overridden)
    if parsed.ab is not None:  # the suite's own sides, unless the command line names them
        base, candidate = base or parsed.ab.base, candidate or parsed.ab.candidate
        budget = budget or parsed.ab.budget
        metric = metric or parsed.ab.metrics
    budget_s = parse_duration(budget or "10m")
    if not 0 < alpha < 1:
        raise HarnessInputError("command line", "--alpha", alpha, "a significance level is between 0 and 1")
    if max_rounds < min_rounds:
        raise HarnessInputError("command line", "--max-rounds", max_rounds, f"is below --min-rounds ({min_rounds})")
    for m in metric or []:
        if m not in METRICS:
            raise HarnessInputError("command line", "--metric", m, f"unknown metric; known: {', '.join(METRICS)}")
    sides = {"base": parse_side("--base", base), "candidate": parse_side("--candidate", candidate)}
    if sides["base"] == sides["candidate"]:
        err_console.print("note: both sides are the same: this is an A/A comparison", highlight=False)
    declared = list(parsed.environments)
    if env:
        extra = with_environments(parsed, env).environments
        names = {e.name for e in extra}
        declared = [e for e in declared if e.name not in names] + list(extra)
    by_name = {e.name: e for e in declared}
    for option, side in sides.items():
        validate_side("command line", f"--{option}", side, by_name)
    cells = expand(parsed.model_copy(update={"environments": []}), suite_path)
    settings = ABSettings(alpha=alpha, budget_s=budget_s, min_rounds=min_rounds, max_rounds=max_rounds,
                          metrics=list(metric or []), seed=seed)
    settings.thresholds.update(parsed.compare_thresholds)
    settings.thresholds.update(parse_thresholds(threshold))
    needed = [by_name[s.env] for s in sides.values() if s.env]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out or Path("results") / f"{stamp}-ab-{parsed.name}"
    if (out_dir / AB_JSON).exists():
        raise HarnessInputError(str(out_dir), "--out", None, "already holds an A/B comparison")
    result = execute_ab(ABRequest(suite=parsed, suite_path=suite_path, suite_sha=sha, cells=cells, sides=sides,
                                  environments=needed, settings=settings, out_dir=out_dir, cache_dir=cache_dir, db=db,
                                  overridden=overridden))
    PlainConsole(width=200).print(ab_table(result))
    err_console.print(f"wrote {out_dir / AB_JSON}, ab.md, ab.html and base/, candidate/ results", highlight=False)
    if result.stop_reason == INTERRUPTED:
        err_console.print(f"interrupted: the finished rounds are kept in {out_dir}")
        raise typer.Exit(130)
    if result.counts()["regression"]:
        raise typer.Exit(1)


def validate_side(where: str, field: str, side: SideSpec, environments: dict[str, EnvironmentSpec]) -> None:
    """One line (exit 2) when a side names an undeclared environment, a folder that is not an IR, or a
    malformed device."""
    from harness.models.ir import validate_ir_dir
    from harness.plan.devices import validate_device_string

    if side.env and side.env not in environments:
        raise HarnessInputError(where, field, f"env={side.env}", "unknown environment; declare it in the suite's "
                                f"environments or with --env {side.env}=PINS (known: {', '.join(environments) or 'none'})")
    if side.model:
        try:
            validate_ir_dir(Path(side.model))
        except Exception as e:  # noqa: BLE001 - ModelPreparationError: one line
            raise HarnessInputError(where, field, f"model={side.model}", str(e)) from None
    if side.device:
        try:
            validate_device_string(side.device)
        except ValueError as e:
            raise HarnessInputError(where, field, f"device={side.device}", str(e)) from None


@dataclass(frozen=True)
class ABRequest:
    """One A/B comparison whose inputs are validated: what `harness ab` and each `harness bisect` step run."""

    suite: Suite
    suite_path: Path
    suite_sha: str
    cells: list[CellSpec]
    sides: dict[str, SideSpec]  # "base", "candidate"
    environments: list[EnvironmentSpec]  # those the sides name
    settings: ABSettings
    out_dir: Path
    cache_dir: Path
    db: str | None = None
    overridden: OverriddenSuite | None = None  # the overrides the suite was read with, recorded in both runs


def say_dropped(overridden: OverriddenSuite) -> None:
    """One line per gate the overrides left without a cell."""
    for d in overridden.dropped_gates:
        err_console.print(f"gate dropped: {d.describe()}", highlight=False)


def execute_ab(req: ABRequest) -> ABResult:
    """Prepare the environments, run the rounds, write ab.json/md/html and both sides' results, record the
    pair in the history. An environment that cannot be installed raises HarnessInputError (one line)."""
    import openvino as ov

    from harness.cli.history import record_ab_in_history
    from harness.core.store import append_cell, lock_run_dir, write_metadata, write_results
    from harness.execute.runner import ProgressSink, RunOptions, assemble, new_run_metadata, now_iso
    from harness.experiment.ab import ABResult, run_ab
    from harness.plan.environments import prepare_environments
    from reports.ab_report import render_ab_html, render_ab_md

    environments = prepare_environments(list({e.name: e for e in req.environments}.values()), req.cache_dir,
                                        log=lambda m: err_console.print(m, highlight=False))
    out_dir, sides = req.out_dir, req.sides
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(out_dir)  # noqa: F841 - held until this function returns
    core = ov.Core()
    metas = {}
    for name, side in sides.items():
        (out_dir / name).mkdir(exist_ok=True)
        metas[name] = new_run_metadata(f"{stamp}-{name}-{uuid.uuid4().hex[:6]}", req.suite, req.suite_path,
                                       req.suite_sha, core, [environments[side.env]] if side.env else [])
        if req.overridden is not None:
            metas[name].overrides = req.overridden.overrides
            metas[name].dropped_gates = req.overridden.dropped_gates
        write_metadata(out_dir / name, metas[name])
    result = ABResult(ab_id=f"{stamp}-ab-{uuid.uuid4().hex[:6]}", suite_name=req.suite.name,
                      suite_file=str(req.suite_path.resolve()), base=sides["base"], candidate=sides["candidate"],
                      base_run=metas["base"].run_id, candidate_run=metas["candidate"].run_id, settings=req.settings,
                      started_at=now_iso(),
                      environments={n: environments[s.env].versions for n, s in sides.items() if s.env})
    options = RunOptions(cache_dir=req.cache_dir, available_devices=list(core.available_devices),
                         environments=environments)
    err_console.print(f"A/B: {len(req.cells)} cells, base {sides['base'].label()}, candidate "
                      f"{sides['candidate'].label()}, budget {req.settings.budget_s / 60:g} min -> {out_dir}",
                      highlight=False)

    def save(r: ABResult) -> None:
        (out_dir / AB_JSON).write_text(r.model_dump_json(indent=1), encoding="utf-8")

    side_cells = run_ab(req.cells, sides["base"], sides["candidate"], out_dir, options, req.settings, result,
                        ProgressSink(), log=lambda m: err_console.print(m, highlight=False), on_round=save)
    save(result)
    runs = {}
    for name in sides:
        metas[name].finished_at = now_iso()
        for c in side_cells[name]:
            append_cell(out_dir / name, c)
        runs[name] = assemble(out_dir / name, metas[name])
        write_results(out_dir / name, runs[name])
    (out_dir / "ab.md").write_text(render_ab_md(result), encoding="utf-8")
    (out_dir / "ab.html").write_text(render_ab_html(result), encoding="utf-8")
    from harness.analyze.history import default_history_url

    record_ab_in_history(result, runs["base"], runs["candidate"], out_dir, req.db or default_history_url(beside=out_dir))
    return result


def load_ab(path: Path):
    """An A/B record from its directory or its ab.json; one line when it is not one."""
    from pydantic import ValidationError

    from harness.experiment.ab import ABResult

    p = path / AB_JSON if path.is_dir() else path
    try:
        return ABResult.model_validate_json(p.read_bytes())
    except OSError as e:
        raise HarnessInputError(str(p), None, None, f"cannot read the A/B record: {e.strerror}") from None
    except (ValidationError, ValueError) as e:
        raise HarnessInputError(str(p), None, None, f"not an A/B record: {str(e).splitlines()[0][:200]}") from None


def register(app: typer.Typer) -> None:
    app.command(name="ab")(ab)
