"""The bare reference loop for a cell (harness/execute/reference.py): its task built from the cell with the
kind's own backend settings (KindSpec.bare_reference), run in a fresh interpreter beside each worker process;
harness/analyze/fidelity.py compares the two sides."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.child_process import die_with_parent
from harness.core.schema import CellSpec, ReferenceRecord
from harness.execute.backends.genai_common import prompt_texts
from harness.execute.reference import ReferenceCall, ReferenceTask
from harness.kinds import KINDS, kind_spec
from harness.kinds.base import Unsupported


class ReferenceError(RuntimeError):
    """The reference process failed; its message is one line."""


def unsupported(cell: CellSpec) -> str | None:
    """Why the bare reference cannot run this cell, or None."""
    try:
        _task_fields(cell)
    except Unsupported as e:
        return str(e)
    return None


def _task_fields(cell: CellSpec) -> dict[str, Any]:
    """The bare loop's pipeline and generation settings, from the kind's own backend (its `bare_reference`)."""
    spec = kind_spec(cell.scenario.kind)
    if spec.bare_reference is None:
        supported = ", ".join(k.name for k in KINDS.values() if k.bare_reference)
        raise Unsupported(f"no bare reference for scenario kind {spec.name!r} (supported: {supported})")
    return {"kind": spec.name, **spec.bare_reference_fields(cell)}


def cell_prompts(cell: CellSpec, model_dir: Path, iterations: int) -> list[str]:
    """The prompts the cell's worker uses (for serving: the same prompt set), in the order it uses them."""
    per_iteration = kind_spec(cell.scenario.kind).params.of(cell).requests_per_call()
    total = cell.warmup + iterations
    count = per_iteration * (total if cell.prompts.vary_per_iteration else 1)
    tok = None
    if cell.prompts.source != "file":
        import openvino_genai as ov_genai

        tok = ov_genai.Tokenizer(str(model_dir))
    return prompt_texts(cell, tok, count)


def reference_task(cell: CellSpec, model_dir: Path, draft_dir: Path | None, preload: bool = True) -> ReferenceTask:
    """The bare loop for `cell`: its IR, prompts, generation settings and properties, nothing else
    (`preload`: see harness/execute/reference.py)."""
    reason = unsupported(cell)
    if reason:
        raise ValueError(reason)
    fields = _task_fields(cell)
    return ReferenceTask(
        model_dir=str(model_dir), device=cell.device, prompts=cell_prompts(cell, model_dir, fields["iterations"]),
        warmup=cell.warmup, draft_dir=str(draft_dir) if draft_dir else None, preload_worker_modules=preload, **fields,
    )


def run_reference(task: ReferenceTask, workdir: Path, timeout_s: float, process: int = 0,
                  python: str | None = None, env: dict[str, str] | None = None) -> list[ReferenceRecord]:
    """Run the bare loop in a fresh interpreter (the cell environment's, when given) and read its calls."""
    workdir.mkdir(parents=True, exist_ok=True)
    task_path = workdir / f"reference-task-{process}.json"
    task_path.write_text(task.to_json(), encoding="utf-8")
    try:
        proc = subprocess.run([python or sys.executable, "-m", "harness.execute.reference", str(task_path)],
                              capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                              preexec_fn=die_with_parent, env=env)
    except subprocess.TimeoutExpired:
        raise ReferenceError(f"the reference loop exceeded {timeout_s:g} s") from None
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        raise ReferenceError(f"the reference loop exited with code {proc.returncode}: {tail[:400]}")
    calls = [ReferenceCall(**json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [ReferenceRecord(process=process, **asdict(c)) for c in calls]
