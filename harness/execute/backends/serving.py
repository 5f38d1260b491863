"""Serving: load against an OpenAI-compatible endpoint (OVMS paths), measured on the client.

The target is the suite's `server`: `local` starts `harness serve` on loopback for the cell's model and stops
it afterwards; a URL targets a running server (OVMS or any OpenAI-compatible one), see serving_server.py. The
cell goes through the driver's load lifecycle (driver.measure_loads); its session here runs one load when
asked. Every measured request is a Sample (TTFT = first content chunk, TPOT from the server's usage token
count); the whole load is one BatchRecord (total output tok/s, requests/s); errors, the busiest second, the
client's own CPU share and the server's Prometheus counters (deltas) are per-cell values."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.core.backend import CellModels
from harness.core.metrics import (
    CancelledRequests,
    CancelledServerTokens,
    ClientCPU,
    ConnectionReused,
    ErrorRate,
    PeakOutputThroughput,
    sample_values,
)
from harness.core.schema import (
    BatchRecord,
    CellSpec,
    CheckOutputs,
    LoadTimeline,
    Sample,
    ServerInfo,
    ServingErrors,
)
from harness.execute.backends.driver import Load, LoadBackend
from harness.execute.backends.serving_requests import (
    MAX_DISTINCT_PROMPTS,
    PromptPlan,
    Requests,
    Schedule,
    schedule,
    texts_per_request,
)
from harness.execute.backends.serving_server import Endpoint, reach_server
from harness.kinds.base import Unsupported
from harness.kinds.serving import ServingParams
from harness.load.client import RequestInput, RequestOutput, error_counts
from harness.load.exports import write_exports
from harness.load.generator import LoadResult, LoadSpec, run_load
from harness.load.scrape import Scraper, metrics_url, read_once
from harness.load.server_info import describe_server, prompt_token_counter
from harness.load.slo_search import SearchPolicy


def busiest_second_tps(outputs: list[RequestOutput], start_ns: int) -> float | None:
    """Most output tokens delivered in any one-second window (tokens spread evenly over a request's chunks)."""
    import numpy as np

    times, weights = [], []
    for o in outputs:
        if o.ok and o.chunk_offsets_ms and o.completion_tokens:
            share = o.completion_tokens / len(o.chunk_offsets_ms)
            times += [(o.start_ns - start_ns) / 1e9 + t / 1000 for t in o.chunk_offsets_ms]
            weights += [share] * len(o.chunk_offsets_ms)
    if not times:
        return None
    t = np.asarray(times)
    w = np.asarray(weights)
    order = np.argsort(t)
    t, w = t[order], np.cumsum(w[order])
    ends = np.searchsorted(t, t + 1.0, side="left") - 1
    before = np.concatenate([[0.0], w[:-1]])
    return float(np.max(w[ends] - before))


def request_lengths(input_tokens: int | None, output_tokens: int, range_ratio: float, count: int,
                    seed: int = 0) -> tuple[list[int] | None, list[int]]:
    """Input and output token counts of `count` distinct requests: the nominal lengths, or with
    `range_ratio` r > 0 drawn uniformly from [L·(1−r), L·(1+r)] (vLLM's --random-range-ratio), seeded."""
    if range_ratio <= 0:
        return None, [output_tokens] * count
    import numpy as np

    rng = np.random.default_rng(seed)

    def draw(nominal: int) -> list[int]:
        lo, hi = max(1, round(nominal * (1 - range_ratio))), max(1, round(nominal * (1 + range_ratio)))
        return [int(x) for x in rng.integers(lo, hi + 1, size=count)]

    return (draw(input_tokens) if input_tokens else None), draw(output_tokens)


def meets_slo(sample: Sample, slo: dict[str, float]) -> bool:
    """Whether one request met every per-request limit (a metric the request has no value for, such as
    TPOT of a one-token answer, does not count against it)."""
    values = sample_values(sample)
    return all(v <= limit for tag, limit in slo.items() for v in values.get(tag, []))


def _load_record(result: LoadResult, iteration: int, samples: list[Sample], slo: dict[str, float],
                 generates: bool) -> BatchRecord:
    """The whole load as one record; token totals only where every completed request reported them (rerank
    servers report no usage)."""
    ok = [o for o in result.measured if o.ok]
    return BatchRecord(iteration=iteration, warmup=False, requests=len(ok), start_ns=result.start_ns,
                       end_ns=result.end_ns,
                       output_tokens=sum(o.completion_tokens or 0 for o in ok) if generates else None,
                       input_tokens=sum(o.prompt_tokens for o in ok)
                       if ok and all(o.prompt_tokens is not None for o in ok) else None, steps=0,
                       good_requests=sum(meets_slo(x, slo) for x in samples) if slo else None)


def _sample(o: RequestOutput, prompt_index: int, iteration: int) -> Sample:
    return Sample(iteration=iteration, warmup=False, request=o.index, prompt_index=prompt_index,
                  input_tokens=o.prompt_tokens or 0, output_tokens=o.completion_tokens or 0, start_ns=o.start_ns,
                  end_ns=o.end_ns, chunk_offsets_ms=o.chunk_offsets_ms, chunk_tokens=[], output_text=o.text,
                  readings=dict(o.http), scheduled_ns=o.scheduled_ns)


def prompt_plan(cell: CellSpec, p: ServingParams, given: Schedule, spec: LoadSpec) -> PromptPlan:
    """Distinct prompts are made up front, so a long or duration-bound load cycles through a bounded set; a
    trace gives every request its own prompt of the trace's lengths (warm-up ones from its end)."""
    if given.replay:
        return PromptPlan(1, None, [0])  # the bodies are recorded: no prompt is made
    if given.trace:
        shown = given.trace + [given.trace[k % len(given.trace)] for k in reversed(range(spec.warmup))]
        # warm-up texts take no blocks: they would fill the server's prefix cache ahead of the trace
        return PromptPlan(len(shown), [r.input_tokens for r in shown], [r.output_tokens for r in shown],
                          [r.blocks for r in given.trace] + [()] * spec.warmup)
    per_request, sent = p.texts_per_call(), texts_per_request(p)
    loads = p.search_probes if p.slo_search else 1  # a search's loads get prompts of their own (no cache hits)
    count = min((spec.requests * loads + spec.warmup) * per_request + sent - per_request, MAX_DISTINCT_PROMPTS)
    count = max(count, sent)
    in_lens, out_lens = request_lengths(cell.prompts.input_tokens, cell.generation.max_new_tokens,
                                        p.range_ratio, count)
    return PromptPlan(count, in_lens, out_lens)


def bare_reference_fields(cell: CellSpec) -> dict[str, Any]:
    """What a local server does with each request (see harness/serve/server.py): a ContinuousBatchingPipeline
    with the default SchedulerConfig and the cell's properties, the model's own config with max_new_tokens,
    ignore_eos and greedy decoding; the chat API applies the chat template. One request at a time only."""
    p = ServingParams.of(cell)
    if cell.remote:
        raise Unsupported(f"a remote server ({cell.server}) has no local IR for the bare loop")
    if p.api not in ("chat", "completions"):
        raise Unsupported(f"no bare reference for the {p.api} API (chat and completions only)")
    if p.concurrency != 1 or p.rate is not None or p.duration_s is not None or p.range_ratio:
        raise Unsupported("the serving reference is a one-request-at-a-time loop: concurrency 1, a request count, "
                          "fixed lengths")
    g = cell.generation
    return {"pipeline": "continuous_batching", "iterations": p.requests, "properties": dict(cell.properties),
            "scheduler": {}, "generation": {"max_new_tokens": g.max_new_tokens, "ignore_eos": g.ignore_eos,
                                            "do_sample": False, "apply_chat_template": p.api == "chat"}}


class ServingSession:
    """A serving cell's loads against its server: the requests are made once the server has said what it
    serves; its counters are read before the first load and after the last, and every `metrics_interval_s`
    in between."""

    def __init__(self, server: Endpoint, cell: CellSpec, models: CellModels,
                 said: Callable[[ServerInfo], None]) -> None:
        p = ServingParams.of(cell)
        self.cell, self.p, self.models, self.server = cell, p, models, server
        given = schedule(p, set(cell.scenario.params))
        self.spec = LoadSpec(concurrency=p.concurrency, rate=p.rate, burstiness=p.burstiness,
                             requests=len(given.arrivals) if given.arrivals is not None else p.requests,
                             duration_s=p.duration_s,
                             warmup=len(given.replay_warmup) if given.replay else cell.warmup,
                             timeout_s=p.request_timeout_s, rate_end=p.rate_end, arrivals=given.arrivals)
        self.requests = self.spec.requests
        self.search = SearchPolicy(start_rps=float(p.rate or 1.0), target_pct=p.slo_attainment_pct,
                                   precision=p.search_precision, max_probes=p.search_probes) if p.slo_search else None
        self.inputs = Requests(cell, p, given, prompt_plan(cell, p, given, self.spec), self.spec)
        info = describe_server(server.base_url, cell.model.name if cell.remote else models.target.name,
                               p.served_model, server.headers, p.request_timeout_s, p.tokenizer_source(cell.remote))
        said(info)  # said again once the prompt lengths' source is settled: making them may fail
        self.model = info.served_model
        counted_by = self.inputs.make_texts(models, prompt_token_counter(server.base_url, p.api, self.model,
                                                                         server.headers, p.request_timeout_s))
        said(info if counted_by is None else info.model_copy(update={"tokenizer": counted_by}))
        self.before = read_once(metrics_url(server.base_url))
        self.scraper = (Scraper(metrics_url(server.base_url), p.metrics_interval_s).start()
                        if p.metrics_interval_s else None)
        self.warmups: list[RequestOutput] = []
        self.measured: list[RequestOutput] = []  # every load's requests (an SLO search runs several)

    def load(self, index: int, rate: float | None, warmup: bool, report: Callable[[Sample], None]) -> Load:
        spec = replace(self.spec, rate=self.spec.rate if rate is None else rate,
                       warmup=self.spec.warmup if warmup else 0)
        samples: list[Sample] = []

        def ended(o: RequestOutput) -> None:
            self.inputs.maker.record(o)  # the conversation's next turn carries this answer
            if o.ok:
                # a search's loads are its iterations; a single load's requests are
                sample = _sample(o, o.index, index if self.search is not None else o.index)
                sample.readings.update(self.inputs.readings(o.index))
                samples.append(sample)
                report(sample)

        maker = self.inputs.maker

        def shifted(i: int) -> RequestInput:  # measured requests of load k follow those of the loads before it
            return maker(i + index * spec.requests if i >= 0 else i)

        # the request maker itself for the first load: the closed loop reads its conversations' `turns`
        result = asyncio.run(run_load(self.server.base_url, self.model, shifted if index else maker, spec,
                                      self.server.headers, on_result=ended))
        self.warmups.extend(result.warmup)
        self.measured.extend(result.measured)
        return Load(result, _load_record(result, index, samples, self.cell.slo,
                                         self.p.api in ("chat", "completions")))

    def finish(self, chosen: Load) -> tuple[dict[str, float], CheckOutputs]:
        timeline = self.scraper.stop() if self.scraper else LoadTimeline(interval_s=0)
        after = read_once(metrics_url(self.server.base_url))
        if self.p.export_requests:
            write_exports(self.models.workdir, self.p.api, self.warmups, self.measured, chosen.result.start_ns)
        deltas = {k: after[k] - self.before.get(k, 0.0) for k in after if after[k] != self.before.get(k, 0.0)}
        return load_outcome(chosen.result, self.warmups + self.measured, deltas, timeline)


BACKEND = LoadBackend(build=reach_server, start=ServingSession)


def load_outcome(result: LoadResult, every_output: list[RequestOutput], deltas: dict[str, float],
                 timeline: LoadTimeline) -> tuple[dict[str, float], CheckOutputs]:
    """The cell's figures from its (chosen) load: errors, cancellations, connection reuse, client CPU, the
    busiest second, and the server's counter deltas and time series."""
    values: dict[str, float] = {}
    ok = [o for o in result.measured if o.ok]
    cancelled = [o for o in result.measured if o.cancelled]
    failed = [o for o in result.measured if o.error_kind is not None]  # cancelled ones are no failures
    errors = error_counts(result.measured)
    wall = (result.end_ns - result.start_ns) / 1e9
    # cancelled requests are neither errors nor completions: the rate is over the others
    values[ErrorRate.tag] = 100.0 * len(failed) / max(1, len(result.measured) - len(cancelled))
    reused = [o.http["connection_reused"] for o in result.measured if "connection_reused" in o.http]
    if reused:
        values[ConnectionReused.tag] = 100.0 * sum(reused) / len(reused)
    values[ClientCPU.tag] = 100.0 * result.client_cpu_s / wall if wall > 0 else 0.0
    peak = busiest_second_tps(ok, result.start_ns)
    if peak is not None:
        values[PeakOutputThroughput.tag] = peak
    if cancelled:
        values[CancelledRequests.tag] = float(len(cancelled))
        server_tokens = cancelled_server_tokens(deltas, every_output, len(cancelled), errors)
        if server_tokens is not None:
            values[CancelledServerTokens.tag] = server_tokens
    first_errors = [f"request {o.index}: {o.error_kind}: {o.error}" for o in failed[:5]]
    return values, CheckOutputs(serving_errors=ServingErrors(counts=errors, first=first_errors,
                                                             cancelled=len(cancelled)),
                                server_metrics_delta=deltas,
                                load_timeline=timeline.model_copy(update={
                                    "failed_start_ns": [o.start_ns for o in failed],
                                    "failed_end_ns": [o.end_ns for o in failed]}))


GENERATED_COUNTER = "harness_generated_tokens_total"


def cancelled_server_tokens(deltas: dict[str, float], outputs: list[RequestOutput], cancelled: int,
                            errors: dict[str, int]) -> float | None:
    """Tokens the server generated per cancelled request: its generated-token counter's rise over the load
    (warm-up included) minus the tokens of the requests that completed, over the cancelled requests. None
    when the server has no such counter (OVMS) or failed requests would blur it."""
    counted = [v for k, v in deltas.items() if k.startswith(GENERATED_COUNTER)]
    if not counted or errors or not cancelled:
        return None
    completed = sum(o.completion_tokens or 0 for o in outputs if o.ok)
    return (sum(counted) - completed) / cancelled
