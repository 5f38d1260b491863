"""A generated history database for the site benchmark and tests: runs of one suite on several hosts, every
cell with a summary per metric, recorded through `HistoryStore.record_run` as real runs are.

Noise, per run and series, as a shared lab machine shows it: a per-run machine factor shared by all the run's
cells (sd 4%), each series' own heavy-tailed noise (Student t with 4 degrees of freedom, sd 2–5%), and a slow
drift that comes back (an AR(1) of 0.9 with 0.5% steps: about 1% sd). Stack versions move every third of the runs. `SHIFTS` are the real changes, by
fraction of the runs, each a step that stays."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from harness.analyze.changes import default_metrics
from harness.analyze.history import HistoryStore
from harness.core.metrics import METRICS
from harness.core.schema import (
    CellResult,
    CellSpec,
    GenerationSpec,
    HostInfo,
    ModelRef,
    PromptSpec,
    RunMetadata,
    RunResults,
    ScenarioSpec,
    Summary,
)

MODELS = ("smollm2-135m", "qwen3-0.6b", "phi-4-mini", "llama-3.2-1b", "gemma-3-1b")
PRECISIONS = ("fp16", "int8", "int4")
DEVICES = ("CPU", "GPU")
KINDS = ("generate", "speculative", "continuous_batching", "prompt_lookup")
STACKS = (("2026.1.0", "2026.1.0"), ("2026.2.0", "2026.2.0"), ("2026.3.0", "2026.3.0"))


@dataclass(frozen=True)
class Shift:
    """A real step: from `at` (a fraction of the runs) on `host`'s runs, `metric` of the matching cells moves by
    `factor` (None host: every host; cells: indices into the generated cells, None: every cell of `precision`)."""

    at: float
    metric: str
    factor: float
    host: str | None
    cells: tuple[int, ...] | None = None
    precision: str | None = None


def shifts(metrics: list[str]) -> list[Shift]:
    """A stack upgrade that slows int4 decoding on one host, one cell's faster TTFT, one cell's memory growth on
    every host, and a recent throughput drop."""
    def pick(tag: str) -> str:
        return tag if tag in metrics else metrics[0]

    return [Shift(1 / 3, pick("tpot_ms"), 1.08, "lab-b", precision="int4"),
            Shift(0.70, pick("ttft_ms"), 0.88, "lab-a", cells=(7,)),
            Shift(0.82, pick("peak_rss_mb"), 1.15, None, cells=(20,)),
            Shift(0.95, pick("output_tps"), 0.94, "lab-a", cells=(33,))]


def _cells(n: int) -> list[CellSpec]:
    out = []
    for i in range(n):
        model, precision = MODELS[i // 12 % len(MODELS)], PRECISIONS[i % 3]
        device, kind = DEVICES[i // 3 % 2], KINDS[i // 6 % 2 + 2 * (i // 30 % 2)]
        key = f"{model}/{precision}/{device}/{kind}/in128-out64" + (f"/v{i // 60}" if i >= 60 else "")
        out.append(CellSpec(key=key, model=ModelRef(name=model, source=f"hf:{model}"), precision=precision,
                            device=device, scenario=ScenarioSpec(name=kind, kind="generate"),
                            generation=GenerationSpec(max_new_tokens=64), prompts=PromptSpec(input_tokens=128)))
    return out


def _base(tag: str, rng: np.random.Generator) -> float:
    unit = METRICS[tag].unit
    scale = {"ms": 40.0, "MB": 1500.0, "tokens/s": 80.0, "s": 2.0, "%": 60.0}.get(unit, 10.0)
    return float(scale * math.exp(rng.normal(0, 0.6)))


def _summary(median: float, rng: np.random.Generator) -> Summary:
    spread = abs(median) * 0.03
    half = 1.96 * spread / math.sqrt(12) * 1.25
    return Summary.model_construct(n=12, mean=median * 1.002, median=median, p90=median + 1.3 * spread,
                                   p99=median + 2.3 * spread, stdev=spread, min=median - 2 * spread,
                                   max=median + 3 * spread, cv=0.03, median_ci_low=median - half,
                                   median_ci_high=median + half)


def generate(url: str, runs: int = 1000, cells: int = 50, metrics: int = 20, hosts: tuple[str, ...] = ("lab-a", "lab-b"),
             suite: str = "nightly", seed: int = 0, first: int = 0, count: int | None = None) -> list[Shift]:
    """Record runs `first` … `first + count - 1` (default: all `runs`) of a history of `runs` runs (alternating
    over `hosts`, 12 hours apart) into the history at `url`; the shifts. A later call with the same seed and a
    higher `first` continues the same series."""
    rng = np.random.default_rng(seed)
    tags = [t for t in default_metrics() if METRICS[t].unit in ("ms", "MB", "tokens/s", "s")][:metrics]
    specs = _cells(cells)
    real = shifts(tags)
    base = {(h, c, t): _base(t, rng) for h in hosts for c in range(cells) for t in tags}
    own_sd = {k: float(rng.uniform(0.02, 0.05)) for k in base}
    drift = dict.fromkeys(base, 0.0)
    rng = np.random.default_rng([seed, first])  # the noise of these runs
    t0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
    with HistoryStore(url) as store:
        for r in range(first, first + (runs if count is None else count)):
            host = hosts[r % len(hosts)]
            stack = STACKS[min(r * len(STACKS) // max(runs, 1), len(STACKS) - 1)]
            machine = float(rng.normal(0, 0.04))
            results = []
            for c, spec in enumerate(specs):
                summaries = {}
                for t in tags:
                    k = (host, c, t)
                    drift[k] = 0.9 * drift[k] + float(rng.normal(0, 0.005))
                    noise = own_sd[k] * float(rng.standard_t(4)) / math.sqrt(2) + drift[k]
                    worse = 1 if not METRICS[t].higher_is_better else -1
                    value = base[k] * math.exp(noise + worse * machine * (METRICS[t].unit != "MB"))
                    for s in real:
                        if (r >= s.at * runs and s.metric == t and s.host in (None, host)
                                and (s.cells is None or c in s.cells)
                                and (s.precision is None or spec.precision == s.precision)):
                            value *= s.factor
                    summaries[t] = _summary(value, rng)
                results.append(CellResult.model_construct(key=spec.key, spec=spec, status="ok", summaries=summaries))
            started = (t0 + timedelta(hours=12 * r)).isoformat(timespec="seconds")
            meta = RunMetadata(run_id=f"{started[:10].replace('-', '')}-{r:05d}-{host}", suite_name=suite,
                               suite_file=None, suite_sha256=None, started_at=started, finished_at=started,
                               host=HostInfo(hostname=host, os="Linux", python="3.11", cpu_model="Xeon", cpu_flags=[],
                                             physical_cores=2, logical_cores=2, memory_total_mb=24576.0),
                               versions={"openvino-genai": stack[0], "openvino": stack[1]}, harness_commit=None,
                               devices=[])
            store.record_run(RunResults.model_construct(metadata=meta, cells=results), None)
    return real
