"""SLO search by bisection on the rate: the bracketing logic on its own, and a real search against a server
whose capacity is known (one request at a time, 50 ms each: 20 requests/s at most)."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from harness.core.schema import SloProbe
from harness.load.slo_search import SearchPolicy, next_rate, outcome
from harness.records.store import load_results
from tests.conftest import app_in_thread, run_cli

POLICY = SearchPolicy(start_rps=4, target_pct=90, precision=0.1, max_probes=10)


def _probe(rate: float, passed: bool) -> SloProbe:
    return SloProbe(rate_rps=rate, requests=10, good=10 if passed else 0, attainment_pct=100 if passed else 0,
                    passed=passed)


def test_the_search_doubles_halves_then_bisects():
    assert next_rate(POLICY, []) == 4
    assert next_rate(POLICY, [_probe(4, True)]) == 8  # passing: double
    assert next_rate(POLICY, [_probe(4, False)]) == 2  # failing: halve
    assert next_rate(POLICY, [_probe(4, True), _probe(8, False)]) == pytest.approx(32 ** 0.5)  # geometric middle
    done = [_probe(4, True), _probe(4.3, False)]
    assert next_rate(POLICY, done) is None  # within 10%
    # noise: a pass above the lowest failure does not move the bracket
    noisy = [_probe(4, True), _probe(8, False), _probe(16, True)]
    result = outcome(POLICY, {"e2e_ms": 1}, noisy)
    assert (result.max_rate_rps, result.first_failing_rps, result.chosen_probe) == (4, 8, 0)
    assert next_rate(SearchPolicy(4, 90, 0.1, 2), [_probe(4, True), _probe(8, True)]) is None  # probes spent


def _capacity_app() -> FastAPI:
    app = FastAPI()
    busy = asyncio.Lock()

    @app.get("/v3/models")
    async def models():
        return {"object": "list", "data": [{"id": "m", "object": "model"}]}

    @app.post("/v3/completions")
    async def completions(request: Request):
        body = await request.json()
        usage = {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": 4,
                 "total_tokens": len(body["prompt"].split()) + 4}
        if not body.get("stream"):
            return {"choices": [{"index": 0, "text": "a b c d"}], "usage": usage}

        async def events():
            async with busy:  # one request at a time: the server's capacity is 1 / 50 ms
                await asyncio.sleep(0.05)
            for k in range(4):
                yield "data: " + json.dumps({"choices": [{"index": 0, "text": f"t{k} "}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.mark.integration
def test_a_search_finds_the_rate_the_server_can_hold(tmp_path):
    with app_in_thread(_capacity_app()) as base:
        suite = {"name": "slo", "server": f"{base}/v3", "models": [{"name": "m", "source": "served"}],
                 "prompts": {"input_tokens": [16], "style": "words"}, "generation": {"max_new_tokens": 4},
                 "warmup": 2, "timeout_s": 300, "slo": {"e2e_ms": 250},
                 "scenarios": [{"name": "search", "kind": "serving", "api": "completions", "rate": 8.0,
                                "requests": 30, "slo_search": True, "search_precision": 0.25, "search_probes": 6}]}
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
        proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [c] = load_results(tmp_path / "run").cells
    s = c.slo_search
    assert s is not None and len(s.probes) >= 3, s
    assert [p.rate_rps for p in s.probes[:2]] == [8.0, 16.0]  # from the first rate, doubled while it passes
    # 20 req/s is the server's ceiling: the limit found is below it and bracketed by a failing rate
    # (a finite load of 30 requests can hold a little above it before its queue breaks the SLO)
    assert s.max_rate_rps is not None and 8 <= s.max_rate_rps < 26 and s.first_failing_rps is not None
    assert s.first_failing_rps > s.max_rate_rps
    # the cell's measured samples are the chosen load's, the other loads' are kept as warm-up
    measured = [x for x in c.samples if not x.warmup]
    assert measured and {x.iteration for x in measured} == {s.chosen_probe}
    assert [b.iteration for b in c.batches if not b.warmup] == [s.chosen_probe]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "### SLO search" in report and f"{s.max_rate_rps:.2f}" in report


def test_slo_search_needs_an_slo_and_a_rate(tmp_path):
    base = {"name": "slo", "server": "http://127.0.0.1:9/v3", "models": [{"name": "m", "source": "served"}],
            "scenarios": [{"name": "search", "kind": "serving", "rate": 4.0, "slo_search": True}]}
    for suite, says in ((base, "needs the suite's `slo:`"),
                        ({**base, "slo": {"e2e_ms": 100},
                          "scenarios": [{"name": "s", "kind": "serving", "slo_search": True}]}, "give `rate`")):
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
        proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"))
        assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_search_beside_repeated_loads_runs_once_and_says_so(tmp_path):
    from harness.plan.suite import expand, load_suite

    suite = {"name": "slo", "server": "http://127.0.0.1:9/v3", "models": [{"name": "m", "source": "served"}],
             "slo": {"ttft_ms": 500}, "processes": 3,
             "scenarios": [{"name": "load", "kind": "serving", "concurrency": 2},
                           {"name": "search", "kind": "serving", "rate": 4.0, "slo_search": True}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    loaded, _ = load_suite(tmp_path / "suite.yaml")
    cells = {c.scenario.name: c for c in expand(loaded, tmp_path / "suite.yaml")}
    assert cells["search"].processes == 1 and cells["load"].processes == 3
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--list")
    assert proc.returncode == 0 and "scenarios.search: slo_search runs one search per cell" in proc.stderr
