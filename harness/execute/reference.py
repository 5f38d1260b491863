"""The bare reference: what a user's own script would measure on the same model, prompts and settings.

Run as `python -m harness.execute.reference TASK_JSON`; prints one JSON line per generate() call. It builds the
pipeline with the cell's own properties and nothing else (no compile cache, no streamer, no second
load), calls generate() back to back and reads openvino-genai's PerfMetrics as llm_bench does.
`benchmarks/fidelity.py` and the suite's `fidelity` check compare the harness's readings with it,
interleaved in fresh processes.

Measuring code of the harness never runs here. With `preload_worker_modules` the process first imports
the modules a worker process imports (and nothing runs from them), so that what the process loaded
before openvino_genai is not one of the differences between the two sides: in one series on this
machine a bare loop that had imported them decoded 3.8% faster (6 of 6 interleaved rounds), in a later
one 2.8% slower (6 rounds), so the effect is not settled; `benchmarks/fidelity.py --minimal` shows the
loop without them beside it."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ReferenceTask:
    """One bare run: a pipeline, its prompts and how many calls. Crosses a process boundary as JSON."""

    model_dir: str
    device: str
    kind: str  # the cell's kind: its worker's modules are what `preload_worker_modules` imports
    prompts: list[str]
    warmup: int
    iterations: int
    generation: dict[str, Any]  # GenerationConfig field -> value, set on the model's own config
    properties: dict[str, Any] = field(default_factory=dict)  # pipeline properties
    draft_dir: str | None = None
    draft_properties: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)  # continuous batching: SchedulerConfig fields
    concurrency: int = 1  # continuous batching: requests per generate() call
    pipeline: Literal["llm", "continuous_batching"] = "llm"
    prompt_lookup: bool = False
    preload_worker_modules: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReferenceTask:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ReferenceCall:
    """One call (a whole batch for continuous batching), as openvino-genai's PerfMetrics and the caller's
    wall clock saw it."""

    iteration: int
    warmup: bool
    request: int
    ttft_ms: float
    tpot_ms: float
    e2e_ms: float
    output_tokens: int

    @property
    def output_tps(self) -> float:
        return self.output_tokens / (self.e2e_ms / 1000.0)


def _config(pipe: Any, task: ReferenceTask) -> Any:
    cfg = pipe.get_generation_config() if hasattr(pipe, "get_generation_config") else pipe.get_config()
    for name, value in task.generation.items():
        setattr(cfg, name, value)
    return cfg


def _llm_calls(task: ReferenceTask) -> list[ReferenceCall]:
    import openvino_genai as ov_genai

    kwargs = dict(task.properties)
    if task.draft_dir:
        kwargs["draft_model"] = ov_genai.draft_model(task.draft_dir, task.device, **task.draft_properties)
    if task.prompt_lookup:
        kwargs["prompt_lookup"] = True
    pipe = ov_genai.LLMPipeline(task.model_dir, task.device, **kwargs)
    cfg = _config(pipe, task)
    calls = []
    for i in range(task.warmup + task.iterations):
        t0 = time.perf_counter_ns()
        res = pipe.generate([task.prompts[i % len(task.prompts)]], cfg)
        e2e = (time.perf_counter_ns() - t0) / 1e6
        pm = res.perf_metrics
        calls.append(ReferenceCall(i, i < task.warmup, 0, pm.get_ttft().mean, pm.get_tpot().mean, e2e,
                                   int(pm.get_num_generated_tokens())))
    return calls


def _cb_calls(task: ReferenceTask) -> list[ReferenceCall]:
    import openvino_genai as ov_genai

    sc = ov_genai.SchedulerConfig()
    for name, value in task.scheduler.items():
        setattr(sc, name, value)
    pipe = ov_genai.ContinuousBatchingPipeline(task.model_dir, sc, task.device, task.properties)
    cfg = _config(pipe, task)
    n = task.concurrency
    calls = []
    for i in range(task.warmup + task.iterations):
        prompts = [task.prompts[(i * n + r) % len(task.prompts)] for r in range(n)]
        t0 = time.perf_counter_ns()
        results = pipe.generate(prompts, [cfg] * n)
        e2e = (time.perf_counter_ns() - t0) / 1e6
        # generate() gives every request the batch's PerfMetrics (tokens of all requests): one call per batch.
        pm = results[0].perf_metrics
        calls.append(ReferenceCall(i, i < task.warmup, 0, pm.get_ttft().mean, pm.get_tpot().mean, e2e,
                                   int(pm.get_num_generated_tokens())))
    return calls


def run(task: ReferenceTask) -> list[ReferenceCall]:
    return _cb_calls(task) if task.pipeline == "continuous_batching" else _llm_calls(task)


def _preload_worker_modules(kind: str) -> None:
    """Import what `python -m harness.execute.worker` imports before it builds a pipeline; run none of it."""
    import harness.execute.worker  # noqa: F401
    import harness.models.prepare  # noqa: F401
    from harness.kinds import kind_spec

    kind_spec(kind).named_backend()


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        task = ReferenceTask.from_json(f.read())
    if task.preload_worker_modules:
        _preload_worker_modules(task.kind)
    for call in run(task):
        print(json.dumps(asdict(call)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
