"""A serving suite pointed at a running server needs no local model: the tokenizer comes from a folder or from
the server's usage counts, and the cells and reports name the endpoint, not a local precision or device."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from harness.core.host import free_loopback_port
from harness.records.store import load_results
from tests.conftest import app_in_thread, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def remote(model_cache):
    """`harness serve` started by the test, as a deployment the suite knows only by its URL."""
    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model

    model = prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path
    port = free_loopback_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", str(model), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("harness serve did not come up")
        yield f"http://127.0.0.1:{port}/v3", model
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _suite(url: str, **scenario) -> dict:
    return {"name": "remote", "server": url,
            # a source that cannot be prepared: the run must not try
            "models": [{"name": "tiny", "source": "/nonexistent/model-dir"}],
            "precisions": ["fp16", "int8"], "devices": ["CPU", "AUTO"],
            "prompts": {"input_tokens": [48], "style": "words"}, "generation": {"max_new_tokens": 8},
            "warmup": 1, "iterations": 1, "timeout_s": 120,
            "scenarios": [{"name": "load", "kind": "serving", "api": "completions", "concurrency": 2, "requests": 4,
                           **scenario}]}


def test_a_remote_server_needs_no_local_model(tmp_path, remote, model_cache):
    url, model = remote
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(url)))
    empty = tmp_path / "empty-cache"
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=empty)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not any(empty.rglob("*.xml"))  # nothing was built or exported
    [c] = load_results(tmp_path / "run").cells  # one cell, not one per local precision x device
    host = url.split("//")[1].split("/")[0]
    assert c.status == "ok" and c.key == f"tiny/server={host}/load[api=completions,concurrency=2,requests=4]/in48-out8"
    assert (c.spec.precision, c.spec.device) == ("served", "remote")
    assert not {"model_size_mb", "export_s", "load_cold_ms"} & set(c.cell_values)  # nothing local measured
    assert c.server is not None and c.server.name == "harness serve" and c.server.endpoint == url
    assert c.server.served_model == model.name and c.server.tokenizer == "usage"
    # lengths calibrated on the server's own counts: near the 48 asked for
    assert all(abs(s.input_tokens - 48) <= 8 for s in c.samples), [s.input_tokens for s in c.samples]
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"server={host}" in report and f"| {url} | {model.name} | harness serve 0.1.0 | uvicorn |" in report
    assert "### Load, memory and size" not in report  # nothing was loaded here: no empty table either


def test_a_tokenizer_folder_makes_exact_lengths(tmp_path, remote, monkeypatch):
    url, model = remote
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(url, tokenizer=str(model))))
    monkeypatch.setenv("HARNESS_HISTORY_URL", "")  # the default: the history goes beside the --out run directory
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "history.sqlite").is_file() and f"{tmp_path / 'history.sqlite'}" in proc.stderr
    [c] = load_results(tmp_path / "run").cells
    assert c.server is not None and c.server.tokenizer == str(model)
    bos = 1  # the server's completions count the BOS token it adds
    assert {s.input_tokens for s in c.samples} == {48 + bos}


@pytest.mark.parametrize(("field", "value", "says"), [
    ("server", "ftp://host/v3", "http(s) base URL"),
    ("server", "http://user:pw@host:8000/v3", "without credentials"),
    ("server", "http://host:99999/v3", "bad port"),
    ("server", "http://my host:8000/v3", "no spaces"),
    ("server", "localhost:8000", "http(s) base URL"),
    ("api_key_env", "MY KEY", "should match pattern"),
    ("served_model", "", "at least 1 character"),
    ("enable_prefix_caching", True, "configures harness serve"),
])
def test_a_bad_remote_suite_value_is_one_line(tmp_path, field, value, says):
    suite = _suite("http://127.0.0.1:1/v3")
    if field == "server":
        suite[field] = value
    else:
        suite["scenarios"][0][field] = value
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and says in proc.stderr and field in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("tokenizer, says", [("./no-such-tokenizer", "no tokenizer folder at"),
                                              ("~/no/such/tokenizer", "no tokenizer folder at"),
                                              ("suite.yaml", "is a file; a tokenizer is a folder")])
def test_a_tokenizer_path_that_is_no_folder_is_one_line(tmp_path, tokenizer, says):
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite("http://127.0.0.1:1/v3", tokenizer=tokenizer)))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and says in proc.stderr and "tokenizer" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_tokenizer_name_nobody_has_fails_the_cell_in_one_line(tmp_path, remote):
    url, _ = remote
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(url, tokenizer="no-org/no-such-tokenizer")))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 3  # its only cell failed: nothing judged
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "failed" and "no-org/no-such-tokenizer" in (c.error or ""), c.error
    assert len((c.error or "").splitlines()) == 1


def test_repeated_loads_give_a_confidence_interval(tmp_path, remote):
    url, _ = remote
    suite = _suite(url) | {"processes": 3}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [c] = load_results(tmp_path / "run").cells
    assert sorted(b.process for b in c.batches) == [0, 1, 2]  # three separate loads
    from reports.repeated_loads import repeated_loads

    figs = {f.label: f for f in repeated_loads(c)}
    rps = figs["req/s"]
    assert rps.per_load == [b.values["request_rps"][0] for b in sorted(c.batches, key=lambda b: b.process)]
    assert rps.low < rps.mean < rps.high and min(rps.per_load) <= rps.mean <= max(rps.per_load)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "### Repeated loads" in report and f"| {c.key.replace('|', '')}" in report.replace("`", "")


def test_a_server_nobody_answers_fails_the_cell_in_one_line(tmp_path):
    port = free_loopback_port()  # nothing listens there
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(f"http://127.0.0.1:{port}/v3")))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 3  # its only cell failed: nothing judged
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "failed" and f"the server at http://127.0.0.1:{port}/v3 cannot be reached" in (c.error or "")


def _refusing_app(probe_ok: bool):
    """Not an OpenAI endpoint (an HTML error page for every POST), or one that counts a one-token probe's prompt
    and then fails every streamed request with a JSON error."""
    app = FastAPI()

    @app.post("/v3/{path:path}")
    async def answer(request: Request):
        body = await request.json()
        if probe_ok and not body.get("stream"):
            return JSONResponse({"choices": [{"text": "x"}], "usage": {"prompt_tokens": len(body["prompt"]) // 4 + 1,
                                                                        "completion_tokens": 1}})
        if probe_ok:
            return JSONResponse({"error": {"message": "KV cache exhausted", "type": "server_error"}}, 503)
        return HTMLResponse("<html><head><title>404</title><style>p{}</style></head><body><h1>Not Found</h1>"
                            "<p>nginx</p></body></html>", 404)

    return app


@pytest.mark.parametrize("probe_ok, says", [
    (False, "was answered HTTP 404: Not Found nginx"),
    (True, "ServerError: all 4 measured requests failed; first: request 0: http_5xx: HTTP 503: KV cache exhausted")])
def test_a_server_that_refuses_every_request_fails_the_cell_in_one_line(tmp_path, probe_ok, says):
    with app_in_thread(_refusing_app(probe_ok)) as url:
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(f"{url}/v3")))
        proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 3  # its only cell failed: nothing judged
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "failed" and says in (c.error or "") and len((c.error or "").splitlines()) == 1, c.error
    if probe_ok:  # what the load measured is kept: its errors
        assert c.check_outputs.serving_errors.counts == {"http_5xx": 4}
        assert c.cell_values["error_rate_pct"] == 100.0


@pytest.mark.parametrize("style", ["code", "words"])
def test_usage_calibration_finds_the_servers_overhead_and_rate(style):
    from harness.load.prompt_tokenizer import calibrate, usage_prompt

    def count(text: str) -> int:  # a server that wraps every prompt in 12 tokens and counts 3 characters a token
        return 12 + max(1, round(len(text) / 3))

    cal = calibrate(count, style)
    assert cal is not None and cal.overhead == pytest.approx(12, abs=0.5) and cal.per_char == pytest.approx(1 / 3, rel=0.02)
    for tokens in (20, 64, 500):
        assert all(abs(count(usage_prompt(i, tokens, cal, style)) - tokens) <= 0.05 * tokens + 2 for i in range(6))
    assert calibrate(lambda text: None, style) is None  # a server without usage: lengths stay nominal
