"""The serving scenario end to end against `harness serve` with the tiny models on loopback."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.records.store import load_results
from tests.conftest import ROOT, run_cli, run_suite

pytestmark = pytest.mark.integration

SUITE = {
    "name": "serving-test",
    "server": "local",
    "models": [{"name": "tiny", "source": "synthetic:tiny"}, {"name": "tiny-embed", "source": "synthetic:tiny-embed"},
               {"name": "tiny-rerank", "source": "synthetic:tiny-rerank"}],
    "precisions": ["fp16"],
    "prompts": {"input_tokens": [32]},
    "generation": {"max_new_tokens": 16, "ignore_eos": True},
    "warmup": 1,
    "iterations": 1,
    "timeout_s": 300,
    "properties": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
    "scenarios": [
        {"name": "greedy", "kind": "generate", "models": ["tiny"]},
        {"name": "completions", "kind": "serving", "models": ["tiny"], "api": "completions", "concurrency": [1, 3],
         "requests": 6},
        {"name": "chat", "kind": "serving", "models": ["tiny"], "api": "chat", "concurrency": 2, "requests": 4,
         "range_ratio": 0.5},
        {"name": "embed", "kind": "serving", "models": ["tiny-embed"], "api": "embeddings", "concurrency": 2,
         "requests": 6},
        {"name": "rerank", "kind": "serving", "models": ["tiny-rerank"], "api": "rerank", "concurrency": 2,
         "requests": 4, "batch_size": 5},
    ],
    "gates": [{"metric": "ttft_ms", "stat": "p90", "max": 60000, "where": {"api": "completions"}}],
    "slo": {"ttft_ms": 60000, "e2e_ms": 60000},
}


@pytest.fixture(scope="module")
def serving_run(tmp_path_factory, model_cache):
    return run_suite(SUITE, tmp_path_factory.mktemp("serving"), model_cache)


def test_every_serving_cell_measures_its_requests(serving_run):
    proc, out = serving_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = [c for c in load_results(out).cells if c.spec.scenario.kind == "serving"]
    assert len(cells) == 5
    for c in cells:
        assert c.status == "ok", (c.key, c.error)
        checks = {ch.name: ch for ch in c.checks}
        assert checks["serving_errors"].status == "pass", checks["serving_errors"].detail
        n = int(c.spec.scenario.params["requests"])
        assert len(c.samples) == n and len(c.batches) == 1 and c.batches[0].requests == n
        assert c.cell_values["error_rate_pct"] == 0 and 0 <= c.cell_values["client_cpu_pct"] < 100
        server = c.check_outputs.server_metrics_delta
        # the server counted the warm-up and measured requests the client sent
        assert sum(v for k, v in server.items() if k.startswith("ovms_requests_accepted_total")) == n + 1
        assert sum(v for k, v in server.items() if k.startswith("ovms_responses_total")) >= n + 1
        assert c.summaries["request_rps"].median > 0
        # every request met the lax SLO: goodput is the request throughput
        assert c.batches[0].good_requests == n
        assert c.summaries["goodput_rps"].median == pytest.approx(c.summaries["request_rps"].median)
        api = c.spec.scenario.params["api"]
        if api in ("chat", "completions"):
            assert c.summaries["batch_total_tps"].median >= c.summaries["batch_output_tps"].median
        else:  # nothing generated: no output figure, rather than a measured-looking 0
            assert "batch_output_tps" not in c.summaries
            # embeddings report prompt tokens in usage; rerank responses carry no usage at all
            assert ("batch_total_tps" in c.summaries) == (api == "embeddings")
            assert ("input_tokens" in c.summaries) == (api == "embeddings")
        if c.spec.scenario.params["api"] == "rerank":  # 5 documents per request
            assert c.summaries["documents_per_s"].n == n and c.summaries["documents_per_s"].median > 0


def test_streamed_generation_is_timed_with_usage_counts(serving_run):
    _, out = serving_run
    res = load_results(out)
    for c in (c for c in res.cells if c.spec.scenario.params.get("api") in ("chat", "completions")):
        s = c.summaries
        checks = {ch.name: ch for ch in c.checks}
        assert checks["exact_token_count"].status == "pass", checks["exact_token_count"].detail
        if "range_ratio" in c.spec.scenario.params:  # lengths spread over 8..24 around 16
            assert 8 <= s["output_tokens"].min and s["output_tokens"].max <= 24
            assert len({x.readings["max_tokens"] for x in c.samples}) > 1
            assert len({x.input_tokens for x in c.samples}) > 1
        else:
            assert s["output_tokens"].min == s["output_tokens"].max == 16  # usage, with ignore_eos
        assert s["ttft_ms"].n == len(c.samples) and s["tpot_ms"].median > 0
        assert c.cell_values["peak_output_tps"] > 0
        if c.spec.scenario.params["api"] == "completions":
            # the server's streamed text for a prompt is the in-process greedy output for it
            check = next(ch for ch in c.checks if ch.name == "matches_greedy")
            assert check.status == "pass", check.detail


def test_report_has_the_serving_table_and_sweep_limit(serving_run):
    _, out = serving_run
    md = (out / "report.md").read_text()
    assert "### Serving (OpenAI-compatible endpoint)" in md
    assert "Highest concurrency or request rate within the suite's gates" in md and "**concurrency 3**" in md
    html = (out / "report.html").read_text()
    assert "Throughput vs latency" in html and "c=3" in html


def test_shipped_serving_suite_expands():
    from harness.plan.suite import expand, load_suite

    suite, _ = load_suite(ROOT / "suites" / "serving.yaml")
    cells = expand(suite, ROOT / "suites" / "serving.yaml")
    assert {c.server for c in cells} == {"local"}
    assert sorted(int(c.scenario.params["concurrency"]) for c in cells if c.scenario.params["api"] == "chat") == [1, 2, 4]


def test_load_cut_by_the_timeout_keeps_what_it_measured(tmp_path, model_cache):
    suite = {**SUITE, "name": "serving-timeout", "timeout_s": 12,
             "scenarios": [{"name": "long", "kind": "serving", "models": ["tiny"], "api": "completions",
                            "concurrency": 2, "requests": 100000}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=model_cache)
    assert proc.returncode == 3  # the only cell timed out: nothing judged ...
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "timeout"
    assert len(c.samples) > 0 and c.summaries["ttft_ms"].n == len(c.samples)  # ... but keeps its requests
    import psutil

    # the cell's server went with its worker (known by its log in this run's folder: the other test worker may
    # be running a harness serve of the same cached model)
    def writes_here(proc: psutil.Process) -> bool:
        try:
            return any(str(tmp_path) in f.path for f in proc.open_files())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    servers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "serve" in p.info["cmdline"]
               and any("harness" in a for a in p.info["cmdline"]) and str(model_cache) in " ".join(p.info["cmdline"])
               and writes_here(p)]
    assert not servers


def _sse(lines: list[str]) -> list[dict | str]:
    return [ln[6:] if ln == "data: [DONE]" else json.loads(ln[6:]) for ln in lines if ln.startswith("data: ")]


def test_reference_server_speaks_ovms_shapes(model_cache):
    """Chunk and usage shapes as OVMS's openai_completions.cpp and rerank_utils.cpp write them."""
    from fastapi.testclient import TestClient

    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model
    from harness.serve.server import build_app

    llm = prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path
    reranker = prepare_model("synthetic:tiny-rerank", "fp16", CompressionSpec(), model_cache).path
    embedder = prepare_model("synthetic:tiny-embed", "fp16", CompressionSpec(), model_cache).path
    with TestClient(build_app(llm, rerank_model_dir=reranker, embedding_model_dir=embedder)) as client:
        for api, path, obj in (("chat", "/v3/chat/completions", "chat.completion.chunk"),
                               ("completions", "/v3/completions", "text_completion.chunk")):
            body = {"model": llm.name, "max_tokens": 4, "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}
            body |= {"messages": [{"role": "user", "content": "hi"}]} if api == "chat" else {"prompt": "hi"}
            with client.stream("POST", path, json=body) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                events = _sse(list(r.iter_lines()))
            assert events[-1] == "[DONE]"
            *chunks, usage = events[:-1]
            first = chunks[0]["choices"][0]
            assert first == ({"index": 0, "logprobs": None, "delta": {"role": "assistant", "content": None},
                              "finish_reason": None} if api == "chat" else
                             {"index": 0, "logprobs": None, "text": "", "finish_reason": None})
            assert all(c["object"] == obj and c["model"] == llm.name and c["usage"] is None for c in chunks)
            assert chunks[-1]["choices"][0]["finish_reason"] == "length"
            assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
            assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 4
        docs = ["alpha beta", "gamma", "delta epsilon zeta", "eta"]
        r = client.post("/v3/rerank", json={"model": reranker.name, "query": "alpha", "documents": docs, "top_n": 3,
                                            "return_documents": True})
        results = r.json()["results"]
        assert r.status_code == 200 and len(results) == 3
        scores = [x["relevance_score"] for x in results]
        assert scores == sorted(scores, reverse=True)
        assert all(x["document"] == {"text": docs[x["index"]]} for x in results)
        assert "document" not in client.post("/v3/rerank", json={"query": "a", "documents": docs}).json()["results"][0]
        too_many = client.post("/v3/rerank", json={"query": "a", "documents": ["x"] * 101})
        assert too_many.status_code == 400 and "101 documents" in too_many.text
        assert client.post("/v3/rerank", json={"query": "a", "documents": []}).status_code == 400
        # embeddings beside a text-generation model: usage counts the embedding model's tokens
        import openvino_genai as ov_genai

        texts = ["def main(): return 1", "lock = threading.Lock()"]
        emb = client.post("/v3/embeddings", json={"input": texts}).json()
        own = sum(len(ov_genai.Tokenizer(str(embedder)).encode(t).input_ids.data[0]) for t in texts)
        other = sum(len(ov_genai.Tokenizer(str(llm)).encode(t).input_ids.data[0]) for t in texts)
        assert len(emb["data"]) == 2 and emb["usage"]["prompt_tokens"] == own != other
        # OVMS's V3 graph metric families and labels
        prom = client.get("/metrics").text
        labels = f'api="V3",interface="REST",method="Stream",name="{llm.name}"'
        assert f"ovms_requests_accepted_total{{{labels}}} 2.0" in prom
        assert f'ovms_current_graphs{{name="{llm.name}"}} 0.0' in prom
        assert f'ovms_graph_request_latency_us_count{{method="Stream",name="{llm.name}"}} 2.0' in prom
        assert f'ovms_requests_rejected_total{{api="V3",interface="REST",method="Unary",name="{reranker.name}"}} 2.0' in prom


def test_serving_cells_compare_like_any_other(serving_run):
    _, out = serving_run
    proc = run_cli("compare", str(out), str(out), "--format", "json", "--no-history-noise")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cmp = json.loads(proc.stdout)
    serving = [c for c in cmp["cells"] if "completions[" in c["key"]]
    assert serving
    for c in serving:
        by_metric = {m["metric"]: m for m in c["metrics"]}
        assert {"ttft_ms", "tpot_ms", "request_rps", "goodput_rps"} <= set(by_metric)
        assert all(m["verdict"] in ("unchanged", "inconclusive") for m in c["metrics"])
