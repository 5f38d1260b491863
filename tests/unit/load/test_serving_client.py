"""The serving client and load generator against a deliberately misbehaving local server: every failure
becomes a counted error kind, nothing raises or hangs, and good requests are timed right."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from harness.execute.backends.serving import busiest_second_tps
from harness.load.client import RequestInput, RequestOutput
from harness.load.generator import LoadSpec, run_load
from tests.conftest import app_in_thread


def _chunk(text: str) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}) + "\n\n"


def _usage(n: int) -> str:
    return "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                                          "total_tokens": 5 + n}}) + "\n\n"


def _app():
    app = FastAPI()

    @app.post("/{mode}/v3/chat/completions")
    async def chat(mode: str, request: Request):
        body = await request.json()
        if mode == "http500":
            return JSONResponse(status_code=500, content={"error": "boom"})
        if mode == "http400":
            return JSONResponse(status_code=400, content={"error": "bad request"})
        if mode == "plain" and not body.get("stream"):
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}

        async def events():
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}) + "\n\n"
            if mode == "malformed":
                yield "data: {not json\n\n"
                return
            if mode == "garbage":
                yield "event without data prefix\n\n"
                return
            for k in range(4):
                await asyncio.sleep(0.02)
                yield _chunk(f"t{k} ")
                if mode == "stall" and k == 1:
                    await asyncio.sleep(30)
                if mode == "cut" and k == 1:
                    return  # ends the stream without [DONE]
            if mode != "nousage":
                yield _usage(6)  # more tokens than chunks: the count comes from usage
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/{mode}/v3/models")
    async def listing(mode: str):
        served = {"one": ["ovms-llama"], "two": ["a", "b"], "broken": None, "ovms": ["llama"]}.get(mode, ["m"])
        if served is None:
            return JSONResponse(status_code=404, content={"error": "no listing"})
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in served]}

    @app.get("/{mode}/v2")
    async def kserve_metadata(mode: str):
        if mode != "ovms":
            return JSONResponse(status_code=404, content={"error": "no"})
        return {"name": "OpenVINO Model Server", "version": "2026.4.0", "extensions": []}

    @app.get("/{mode}/v1/config")
    async def ovms_config(mode: str):
        if mode != "ovms":
            return JSONResponse(status_code=404, content={"error": "no"})
        return {"llama": {"model_version_status": [{"version": 1, "state": "AVAILABLE", "status": {}}]}}

    @app.post("/{mode}/v3/rerank")
    async def rerank(mode: str, request: Request):
        body = await request.json()
        assert isinstance(body["query"], str) and isinstance(body["documents"], list)
        if mode == "ok":
            return {"results": [{"index": i, "relevance_score": 1.0 / (1 + i)} for i in range(len(body["documents"]))]}
        return {"results": "not a list"}

    @app.post("/{mode}/v3/embeddings")
    async def embeddings(mode: str, request: Request):
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        n = len(texts) if mode == "ok" else len(texts) - 1  # "short": one vector missing
        return {"data": [{"index": i, "embedding": [0.0, 1.0]} for i in range(n)],
                "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}}

    return app


@pytest.fixture(scope="module")
def server():
    with app_in_thread(_app()) as url:
        yield url


def _load(base: str, mode: str, requests: int = 3, concurrency: int = 2, timeout_s: float = 2.0, stream: bool = True):
    spec = LoadSpec(concurrency=concurrency, requests=requests, warmup=0, timeout_s=timeout_s)
    return asyncio.run(run_load(f"{base}/{mode}/v3", "m", lambda i: RequestInput("chat", f"p{i}", 8, stream=stream,
                                                                                 index=i), spec))


def test_good_stream_is_timed_and_counted_from_usage(server):
    res = _load(server, "ok")
    assert [o.ok for o in res.measured] == [True, True, True]
    o = res.measured[0]
    assert o.completion_tokens == 6 and o.prompt_tokens == 5 and o.text == "t0 t1 t2 t3 "
    assert len(o.chunk_offsets_ms) == 4 and o.chunk_offsets_ms == sorted(o.chunk_offsets_ms)
    assert 0 < o.chunk_offsets_ms[0] < (o.end_ns - o.start_ns) / 1e6  # role-only first chunk is not the first token
    assert res.client_cpu_s >= 0


def test_non_streaming_request(server):
    res = _load(server, "plain", requests=1, stream=False)
    assert res.measured[0].ok and res.measured[0].completion_tokens == 2 and res.measured[0].text == "hi"


@pytest.mark.parametrize("mode,kind", [("http500", "http_5xx"), ("http400", "http_4xx"), ("malformed", "malformed_sse"),
                                       ("garbage", "malformed_sse"), ("cut", "disconnected"), ("nousage", "no_usage"),
                                       ("stall", "timeout"), ("no/such", "http_4xx")])
def test_every_failure_is_a_counted_error(server, mode, kind):
    started = time.monotonic()
    res = _load(server, mode, requests=2, timeout_s=1.0)
    assert time.monotonic() - started < 10  # a stalled stream ends at the read timeout, not 30 s later
    assert [o.error_kind for o in res.measured] == [kind, kind], [o.error for o in res.measured]
    assert not any(o.ok for o in res.measured)


def test_refused_connection_is_a_counted_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _load(f"http://127.0.0.1:{port}", "ok", requests=1)
    assert res.measured[0].error_kind == "connect"


def test_open_loop_sends_at_the_rate(server):
    spec = LoadSpec(rate=20.0, requests=10, warmup=0, timeout_s=5, seed=1)
    res = asyncio.run(run_load(f"{server}/ok/v3", "m", lambda i: RequestInput("chat", "p", 8, index=i), spec))
    assert len(res.measured) == 10 and all(o.ok for o in res.measured)
    starts = sorted(o.start_ns for o in res.measured)
    span = (starts[-1] - starts[0]) / 1e9
    assert 0.1 < span < 2.0  # 9 gaps of mean 50 ms


def test_busiest_second():
    a = RequestOutput(index=0, start_ns=0, ok=True, chunk_offsets_ms=[100, 200, 300, 400], completion_tokens=8)
    b = RequestOutput(index=1, start_ns=int(2e9), ok=True, chunk_offsets_ms=[100], completion_tokens=3)
    assert busiest_second_tps([a, b], 0) == pytest.approx(8.0)


@pytest.mark.parametrize("api,mode,kind", [("rerank", "ok", None), ("rerank", "bad", "malformed_response"),
                                           ("embeddings", "ok", None), ("embeddings", "short", "malformed_response")])
def test_encoder_requests_check_one_result_per_input(server, api, mode, kind):
    spec = LoadSpec(concurrency=1, requests=2, warmup=0, timeout_s=5)
    docs = ("d1", "d2", "d3")
    res = asyncio.run(run_load(f"{server}/{mode}/v3", "m", lambda i: RequestInput(api, "q", documents=docs, index=i),
                               spec))
    assert [o.error_kind for o in res.measured] == [kind, kind], [o.error for o in res.measured]
    assert all(o.ok for o in res.measured) == (kind is None)


def test_request_lengths_spread_uniformly_around_the_nominal_ones():
    from harness.execute.backends.serving import request_lengths

    assert request_lengths(64, 32, 0.0, 5) == (None, [32] * 5)
    ins, outs = request_lengths(100, 40, 0.5, 2000)
    assert min(ins) >= 50 and max(ins) <= 150 and min(outs) >= 20 and max(outs) <= 60
    assert 95 < sum(ins) / len(ins) < 105 and len(set(outs)) > 30  # uniform, not stuck at the nominal
    assert request_lengths(100, 40, 0.5, 10) == request_lengths(100, 40, 0.5, 10)  # seeded


def test_warm_up_runs_at_the_loads_concurrency(server):
    # each request streams for ~80 ms: four warm-up requests at concurrency 4 overlap, one at a time they do not
    def warm(concurrency: int, rate: float | None = None):
        spec = LoadSpec(concurrency=concurrency, rate=rate, requests=1, warmup=4, timeout_s=5)
        res = asyncio.run(run_load(f"{server}/ok/v3", "m", lambda i: RequestInput("chat", f"p{i}", 8, index=i), spec))
        assert len(res.warmup) == 4 and all(o.ok for o in res.warmup) and [o.index for o in res.warmup] == [-1, -2, -3, -4]
        return max(o.end_ns for o in res.warmup) - min(o.start_ns for o in res.warmup)

    def overlap(span_ns: int, one_ns: int) -> bool:
        return span_ns < 2.5 * one_ns

    one = warm(1)
    assert not overlap(one, one / 4)  # sequential: about four requests long
    assert overlap(warm(4), one / 4)
    assert overlap(warm(1, rate=5.0), one / 4)  # open loop: the warm-up all at once


def test_the_served_model_name_comes_from_the_servers_listing(server):
    from harness.core.errors import ServerError
    from harness.load.server_info import describe_server

    def name(mode: str, wanted: str) -> str:
        return describe_server(f"{server}/{mode}/v3", wanted, None, None, 5, "usage").served_model

    assert name("ok", "m") == "m"  # listed: as the suite names it
    assert name("one", "small") == "ovms-llama"  # the only one served
    assert name("broken", "small") == "small"  # no listing: as given
    with pytest.raises(ServerError, match=r"serves a, b, none named 'small': set the scenario's served_model"):
        name("two", "small")
    assert describe_server(f"{server}/two/v3", "small", "b", None, 5, "usage").served_model == "b"  # as set


def test_the_server_says_what_it_is(server):
    """KServe metadata, OVMS's /v1/config and the server header are recorded as the server gave them; a
    server that answers none of them still gets its endpoint and model recorded, nothing made up."""
    from harness.load.server_info import describe_server

    info = describe_server(f"{server}/ovms/v3", "llama", None, None, 5, "usage")
    assert (info.name, info.version, info.model_versions) == ("OpenVINO Model Server", "2026.4.0", ["1: AVAILABLE"])
    assert info.server_header == "uvicorn" and info.models == ["llama"] and info.endpoint == f"{server}/ovms/v3"
    bare = describe_server(f"{server}/broken/v3", "llama", None, None, 5, "usage")
    assert (bare.name, bare.version, bare.model_versions, bare.models) == (None, None, [], [])


@pytest.mark.parametrize("status, body, line", [
    (404, '{"error": {"message": "Model with requested name is not found", "type": "x"}}',
     "HTTP 404: Model with requested name is not found"),
    (400, '{"detail": "bad\\n  request"}', "HTTP 400: bad request"),
    (502, "<html><head><title>502</title><style>b{}</style></head><body><h1>Bad Gateway</h1>\n<hr>nginx</body></html>",
     "HTTP 502: Bad Gateway nginx"),
    (500, "", "HTTP 500"),
    (503, "x" * 1000, "HTTP 503: " + "x" * 160),
])
def test_an_error_response_is_one_short_line(status, body, line):
    from harness.load.client import http_error_text

    assert http_error_text(status, body) == line
