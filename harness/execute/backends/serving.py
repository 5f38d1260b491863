"""Serving: load against an OpenAI-compatible endpoint (OVMS paths), measured on the client.

The target is the suite's `server`: `local` starts `harness serve` on loopback for the cell's model
and stops it afterwards; a URL targets a running server (OVMS or any OpenAI-compatible one), with the
API key read from the environment variable the suite names (never written anywhere). Every measured
request is a Sample (TTFT = first content chunk, TPOT from the server's usage token count); the whole
load is one BatchRecord (total output tok/s, requests/s); errors, the busiest second, the client's
own CPU share and the server's Prometheus counters (deltas) are per-cell values."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.core.child_process import die_with_parent
from harness.core.errors import ModelPreparationError, ServerError
from harness.core.events import BatchEvent, Done, Loaded, SampleEvent, ServerReport, SloSearchReport
from harness.core.host import free_loopback_port
from harness.core.metrics import sample_values
from harness.core.schema import (
    BatchRecord,
    CellSpec,
    CheckOutputs,
    LoadTimeline,
    Sample,
    ServingErrors,
    SloProbe,
)
from harness.execute.backends import CellModels, Emit
from harness.kinds.base import Unsupported
from harness.kinds.serving import ServingParams
from harness.load.client import RequestInput, RequestOutput
from harness.load.content import PREFIX_INDEX_BASE, BlockPrompts, RequestMaker, image_sets
from harness.load.exports import RecordedPayload, read_payloads, write_exports
from harness.load.generator import LoadResult, LoadSpec, run_load
from harness.load.prompt_tokenizer import (
    MODEL,
    calibrate,
    exact_prompt,
    load_prompt_tokenizer,
    usage_prompt,
)
from harness.load.scrape import Scraper, metrics_url, read_once
from harness.load.server_info import describe_server, prompt_token_counter
from harness.load.slo_search import SearchPolicy, next_rate, outcome, probe
from harness.load.traces import BLOCK_TOKENS, TraceRequest, read_trace


def start_local_server(model_dir: Path, device: str, properties: dict[str, Any], log_path: Path,
                       embedding_dir: Path | None = None, timeout_s: float = 180,
                       scheduler: dict[str, Any] | None = None) -> tuple[subprocess.Popen, str]:
    """`harness serve` in a child process on a free loopback port; returns it and its /v3 base URL.
    `scheduler` holds SchedulerConfig fields of its pipeline."""
    import httpx

    port = free_loopback_port()
    cmd = [sys.executable, "-m", "harness", "serve", str(model_dir), "--port", str(port), "--device", device,
           "--properties", json.dumps(properties)]
    if embedding_dir is not None:
        cmd += ["--embeddings", str(embedding_dir)]
    if scheduler:
        cmd += ["--scheduler", json.dumps(scheduler)]
    log = open(log_path, "w")  # noqa: SIM115 - handed to the child, closed by the OS with it
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"harness serve exited with {proc.returncode}: "
                              f"{log_path.read_text(errors='replace')[-400:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v3"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise ServerError(f"harness serve did not become ready in {timeout_s:g} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


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


def _slo_search(p: ServingParams, slo: dict[str, float], spec: LoadSpec,
                load: Callable[[LoadSpec, int], tuple[LoadResult, BatchRecord]], emit: Emit) -> LoadResult:
    """Loads at the rates the bisection picks (harness/load/slo_search.py); warm-up before the first only.
    Returns the load at the highest passing rate (else the last one) for the cell's error and CPU figures."""
    policy = SearchPolicy(start_rps=float(p.rate or 1.0), target_pct=p.slo_attainment_pct,
                          precision=p.search_precision, max_probes=p.search_probes)
    probes: list[SloProbe] = []
    results: list[LoadResult] = []
    while (rate := next_rate(policy, probes)) is not None:
        result, record = load(replace(spec, rate=rate, warmup=spec.warmup if not probes else 0), len(probes))
        probes.append(probe(rate, len(result.measured), record.good_requests or 0, policy.target_pct))
        results.append(result)
        if result.interrupted:
            break
    search = outcome(policy, slo, probes)
    emit(SloSearchReport(search=search))
    return results[search.chosen_probe if search.chosen_probe is not None else -1]


def _sample(o: RequestOutput, prompt_index: int, iteration: int) -> Sample:
    return Sample(iteration=iteration, warmup=False, request=o.index, prompt_index=prompt_index,
                  input_tokens=o.prompt_tokens or 0, output_tokens=o.completion_tokens or 0, start_ns=o.start_ns,
                  end_ns=o.end_ns, chunk_offsets_ms=o.chunk_offsets_ms, chunk_tokens=[], output_text=o.text,
                  readings=dict(o.http), scheduled_ns=o.scheduled_ns)


def cancelled_indices(fraction: float, seed: int, count: int) -> set[int]:
    """Which measured requests (0..count-1) the client cancels: each with probability `fraction`, seeded."""
    if fraction <= 0:
        return set()
    import numpy as np

    draws = np.random.default_rng([seed, 16]).random(count)
    return {i for i in range(count) if draws[i] < fraction}


@dataclass(frozen=True)
class Schedule:
    """A trace or replay cell's given send times and what each request is (empty lists otherwise)."""

    arrivals: tuple[float, ...] | None
    trace: list[TraceRequest]
    replay: list[RecordedPayload]  # the measured bodies
    replay_warmup: list[RecordedPayload]


def schedule(p: ServingParams, given: set[str]) -> Schedule:
    """The cell's trace or recorded payloads, as many as `requests` when the suite gave it (else all), at
    their times × trace_time_scale, the first at 0."""
    trace: list[TraceRequest] = read_trace(p.trace, p.trace_format).requests if p.trace else []
    recorded = read_payloads(p.replay_payloads) if p.replay_payloads else []
    replay = sorted((r for r in recorded if not r.warmup), key=lambda r: r.t_s)  # sent in time order
    times = [r.t_s for r in trace] or [r.t_s - replay[0].t_s for r in replay]
    if not times:
        return Schedule(None, [], [], [])
    n = min(len(times), p.requests) if "requests" in given else len(times)
    return Schedule(tuple(t * p.trace_time_scale for t in times[:n]), trace[:n], replay[:n],
                    [r for r in recorded if r.warmup])


MAX_DISTINCT_PROMPTS = 512


def prompt_maker(cell: CellSpec, p: ServingParams, models: CellModels,
                 count_tokens: Callable[[str], int | None]) -> tuple[Callable[[int, int], str], str]:
    """((index, tokens) -> synthetic text of that many tokens, where the counts come from): exact under the
    tokenizer the scenario names, or calibrated on the server's usage counts when it names none."""
    style = cell.prompts.style
    source = p.tokenizer_source(cell.remote)
    tok = load_prompt_tokenizer(source, models.target if source == MODEL else None)
    if tok is not None:
        return (lambda i, n: exact_prompt(i, n, tok, style)), source
    calibration = calibrate(count_tokens, style)
    said = source if calibration else f"{source}: none reported, lengths nominal (a token a word, 4 a code line)"
    return (lambda i, n: usage_prompt(i, n, calibration, style)), said


@dataclass(frozen=True)
class PromptPlan:
    """The cell's distinct texts: how many, and each one's input length (None: the suite's prompt file or
    recorded bodies) and the output length asked for with it."""

    count: int
    in_lens: list[int] | None
    out_lens: list[int]
    blocks: list[tuple[int, ...]] = field(default_factory=list)  # a trace's hash blocks per text (or none)


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
    per_request = p.texts_per_call()
    texts_per_request = per_request + (p.api == "rerank")
    loads = p.search_probes if p.slo_search else 1  # a search's loads get prompts of their own (no cache hits)
    count = min((spec.requests * loads + spec.warmup) * per_request + texts_per_request - per_request,
                MAX_DISTINCT_PROMPTS)
    count = max(count, texts_per_request)
    in_lens, out_lens = request_lengths(cell.prompts.input_tokens, cell.generation.max_new_tokens,
                                        p.range_ratio, count)
    return PromptPlan(count, in_lens, out_lens)


def auth_headers(p: ServingParams) -> dict[str, str] | None:
    """The bearer token from the environment variable the suite names (never written anywhere)."""
    if not p.api_key_env:
        return None
    key = os.environ.get(str(p.api_key_env))
    if not key:
        raise ModelPreparationError(f"environment variable {p.api_key_env} (api_key_env) is not set")
    return {"Authorization": f"Bearer {key}"}


def reach_server(cell: CellSpec, p: ServingParams, models: CellModels
                 ) -> tuple[subprocess.Popen | None, str, dict[str, float]]:
    """(the local server's process or None, base URL, load figures): starts harness serve for `local`."""
    scheduler = {} if p.enable_prefix_caching is None else {"enable_prefix_caching": p.enable_prefix_caching}
    if cell.remote:  # enable_prefix_caching with a remote server is refused when the suite is read
        return None, str(cell.server).rstrip("/"), {}
    t0 = time.perf_counter()
    proc, base_url = start_local_server(models.target, cell.device, dict(cell.properties),
                                        models.workdir / "server.log", scheduler=scheduler)
    return proc, base_url, {"load_cold_ms": (time.perf_counter() - t0) * 1000}


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


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Start (or reach) the server, warm up, run the load, stop; emit requests, the load record and figures."""
    p = ServingParams.of(cell)
    api = p.api
    given = schedule(p, set(cell.scenario.params))
    replay, warm_bodies = given.replay, given.replay_warmup
    spec = LoadSpec(concurrency=p.concurrency, rate=p.rate, burstiness=p.burstiness,
                    requests=len(given.arrivals) if given.arrivals is not None else p.requests,
                    duration_s=p.duration_s, warmup=len(warm_bodies) if replay else cell.warmup,
                    timeout_s=p.request_timeout_s, rate_end=p.rate_end, arrivals=given.arrivals)
    cancel = cancelled_indices(p.cancel_fraction, spec.seed, spec.requests)
    per_request = p.texts_per_call()
    texts_per_request = per_request + (api == "rerank")
    plan = prompt_plan(cell, p, given, spec)
    prompts: list[str] = []  # made once the server is up: without a tokenizer its usage counts calibrate them

    def first_text(i: int) -> int:
        """Index (into prompts) of request i's first text; warm-up requests (i < 0) take prompts from the
        end, after the measured ones when none repeat."""
        return (i if i >= 0 else len(prompts) // per_request - 1 - (-1 - i)) * per_request % len(prompts)

    def plain_inputs(i: int) -> RequestInput:
        if replay:
            rec = replay[i] if i >= 0 else warm_bodies[-1 - i]
            return RequestInput(api=rec.api, prompt="", stream=bool(rec.body.get("stream")), index=i,
                                body=rec.body)
        idx = first_text(i)
        texts = [prompts[(idx + k) % len(prompts)] for k in range(texts_per_request)]
        return RequestInput(api=api, prompt=texts[0], documents=tuple(texts[1:]), max_tokens=plan.out_lens[idx],
                            ignore_eos=cell.generation.ignore_eos, stream=p.stream, index=i,
                            cancel_after=p.cancel_after_tokens if i in cancel else None)

    # the shared prefix (made with the prompts), the conversation so far and the images (serving/content.py)
    inputs = RequestMaker(
        plain_inputs, turns=p.turns, prefixes=[],
        images=image_sets(min(spec.requests + spec.warmup, MAX_DISTINCT_PROMPTS), p.images_per_request,
                          p.image_size) if p.images_per_request else [])

    headers = auth_headers(p)
    proc, base_url, cell_values = reach_server(cell, p, models)
    emit(Loaded(cell_values=dict(cell_values)))
    try:
        info = describe_server(base_url, cell.model.name if cell.remote else models.target.name, p.served_model,
                               headers, p.request_timeout_s, p.tokenizer_source(cell.remote))
        emit(ServerReport(server=info))  # said again below once the prompt lengths' source is settled
        model = info.served_model
        if cell.prompts.source == "file" and not replay:
            prompts += [cell.prompts.texts[i % len(cell.prompts.texts)] for i in range(plan.count)]
        if not replay and (cell.prompts.source != "file" or p.shared_prefix_tokens):  # texts made to a length
            make, counted_by = prompt_maker(cell, p, models,
                                            prompt_token_counter(base_url, api, model, headers, p.request_timeout_s))
            info = info.model_copy(update={"tokenizer": counted_by})
            if cell.prompts.source != "file":
                assert cell.prompts.input_tokens is not None
                with_blocks = BlockPrompts(make, BLOCK_TOKENS)
                prompts += [with_blocks(i, plan.in_lens[i], plan.blocks[i]) if plan.blocks and plan.in_lens
                            else make(i, plan.in_lens[i] if plan.in_lens else cell.prompts.input_tokens)
                            for i in range(plan.count)]
            if p.shared_prefix_tokens:  # synthetic, from an index range the prompts never reach
                inputs.prefixes = [make(PREFIX_INDEX_BASE + g, p.shared_prefix_tokens)
                                   for g in range(p.prefix_groups)]
        emit(ServerReport(server=info))
        before = read_once(metrics_url(base_url))
        warmups: list[RequestOutput] = []
        measured: list[RequestOutput] = []  # every load's requests (an SLO search runs several)

        def load(load_spec: LoadSpec, iteration: int) -> tuple[LoadResult, BatchRecord]:
            """One load; its requests are emitted as they end, its batch record when it is over."""
            mine: list[Sample] = []

            def emit_request(o: RequestOutput) -> None:
                inputs.record(o)  # the conversation's next turn carries this answer
                if o.ok:
                    sample = _sample(o, o.index, iteration if p.slo_search else o.index)
                    sample.readings.update(inputs.readings(o.index))
                    if api in ("embeddings", "rerank"):
                        sample.readings["documents"] = per_request
                    else:  # what this request asked for: the token-count check compares with it
                        sample.readings["max_tokens"] = (plan.out_lens[first_text(o.index)] if not replay else
                                                         replay[o.index].body.get("max_tokens") or 0)
                    mine.append(sample)
                    emit(SampleEvent(sample=sample, of=load_spec.requests))

            def shifted(i: int) -> RequestInput:  # measured requests of load k follow those of loads before it
                return inputs(i + iteration * load_spec.requests if i >= 0 else i)

            # the request maker itself for a single load: the closed loop reads its conversations' `turns`
            make_request = shifted if iteration else inputs
            result = asyncio.run(run_load(base_url, model, make_request, load_spec, headers, on_result=emit_request))
            warmups.extend(result.warmup)
            measured.extend(result.measured)
            record = _load_record(result, iteration, mine, cell.slo, api in ("chat", "completions"))
            emit(BatchEvent(batch=record))
            return result, record

        scraper = Scraper(metrics_url(base_url), p.metrics_interval_s).start() if p.metrics_interval_s else None
        try:
            result = _slo_search(p, cell.slo, spec, load, emit) if p.slo_search else load(spec, 0)[0]
        finally:
            timeline = scraper.stop() if scraper else LoadTimeline(interval_s=0)
        after = read_once(metrics_url(base_url))
    finally:
        if proc is not None:
            stop_server(proc)
    if p.export_requests:
        write_exports(models.workdir, api, warmups, measured, result.start_ns)
    deltas = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    done = load_outcome(result, warmups + measured, deltas, timeline, cell_values)
    emit(done)
    errors = done.check_outputs.serving_errors
    if errors is not None and errors.first and not any(o.ok for o in result.measured):
        # what was measured is kept; the cell still fails
        raise ServerError(f"all {sum(errors.counts.values())} measured requests failed; first: {errors.first[0]}")


def load_outcome(result: LoadResult, every_output: list[RequestOutput], deltas: dict[str, float],
                 timeline: LoadTimeline, cell_values: dict[str, float]) -> Done:
    """The cell's figures from its (chosen) load: errors, cancellations, connection reuse, client CPU, the
    busiest second, and the server's counter deltas and time series."""
    values = dict(cell_values)
    ok = [o for o in result.measured if o.ok]
    cancelled = [o for o in result.measured if o.cancelled]
    failed = [o for o in result.measured if not o.ok and not o.cancelled]
    errors: dict[str, int] = {}
    for o in failed:
        errors[o.error_kind or "error"] = errors.get(o.error_kind or "error", 0) + 1
    wall = (result.end_ns - result.start_ns) / 1e9
    # cancelled requests are neither errors nor completions: the rate is over the others
    values["error_rate_pct"] = 100.0 * len(failed) / max(1, len(result.measured) - len(cancelled))
    reused = [o.http["connection_reused"] for o in result.measured if "connection_reused" in o.http]
    if reused:
        values["connection_reused_pct"] = 100.0 * sum(reused) / len(reused)
    values["client_cpu_pct"] = 100.0 * result.client_cpu_s / wall if wall > 0 else 0.0
    peak = busiest_second_tps(ok, result.start_ns)
    if peak is not None:
        values["peak_output_tps"] = peak
    if cancelled:
        values["cancelled_requests"] = float(len(cancelled))
        server_tokens = cancelled_server_tokens(deltas, every_output, len(cancelled), errors)
        if server_tokens is not None:
            values["cancelled_server_tokens"] = server_tokens
    first_errors = [f"request {o.index}: {o.error_kind}: {o.error}" for o in failed[:5]]
    return Done(cell_values=values,
                check_outputs=CheckOutputs(serving_errors=ServingErrors(counts=errors, first=first_errors,
                                                                        cancelled=len(cancelled)),
                                           server_metrics_delta=deltas,
                                           load_timeline=timeline.model_copy(update={
                                               "failed_start_ns": [o.start_ns for o in failed],
                                               "failed_end_ns": [o.end_ns for o in failed]})))


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
