"""Fidelity: the harness's readings against the bare reference loop (harness/execute/reference.py) on the same
IR, prompts and settings, each in a fresh process, so a slowdown the harness itself causes shows as a
ratio above 1 (below 1 for tok/s).

The harness side is the cell's own metric values; the reference side is openvino-genai's PerfMetrics
(TTFT, TPOT, as llm_bench reads them) and the caller's wall clock (tok/s = tokens / generate() time).
Each worker process is paired with one reference process run right after it (before it, for odd
processes), and a pair's ratio is the ratio of their medians."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.child_process import die_with_parent
from harness.core.metrics import METRICS
from harness.core.schema import BatchRecord, CellSpec, ReferenceRecord, Sample
from harness.core.stats import bootstrap_ratio_ci, geomean_ratio_ci
from harness.execute.backends.driver import pipeline_properties
from harness.execute.backends.genai_cb import scheduler_fields
from harness.execute.backends.genai_common import generation_fields, prompt_texts
from harness.execute.backends.genai_llm import draft_properties
from harness.execute.reference import ReferenceCall, ReferenceTask
from harness.kinds.continuous_batching import ContinuousBatchingParams
from harness.kinds.serving import ServingParams

# Scenario kinds the reference loop can run (serving: a local server's chat or completions load at
# concurrency 1, against a bare ContinuousBatchingPipeline loop on the same IR and prompts).
REFERENCE_KINDS = ("generate", "speculative", "prompt_lookup", "continuous_batching", "serving")

@dataclass(frozen=True)
class Comparison:
    """One reading compared: the harness's metric, the reference's field, the cell values they give."""

    metric: str
    field: str
    reference_tag: str
    ratio_tag: str
    judged: bool  # the check judges decoding speed; TTFT is reported beside it


TPOT = Comparison("tpot_ms", "tpot_ms", "reference_tpot_ms", "fidelity_tpot_ratio", True)
TTFT = Comparison("ttft_ms", "ttft_ms", "reference_ttft_ms", "fidelity_ttft_ratio", False)
TPS = Comparison("output_tps", "output_tps", "reference_output_tps", "fidelity_tps_ratio", True)
# Continuous batching: the bare loop's generate() gives one PerfMetrics for the whole batch (its TPOT is
# the step gap / batch size), so whole-batch tok/s is compared, and TTFT/TPOT only at concurrency 1.
BATCH_TPS = Comparison("batch_output_tps", "output_tps", "reference_output_tps", "fidelity_tps_ratio", True)


def comparisons(cell: CellSpec) -> list[Comparison]:
    if cell.scenario.kind != "continuous_batching":
        return [TPOT, TTFT, TPS]
    return [TPOT, TTFT, BATCH_TPS] if ContinuousBatchingParams.of(cell).concurrency == 1 else [BATCH_TPS]


class ReferenceError(RuntimeError):
    """The reference process failed; its message is one line."""


def unsupported(cell: CellSpec) -> str | None:
    """Why the bare reference cannot run this cell, or None."""
    if cell.scenario.kind not in REFERENCE_KINDS:
        return f"no bare reference for scenario kind {cell.scenario.kind!r} (supported: {', '.join(REFERENCE_KINDS)})"
    if cell.scenario.kind == "serving":
        p = ServingParams.of(cell)
        if (cell.server or "local") != "local":
            return f"a remote server ({cell.server}) has no local IR for the bare loop"
        if p.api not in ("chat", "completions"):
            return f"no bare reference for the {p.api} API (chat and completions only)"
        if p.concurrency != 1 or p.rate is not None or p.duration_s is not None or p.range_ratio:
            return "the serving reference is a one-request-at-a-time loop: concurrency 1, a request count, fixed lengths"
    return None


def _serving_task_fields(cell: CellSpec) -> dict[str, Any]:
    """What a local server does with each request (see harness/serve/server.py): a ContinuousBatchingPipeline
    with the default SchedulerConfig and the cell's properties, the model's own config with max_new_tokens,
    ignore_eos and greedy decoding; the chat API applies the chat template."""
    p = ServingParams.of(cell)
    g = cell.generation
    return {"kind": "continuous_batching", "iterations": p.requests,
            "properties": dict(cell.properties), "scheduler": {},
            "generation": {"max_new_tokens": g.max_new_tokens, "ignore_eos": g.ignore_eos, "do_sample": False,
                           "apply_chat_template": p.api == "chat"}}


def _task_fields(cell: CellSpec) -> dict[str, Any]:
    """Kind, pipeline and generation settings of the bare loop, from the same functions the worker uses."""
    if cell.scenario.kind == "serving":
        return _serving_task_fields(cell)
    fields: dict[str, Any] = {"kind": cell.scenario.kind, "iterations": cell.iterations,
                              "generation": generation_fields(cell), "properties": dict(cell.properties)}
    if cell.scenario.kind == "speculative":
        fields["draft_properties"] = draft_properties(cell)
    elif cell.scenario.kind == "continuous_batching":
        fields.update(properties=pipeline_properties(cell), scheduler=scheduler_fields(cell),
                      concurrency=ContinuousBatchingParams.of(cell).concurrency)
    return fields


def cell_prompts(cell: CellSpec, model_dir: Path, iterations: int) -> list[str]:
    """The prompts the cell's worker uses (for serving: the same prompt set), in the order it uses them."""
    per_iteration = int(cell.scenario.params.get("concurrency", 1))  # serving and continuous batching
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


def _reference_values(records: list[ReferenceRecord], c: Comparison) -> list[float]:
    return [getattr(r, c.field) for r in records if not r.warmup]


def _harness_values(samples: list[Sample], batches: list[BatchRecord], c: Comparison) -> list[float]:
    records = batches if METRICS[c.metric].scope == "batch" else samples
    return [v for s in records if not s.warmup for v in s.values.get(c.metric, [])]


def pair_ratios(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                reference: list[ReferenceRecord]) -> dict[Comparison, list[float]]:
    """harness / reference per worker process (one pair each): the ratio of their medians."""
    out: dict[Comparison, list[float]] = {c: [] for c in comparisons(cell)}
    for p in sorted({r.process for r in reference}):
        ref = [x for x in reference if x.process == p]
        for c in out:
            h = _harness_values([s for s in samples if s.process == p], [b for b in batches if b.process == p], c)
            r = _reference_values(ref, c)
            if h and r and statistics.median(r) > 0:
                out[c].append(statistics.median(h) / statistics.median(r))
    return out


def fidelity_values(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                    reference: list[ReferenceRecord]) -> dict[str, float]:
    """Cell values: the reference medians (its processes pooled) and the geometric mean pair ratios."""
    out = {}
    for c, ratios in pair_ratios(cell, samples, batches, reference).items():
        r = _reference_values(reference, c)
        if r:
            out[c.reference_tag] = statistics.median(r)
        if ratios:
            out[c.ratio_tag] = math.exp(statistics.mean(math.log(x) for x in ratios))
    return out


def ratio_interval(cell: CellSpec, samples: list[Sample], batches: list[BatchRecord],
                   reference: list[ReferenceRecord], c: Comparison) -> tuple[float, float, float] | None:
    """harness / reference for one comparison with its 95% interval: over the pairs when there are three or
    more (geometric mean, t-interval on log ratios), else over the iterations of all pairs pooled (ratio
    of medians, bootstrap; a t-interval from two pairs has one degree of freedom and says nothing).
    None when either side has no value."""
    ratios = pair_ratios(cell, samples, batches, reference)[c]
    if len(ratios) >= 3:
        return geomean_ratio_ci(ratios)
    h = np.asarray(_harness_values(samples, batches, c), dtype=float)
    r = np.asarray(_reference_values(reference, c), dtype=float)
    if h.size == 0 or r.size == 0 or not np.all(r > 0):
        return None
    lo, hi = bootstrap_ratio_ci(r, h, 2000, np.random.default_rng(0))
    return float(np.median(h) / np.median(r)), lo, hi
