"""The steps of `harness bisect` (harness/experiment/bisect.py): a recorded bisect resumed or started over,
then one A/B comparison per candidate against the good end until the answer is known, the record saved in the
history and beside the steps after each."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessInputError
from harness.core.escaping import json_of
from harness.core.input_files import invalid, parse_json
from harness.execute.run_record import now_iso
from harness.experiment.ab import INTERRUPTED
from harness.experiment.bisect import (
    BisectRecord,
    Candidate,
    Evidence,
    Step,
    conclusion,
    next_probe,
    safe_name,
)
from harness.records.run_files import write_whole

if TYPE_CHECKING:
    from harness.analyze.history import HistoryStore
    from harness.experiment.ab import ABResult
    from harness.plan.environments import EnvironmentSpec

BISECT_JSON = "bisect.json"


@dataclass(frozen=True)
class StepHooks:
    """What the steps take from the command line: the A/B comparison of a candidate against the good end
    (into the folder given), a step's reason from its evidence, the record as Markdown, and its output."""

    compare: Callable[[Candidate, Path], ABResult]
    describe: Callable[[Evidence], str]
    render_md: Callable[[BisectRecord], str]
    log: Callable[[str], None]
    marked: Callable[[Step], None]  # a step was measured


def resume_or_start(store: HistoryStore, key: str, restart: bool, retry_skipped: bool,
                    log: Callable[[str], None]) -> BisectRecord | None:
    """The recorded bisect of the same question, its skipped steps dropped with `retry_skipped`; None to start
    one (nothing recorded, or `restart`)."""
    text = store.bisect_json(key)
    if text is None:
        return None
    if restart:
        store.delete_bisect(key)
        log(f"bisect {key}: recorded steps forgotten (--restart)")
        return None
    from pydantic import ValidationError

    try:
        record = BisectRecord.model_validate(parse_json(str(text), "history database", "bisect record",
                                                        field=f"bisect {key}", strict=False))
    except ValidationError as e:
        raise invalid(e, "history database", f"bisect {key} is not a bisect record") from None
    state = "finished" if record.status != "running" else "interrupted"
    if retry_skipped and any(s.mark == "skip" for s in record.steps):
        dropped = [s.candidate for s in record.steps if s.mark == "skip"]
        record.steps = [s for s in record.steps if s.mark != "skip"]
        record.status, record.finished_at, record.first_bad, record.range = "running", None, None, []
        log(f"bisect {key}: measuring again the skipped {', '.join(dropped)}")
    log(f"bisect {key}: resuming the {state} bisect of {record.started_at} from its {len(record.steps)} "
        f"recorded steps ({record.out_dir}; --restart starts over)")
    return record


def prepare_good_end(good: Candidate, envs: dict[str, EnvironmentSpec], cache_dir: Path,
                     log: Callable[[str], None]) -> None:
    """The good end is every step's base: when its environment cannot be had, nothing can be bisected."""
    from harness.plan.environments import prepare_environments

    if good.side.env:
        prepare_environments([envs[good.side.env]], cache_dir, log=log)


def run_steps(record: BisectRecord, store: HistoryStore, hooks: StepHooks) -> bool:
    """Measure until the answer is known; save the record after each step. True when interrupted."""
    n = len(record.candidates)
    while (index := next_probe(n, record.measured(), record.check_ends)) is not None:
        record.status = "running"
        cand = record.candidates[index]
        lo_hi = ", ".join(f"{m}: {record.candidates[i].name}" for i, m in sorted(record.measured().items()))
        hooks.log(f"step {len(record.steps) + 1}: {cand.name} (candidate {index + 1} of {n})"
                  + (f"; so far {lo_hi}" if lo_hi else ""))
        step = _measure(record, index, hooks)
        if step is None:
            return True
        record.steps.append(step)
        hooks.marked(step)
        _save(record, store, hooks)
    status, indices = conclusion(n, record.measured())
    record.status = status
    record.first_bad = record.candidates[indices[0]].name if status == "found" else None
    record.range = [record.candidates[i].name for i in indices] if status == "range" else []
    record.finished_at = record.finished_at or now_iso()
    _save(record, store, hooks)
    return False


def _save(record: BisectRecord, store: HistoryStore, hooks: StepHooks) -> None:
    store.save_bisect(record)
    out = Path(record.out_dir)
    write_whole(out, BISECT_JSON, json_of(record, indent=1))
    write_whole(out, "bisect.md", hooks.render_md(record))


def _measure(record: BisectRecord, index: int, hooks: StepHooks) -> Step | None:
    """One step: the candidate against the good end; None when the user interrupted it."""
    cand = record.candidates[index]
    t0 = time.monotonic()
    step_dir = Path(record.out_dir) / f"step-{len(record.steps) + 1:02d}-{safe_name(cand.name, 40)}-{uuid.uuid4().hex[:4]}"

    def done(mark: str, reason: str, evidence: Evidence | None = None) -> Step:
        return Step(step=len(record.steps) + 1, index=index, candidate=cand.name, mark=mark, reason=reason,
                    evidence=evidence, minutes=(time.monotonic() - t0) / 60, finished_at=now_iso())

    try:
        result = hooks.compare(cand, step_dir)
    except HarnessInputError as e:  # an environment that cannot be installed
        return done("skip", e.line())
    except KeyboardInterrupt:
        return None
    if result.stop_reason == INTERRUPTED:
        return None
    ab_cell = result.cells[0]
    if ab_cell.error:
        return done("skip", f"the cell failed: {ab_cell.error}")
    m = next((m for m in ab_cell.metrics if m.metric == record.metric), None)
    if m is None:
        return done("skip", f"the cell did not measure {record.metric}")
    evidence = Evidence(ab_id=result.ab_id, ab_dir=str(step_dir), verdict=m.verdict, ratio=m.ratio, ci_low=m.ci_low,
                        ci_high=m.ci_high, good_median=m.base_median, candidate_median=m.candidate_median,
                        unit=m.unit, rounds=m.rounds)
    text = hooks.describe(evidence)
    if m.verdict == "regression":
        return done("bad", text, evidence)
    if m.verdict in ("unchanged", "improvement"):
        return done("good", text, evidence)
    return done("skip", f"inconclusive within the step's budget ({result.stop_reason}): {text}", evidence)
