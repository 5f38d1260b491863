"""A serving suite pointed at a running server needs no local model: the tokenizer comes from a folder or from
the server's usage counts, and the cells and reports name the endpoint, not a local precision or device."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import yaml

from harness.host import free_loopback_port
from harness.store import load_results
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def remote(model_cache):
    """`harness serve` started by the test, as a deployment the suite knows only by its URL."""
    from harness.models.prepare import prepare_model
    from harness.schema import CompressionSpec

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
])
def test_a_bad_server_url_is_one_line(tmp_path, field, value, says):
    suite = _suite("http://127.0.0.1:1/v3")
    suite[field] = value
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and says in proc.stderr and field in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_tokenizer_folder_fails_the_cell_in_one_line(tmp_path, remote):
    url, _ = remote
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(_suite(url, tokenizer="./no-such-tokenizer")))
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "run"), cache=tmp_path / "c")
    assert proc.returncode == 1
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "failed" and "no-such-tokenizer does not exist" in (c.error or ""), c.error


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
    assert proc.returncode == 1
    [c] = load_results(tmp_path / "run").cells
    assert c.status == "failed" and f"the server at http://127.0.0.1:{port}/v3 cannot be reached" in (c.error or "")
