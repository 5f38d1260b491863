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
from pathlib import Path
from typing import Any

from harness.backends import CellModels, Emit
from harness.child_process import die_with_parent
from harness.errors import ModelPreparationError
from harness.events import BatchEvent, Done, Loaded, SampleEvent
from harness.host import free_loopback_port
from harness.kinds.serving import ServingParams
from harness.metrics import sample_values
from harness.schema import BatchRecord, CellSpec, CheckOutputs, LoadTimeline, Sample, ServingErrors
from harness.serving.client import RequestInput, RequestOutput
from harness.serving.load import LoadSpec, run_load
from harness.serving.scrape import Scraper, metrics_url

LOCAL = "local"


def start_local_server(model_dir: Path, device: str, properties: dict[str, Any], log_path: Path,
                       embedding_dir: Path | None = None, timeout_s: float = 180) -> tuple[subprocess.Popen, str]:
    """`harness serve` in a child process on a free loopback port; returns it and its /v3 base URL."""
    import httpx

    port = free_loopback_port()
    cmd = [sys.executable, "-m", "harness", "serve", str(model_dir), "--port", str(port), "--device", device,
           "--properties", json.dumps(properties)]
    if embedding_dir is not None:
        cmd += ["--embeddings", str(embedding_dir)]
    log = open(log_path, "w")  # noqa: SIM115 - handed to the child, closed by the OS with it
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ModelPreparationError(f"harness serve exited with {proc.returncode}: "
                                        f"{log_path.read_text(errors='replace')[-400:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v3"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise ModelPreparationError(f"harness serve did not become ready in {timeout_s:g} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def served_model_name(base_url: str, wanted: str, headers: dict[str, str] | None, timeout_s: float) -> str:
    """The `model` requests should name: `wanted` when the server lists it (or lists nothing readable), else the
    server's only model; a server listing several others is an error naming them (set `served_model`)."""
    import httpx

    try:
        r = httpx.get(f"{base_url}/models", headers=headers, timeout=min(timeout_s, 10.0))
        listed = [str(m["id"]) for m in r.json()["data"]] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        listed = []  # no usable listing: OVMS and others route by the name given, as before
    if not listed or wanted in listed:
        return wanted
    if len(listed) == 1:
        return listed[0]
    raise ModelPreparationError(f"the server at {base_url} serves {', '.join(listed[:10])}, none named {wanted!r}: "
                                "set the scenario's served_model")


def scrape(base_url: str) -> dict[str, float]:
    """Prometheus text from the server's /metrics as {sample name with labels: value} ({} when absent)."""
    import httpx

    root = base_url.rsplit("/v", 1)[0]
    try:
        r = httpx.get(f"{root}/metrics", timeout=5)
    except httpx.HTTPError:
        return {}
    if r.status_code != 200:
        return {}
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


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


def _sample(o: RequestOutput, prompt_index: int) -> Sample:
    return Sample(iteration=o.index, warmup=False, request=o.index, prompt_index=prompt_index,
                  input_tokens=o.prompt_tokens or 0, output_tokens=o.completion_tokens or 0, start_ns=o.start_ns,
                  end_ns=o.end_ns, chunk_offsets_ms=o.chunk_offsets_ms, chunk_tokens=[], output_text=o.text,
                  scheduled_ns=getattr(o, "scheduled_ns", None))


MAX_DISTINCT_PROMPTS = 512


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Start (or reach) the server, warm up, run the load, stop; emit requests, the load record and figures."""
    import openvino_genai as ov_genai

    from harness.backends.genai_common import prompt_texts

    p = ServingParams.of(cell)
    api = p.api
    target = cell.server or LOCAL
    spec = LoadSpec(concurrency=p.concurrency, rate=p.rate, burstiness=p.burstiness, requests=p.requests,
                    duration_s=p.duration_s, warmup=cell.warmup, timeout_s=p.request_timeout_s)
    tok_dir = models.target
    per_request = p.texts_per_call()
    texts_per_request = per_request + (api == "rerank")
    # distinct prompts are made up front, so a long or duration-bound load cycles through a bounded set
    count = min((spec.requests + spec.warmup) * per_request + texts_per_request - per_request, MAX_DISTINCT_PROMPTS)
    count = max(count, texts_per_request)
    in_lens, out_lens = request_lengths(cell.prompts.input_tokens, cell.generation.max_new_tokens,
                                        p.range_ratio, count)
    prompts = prompt_texts(cell, ov_genai.Tokenizer(str(tok_dir)), count, in_lens)

    def first_text(i: int) -> int:
        """Index (into prompts) of request i's first text; warm-up requests (i < 0) take prompts from the
        end, after the measured ones when none repeat."""
        return (i if i >= 0 else len(prompts) // per_request - 1 - (-1 - i)) * per_request % len(prompts)

    def inputs(i: int) -> RequestInput:
        idx = first_text(i)
        texts = [prompts[(idx + k) % len(prompts)] for k in range(texts_per_request)]
        return RequestInput(api=api, prompt=texts[0], documents=tuple(texts[1:]), max_tokens=out_lens[idx],
                            ignore_eos=cell.generation.ignore_eos, stream=p.stream, index=i)

    headers = None
    key_env = p.api_key_env
    if key_env:
        key = os.environ.get(str(key_env))
        if not key:
            raise ModelPreparationError(f"environment variable {key_env} (api_key_env) is not set")
        headers = {"Authorization": f"Bearer {key}"}
    proc = None
    cell_values: dict[str, float] = {}
    if target == LOCAL:
        t0 = time.perf_counter()
        proc, base_url = start_local_server(models.target, cell.device, dict(cell.properties),
                                            models.workdir / "server.log")
        cell_values["load_cold_ms"] = (time.perf_counter() - t0) * 1000
    else:
        base_url = target.rstrip("/")
    emit(Loaded(cell_values=dict(cell_values)))
    samples: list[Sample] = []  # one per completed measured request
    try:
        before = scrape(base_url)

        def emit_request(o: RequestOutput) -> None:
            if o.ok:
                sample = _sample(o, o.index)
                if api in ("embeddings", "rerank"):
                    sample.readings["documents"] = per_request
                else:  # what this request asked for: the token-count check compares with it
                    sample.readings["max_tokens"] = out_lens[first_text(o.index)]
                samples.append(sample)
                emit(SampleEvent(sample=sample, of=spec.requests))

        model = p.served_model or (models.target.name if target == LOCAL else
                                   served_model_name(base_url, cell.model.name, headers, p.request_timeout_s))
        scraper = Scraper(metrics_url(base_url), p.metrics_interval_s).start() if p.metrics_interval_s else None
        try:
            result = asyncio.run(run_load(base_url, model, inputs, spec, headers, on_result=emit_request))
        finally:
            timeline = scraper.stop() if scraper else LoadTimeline(interval_s=0)
        after = scrape(base_url)
    finally:
        if proc is not None:
            stop_server(proc)
    ok = [o for o in result.measured if o.ok]
    generates = api in ("chat", "completions")
    # token totals only where every completed request reported them (rerank servers report no usage)
    batch = BatchRecord(iteration=0, warmup=False, requests=len(ok), start_ns=result.start_ns,
                        end_ns=result.end_ns,
                        output_tokens=sum(o.completion_tokens or 0 for o in ok) if generates else None,
                        input_tokens=sum(o.prompt_tokens for o in ok)
                        if ok and all(o.prompt_tokens is not None for o in ok) else None, steps=0,
                        good_requests=sum(meets_slo(x, cell.slo) for x in samples) if cell.slo else None)
    emit(BatchEvent(batch=batch))
    errors: dict[str, int] = {}
    for o in result.measured:
        if not o.ok:
            errors[o.error_kind or "error"] = errors.get(o.error_kind or "error", 0) + 1
    wall = (result.end_ns - result.start_ns) / 1e9
    cell_values["error_rate_pct"] = 100.0 * (len(result.measured) - len(ok)) / max(1, len(result.measured))
    cell_values["client_cpu_pct"] = 100.0 * result.client_cpu_s / wall if wall > 0 else 0.0
    peak = busiest_second_tps(ok, result.start_ns)
    if peak is not None:
        cell_values["peak_output_tps"] = peak
    deltas = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    first_errors = [f"request {o.index}: {o.error_kind}: {o.error}" for o in result.measured if not o.ok][:5]
    emit(Done(cell_values=cell_values,
              check_outputs=CheckOutputs(serving_errors=ServingErrors(counts=errors, first=first_errors),
                                         server_metrics_delta=deltas,
                                         load_timeline=timeline.model_copy(update={
                                             "failed_start_ns": [o.start_ns for o in result.measured if not o.ok],
                                             "failed_end_ns": [o.end_ns for o in result.measured if not o.ok]}))))
