"""One A/B comparison on disk, what `harness ab` and each `harness bisect` step run: its validated inputs, the
two sides' runs and ab.json; and an A/B record read back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessInputError
from harness.core.escaping import json_of
from harness.core.input_files import MAX_AB_BYTES, invalid, load_json, parse_json
from harness.core.schema import DEFAULT_RUNTIME
from harness.experiment.ab import ABResult
from harness.plan.sides import validate_side as validate_side  # re-exported: callers' old home
from harness.records.run_files import refuse_links, write_whole

if TYPE_CHECKING:
    from harness.core.schema import CellSpec, RunResults
    from harness.experiment.ab import ABSettings, SideSpec
    from harness.plan.environments import EnvironmentSpec
    from harness.plan.overrides import OverriddenSuite
    from harness.plan.suite_model import Suite

AB_JSON = "ab.json"


@dataclass(frozen=True)
class ABRequest:
    """One A/B comparison whose inputs are validated."""

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


def read_suite(suite: str, sets: list[str] | None) -> tuple[Path, str, OverriddenSuite]:
    """The suite file, its digest, and the suite with the --set items (HARNESS_SET's first) applied."""
    from harness.plan.overrides import expand_overridden, set_overrides
    from harness.plan.suite import load_suite, resolve_suite_path

    suite_path = resolve_suite_path(suite)
    written, sha = load_suite(suite_path)
    return suite_path, sha, expand_overridden(written, set_overrides(sets or []), suite_path)


def ab_cells(suite: Suite, suite_path: Path, sides: dict[str, SideSpec] | None = None
             ) -> tuple[list[CellSpec], list[str]]:
    """The suite's cells as the sides run them: without the suite's environments (a side names its own), without
    its reference side (the two sides are the comparison) and, where a side names a runtime, without the suite's
    runtimes axis and without the cells that runtime cannot run; and why each left-out cell was."""
    from harness.plan.sides import runtime_refusal
    from harness.plan.suite import expand

    sides = sides or {}
    update: dict[str, object] = {"environments": [], "reference_side": None}
    if any(s.runtime for s in sides.values()):
        update["runtimes"] = [DEFAULT_RUNTIME]
    cells: list[CellSpec] = []
    left_out: list[str] = []
    for cell in expand(suite.model_copy(update=update), suite_path):
        why = next((r for s in sides.values() if (r := runtime_refusal(cell, s))), None)
        if why is None:
            cells.append(cell)
        else:
            left_out.append(f"{cell.key}: {why}")
    return cells, left_out


def declared_environments(suite: Suite, env_options: list[str] | None) -> dict[str, EnvironmentSpec]:
    """The suite's environments by name, with those of --env NAME=SPEC options added or replacing them."""
    from harness.plan.environments import with_environments

    declared = {e.name: e for e in suite.environments}
    if env_options:
        declared.update({e.name: e for e in with_environments(suite, env_options).environments})
    return declared


def execute_ab(req: ABRequest, log: Callable[[str], None]) -> tuple[ABResult, dict[str, RunResults]]:
    """Prepare the environments, run the rounds, write ab.json (after every round) and both sides' results;
    the record and the sides' runs. An environment that cannot be installed raises HarnessInputError."""
    import openvino as ov

    from harness.execute.run_options import RunOptions
    from harness.execute.run_record import assemble, new_run_metadata, now_iso
    from harness.execute.worker_process import ProgressSink
    from harness.experiment.ab import run_ab
    from harness.plan.environments import prepare_environments
    from harness.records.store import append_cell, lock_run_dir, write_metadata, write_results

    environments = prepare_environments(list({e.name: e for e in req.environments}.values()), req.cache_dir, log=log)
    out_dir, sides = req.out_dir, req.sides
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    refuse_links(out_dir)
    lock = lock_run_dir(out_dir)  # noqa: F841 - held until this function returns
    core = ov.Core()
    metas = {}
    for name, side in sides.items():
        (out_dir / name).mkdir(exist_ok=True)
        metas[name] = new_run_metadata(f"{stamp}-{name}-{uuid.uuid4().hex[:6]}", core, req.suite.name, req.suite_path,
                                       req.suite_sha, req.suite.compare_thresholds,
                                       [environments[side.env]] if side.env else [])
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
    log(f"A/B: {len(req.cells)} cells, base {sides['base'].label()}, candidate {sides['candidate'].label()}, "
        f"budget {req.settings.budget_s / 60:g} min -> {out_dir}")

    def save(r: ABResult) -> None:
        write_whole(out_dir, AB_JSON, json_of(r, indent=1))

    side_cells = run_ab(req.cells, sides["base"], sides["candidate"], out_dir, options, req.settings, result,
                        ProgressSink(), log=log, on_round=save)
    save(result)
    runs = {}
    for name in sides:
        metas[name].finished_at = now_iso()
        for c in side_cells[name]:
            append_cell(out_dir / name, c)
        runs[name] = assemble(out_dir / name, metas[name])
        write_results(out_dir / name, runs[name])
    return result, runs


def load_ab(path: Path) -> ABResult:
    """An A/B record from its directory or its ab.json; one line when it is not one."""
    from pydantic import ValidationError

    p = path / AB_JSON if path.is_dir() else path
    data = load_json(p, "A/B record", MAX_AB_BYTES)
    try:
        return ABResult.model_validate(data)
    except ValidationError as e:
        raise invalid(e, str(p), "not an A/B record") from None


def find_ab(ref: Path, db: str | None) -> ABResult | None:
    """An A/B record: a directory holding ab.json, an ab.json, or an A/B id in the history; else None."""
    if (ref / AB_JSON).is_file() if ref.is_dir() else (ref.name == AB_JSON and ref.is_file()):
        return load_ab(ref)
    if ref.exists():
        return None
    try:
        from harness.analyze.history import HistoryStore

        with HistoryStore(db) as store:
            found = store.ab_json(str(ref))
    except HarnessInputError:
        return None
    if not found:
        return None
    from pydantic import ValidationError

    data = parse_json(str(found), db or "history database", "A/B record", field=f"A/B {ref}", strict=False)
    try:
        return ABResult.model_validate(data)
    except ValidationError as e:
        raise invalid(e, db or "history database", f"A/B {ref} is not an A/B record") from None
