"""`harness run --cluster` on a real Ray cluster on loopback: a head and two worker nodes started here with
`ray start` (labels host=w1/rack=a and host=w2/rack=b), suites spread over them and run on each of them, a node
killed during a cell, a killed and resumed submitter, PostgreSQL as the central history."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from harness.core.host import free_loopback_port as free_port
from harness.execute.cluster.local import LocalCluster, ray_env
from tests.conftest import ROOT, run_cli


def _env(cache: Path) -> dict[str, str]:
    env = ray_env(cache)  # each node's own cache: the tests' prepared models
    env.setdefault("HARNESS_HISTORY_URL", f"sqlite:///{ROOT / '.cache' / 'test-history.sqlite'}")
    env.setdefault("COLUMNS", "200")
    return env


@pytest.fixture(scope="module")
def cluster(model_cache: Path) -> Iterator[LocalCluster]:
    if not (Path(sys.executable).parent / "ray").exists():
        pytest.skip(f"Ray is not installed beside {sys.executable} (pip install -e '.[cluster]')")
    c = LocalCluster(env=_env(model_cache))
    try:
        c.start_head()
        c.start_worker("w1", {"host": "w1", "rack": "a"})
        c.start_worker("w2", {"host": "w2", "rack": "b"})
    except (OSError, RuntimeError) as e:
        c.stop()
        pytest.skip(f"a local Ray cluster cannot start here: {e}")
    yield c
    c.stop()


def _suite(**over: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "name": "cluster", "models": [{"name": "tiny", "source": "synthetic:tiny"}], "precisions": ["fp16"],
        "devices": ["CPU"], "prompts": {"input_tokens": [16]}, "generation": {"max_new_tokens": 8, "ignore_eos": True},
        "warmup": 1, "iterations": 2, "load_twice": False, "validation_prompts": 0, "timeout_s": 120,
        "scenarios": [{"name": "greedy", "kind": "generate"},
                      {"name": "lookup", "kind": "prompt_lookup", "num_assistant_tokens": 3, "max_ngram_size": 3}],
    }
    suite.update(over)
    return suite


def _harness(cluster: LocalCluster, folder: Path, suite: dict[str, Any], *args: str,
             timeout: float = 600) -> tuple[subprocess.CompletedProcess, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    run_dir = folder / "run"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--out", str(run_dir),
                           "--cluster", cluster.address, *args], capture_output=True, text=True,
                          timeout=timeout, env=cluster.env, cwd=ROOT)
    return proc, run_dir


def _results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "cells.jsonl").read_text().splitlines() if line.strip()]


def test_spread_runs_cells_on_both_nodes_and_records_in_postgres(cluster: LocalCluster, tmp_path: Path,
                                                                 pg_url: str) -> None:
    suite = _suite(precisions=["fp16", "int8"], devices=["CPU", "GPU"])
    proc, run_dir = _harness(cluster, tmp_path, suite, "--history", pg_url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = _results(run_dir)
    # a device no node has: one line per cell, recorded as skipped, and the run goes on
    gpu = [c for c in res["cells"] if c["spec"]["device"] == "GPU"]
    assert len(gpu) == 4 and {c["status"] for c in gpu} == {"skipped"}
    assert {c["error"] for c in gpu} == {"no node in the cluster has device GPU (nodes: w1: CPU; w2: CPU)"}
    res["cells"] = [c for c in res["cells"] if c["spec"]["device"] == "CPU"]
    assert res["metadata"]["cluster"]["mode"] == "spread"
    assert {n["name"] for n in res["metadata"]["cluster"]["nodes"]} == {"w1", "w2"}
    # the head offers no CPU: left out with its reason, and no cell ran there
    assert any("no CPU" in why for why in res["metadata"]["cluster"]["left_out"].values())
    cells = res["cells"]
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells), [c["error"] for c in cells]
    ran_on = {c["node"]["name"] for c in cells}
    assert ran_on == {"w1", "w2"}, ran_on
    for c in cells:
        node = c["node"]
        assert node["labels"]["rack"] in ("a", "b") and node["devices"][0]["name"] == "CPU"
        assert node["host"]["hostname"] == socket.gethostname() and node["versions"]["openvino-genai"]
        assert node["cache"] == f"node-local {cluster.env['HARNESS_CACHE_DIR']}"
        assert c["summaries"]["tpot_ms"]["n"] == 2
        # each node measured its own memory bandwidth; plain decoding cells get their roofline share from it
        assert c["cell_values"]["memory_bandwidth_gbs"] == node["host"]["memory_bandwidth"]["triad_gbs"] > 0
        if c["spec"]["scenario"]["kind"] == "generate":  # tiny's weights fit in the cache: above 100% it has a note
            assert c["summaries"].get("roofline_pct", {}).get("median", 0) > 0 \
                or any(n.startswith("roofline % left out") for n in c["notes"])
    assert "Ray cluster" in (run_dir / "report.md").read_text()
    # the central history holds the run and, per cell metric, the node it was measured on
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        hosts = dict(conn.execute(text("SELECT cell_key, host FROM cell_metrics WHERE metric = 'tpot_ms'")).all())
        stored = conn.execute(text("SELECT results_json FROM runs")).scalar_one()
    engine.dispose()
    assert hosts == {c["key"]: c["node"]["name"] for c in cells}
    assert {c["node"]["name"] for c in json.loads(stored)["cells"] if c["node"]} == {"w1", "w2"}


def test_a_serving_cells_exports_come_back_from_its_node(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(server="local", scenarios=[{"name": "load", "kind": "serving", "api": "completions",
                                                "concurrency": 1, "requests": 3}])
    proc, run_dir = _harness(cluster, tmp_path, suite)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [cell] = _results(run_dir)["cells"]
    assert cell["status"] == "ok" and cell["node"]["name"] in ("w1", "w2"), cell["error"]
    # the submitter's run directory holds them, as after a local run (the node wrote them in its own folder)
    [requests] = list((run_dir / "requests").glob("*.jsonl"))
    [payloads] = list((run_dir / "payloads").glob("*.jsonl"))
    rows = [json.loads(line) for line in requests.read_text().splitlines()]
    assert [r["warmup"] for r in rows] == [True, False, False, False] and all(r["ok"] for r in rows)
    assert len(payloads.read_text().splitlines()) == 4


def test_each_node_qualifies_every_node_with_the_host_in_the_key(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(scenarios=[{"name": "greedy", "kind": "generate"}],
                   gates=[{"metric": "tpot_ms", "stat": "median", "max": 10000}])
    shared = cluster.env["HARNESS_CACHE_DIR"]  # on a lab: a path every node mounts
    proc, run_dir = _harness(cluster, tmp_path / "all", suite, "--each-node", "--shared-cache", shared)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = _results(run_dir)["cells"]
    assert sorted(c["key"].rsplit("/", 1)[1] for c in cells) == ["host=w1", "host=w2"]
    assert all(c["node"]["name"] == c["spec"]["host"] for c in cells)
    assert {c["node"]["cache"] for c in cells} == {f"shared {shared}"}
    # w1 and w2 are one machine here: their cells took turns, never measured side by side
    spans = sorted((c["started_at"], c["finished_at"]) for c in cells)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans
    assert _results(run_dir)["metadata"]["cluster"]["shared_cache"] == shared
    report = run_cli("report", str(run_dir), "--kind", "qualification").stdout
    assert "## w1 · CPU" in report and "## w2 · CPU" in report and report.count("**PASS**") == 2, report
    assert "Node w1:" in report and "Node w2:" in report and "GB/s triad" in report and "roofline %" in report
    release = run_cli("report", str(run_dir), "--kind", "release").stdout
    assert "w1 · CPU" in release and "w2 · CPU" in release
    # --nodes picks nodes by label: rack=b is w2 only
    proc, run_dir = _harness(cluster, tmp_path / "rack-b", suite, "--each-node", "--nodes", "rack=b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [c["key"].rsplit("/", 1)[1] for c in _results(run_dir)["cells"]] == ["host=w2"]
    assert "does not match --nodes" in proc.stderr


def test_cluster_problems_are_one_line_and_exit_2(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(scenarios=[{"name": "greedy", "kind": "generate"}])
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    closed = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "r1"), "--cluster", closed)
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    assert proc.stderr.count("\n") == 1 and "--cluster: the Ray cluster cannot be reached" in proc.stderr, proc.stderr
    assert closed in proc.stderr
    assert "Traceback" not in proc.stderr
    # a port that answers but is no Ray head: ray.init would retry for minutes; the harness gives up in time
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.5)
            while not stop.is_set():
                try:
                    listener.accept()[0].close()
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        t0 = time.monotonic()
        env = {**cluster.env, "HARNESS_RAY_CONNECT_TIMEOUT_S": "5"}
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "suite.yaml"), "--out",
                               str(tmp_path / "r2"), "--cluster", f"127.0.0.1:{listener.getsockname()[1]}"],
                              capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        stop.set()
    assert proc.returncode == 2 and time.monotonic() - t0 < 60, proc.stderr[-2000:]
    assert "no Ray cluster answered within 5 s" in proc.stderr
    # a port out of range is a malformed address; an IPv6 head in brackets is tried as such
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--cluster", "127.0.0.1:99999")
    assert proc.returncode == 2 and "a Ray cluster address is HOST:PORT" in proc.stderr, proc.stderr
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--cluster", f"[::1]:{free_port()}")
    assert proc.returncode == 2 and "cannot be reached" in proc.stderr and "Name or service" not in proc.stderr
    # options that only mean something on a cluster
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--each-node")
    assert proc.returncode == 2 and "go with --cluster" in proc.stderr
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--cluster", cluster.address, "--nodes", "rack")
    assert proc.returncode == 2 and "--nodes: expected LABEL=VALUE" in proc.stderr
    # no node matches: one line naming what was left out, nothing run
    proc, _ = _harness(cluster, tmp_path / "none", suite, "--nodes", "rack=z")
    assert proc.returncode == 2 and "no node can run cells" in proc.stderr and "does not match --nodes" in proc.stderr


def test_a_node_whose_python_lacks_a_package_is_left_out(cluster: LocalCluster, tmp_path: Path) -> None:
    broken = tmp_path / "shadow" / "openvino_genai"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('openvino_genai is not installed on this node')\n")
    cluster.start_worker("w3", {"host": "w3", "rack": "c"},
                         extra_env={"PYTHONPATH": f"{broken.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    try:
        suite = _suite(scenarios=[{"name": "greedy", "kind": "generate"}])
        proc, _ = _harness(cluster, tmp_path / "only-w3", suite, "--nodes", "rack=c")
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert ("node w3 left out: its Python cannot import openvino_genai (ImportError: openvino_genai is not "
                "installed on this node)") in proc.stderr
        proc, run_dir = _harness(cluster, tmp_path / "all", suite, "--each-node")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert {c["node"]["name"] for c in _results(run_dir)["cells"]} == {"w1", "w2"}
        assert "w3" in _results(run_dir)["metadata"]["cluster"]["left_out"]
    finally:
        cluster.kill("w3")


def test_a_cell_over_its_timeout_is_recorded_and_the_run_goes_on(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(timeout_s=8)
    hang = "tiny/fp16/CPU/greedy/in16-out8"
    proc, run_dir = _harness(cluster, tmp_path, suite, "--fault", f"{hang}=hang")
    assert proc.returncode == 1
    by_key = {c["key"]: c for c in _results(run_dir)["cells"]}
    assert by_key[hang]["status"] == "timeout" and "timeout of 8 s" in by_key[hang]["error"]
    assert [c["status"] for k, c in by_key.items() if k != hang] == ["ok"]


def _wait_for(path: Path, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, path.read_text()[-2000:]
        time.sleep(0.2)


def _start_run(cluster: LocalCluster, folder: Path, suite: dict[str, Any], *args: str) -> tuple[subprocess.Popen, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    err = open(folder / "stderr.txt", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--out",
                             str(folder / "run"), "--cluster", cluster.address, *args], stdout=subprocess.DEVNULL,
                            stderr=err, env=cluster.env, cwd=ROOT)
    return proc, folder / "stderr.txt"


def test_killed_submitter_resumes_without_losing_or_repeating_cells(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(min_measure_s=3)
    proc, err = _start_run(cluster, tmp_path, suite)
    run_dir = tmp_path / "run"
    deadline = time.monotonic() + 300
    while not (run_dir / "cells.jsonl").exists() or not (run_dir / "cells.jsonl").read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
        time.sleep(0.2)
    proc.kill()  # the submitter dies; Ray ends the tasks it owned
    proc.wait()
    finished = [r["key"] for r in _records(run_dir)]
    assert len(finished) == 1
    # resuming a cluster run locally would place its cells differently: refused, in one line
    local = run_cli("run", "--resume", str(run_dir))
    assert local.returncode == 2 and "resume it with --cluster ADDRESS" in local.stderr, local.stderr
    resumed = run_cli("run", "--resume", str(run_dir), "--cluster", cluster.address, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resume: {len(finished)} finished cells kept" in resumed.stderr
    keys = [r["key"] for r in _records(run_dir)]
    assert len(keys) == len(set(keys)) == 2, keys  # nothing repeated, nothing missing
    assert keys[:1] == finished
    assert [c["status"] for c in _results(run_dir)["cells"]] == ["ok", "ok"]


def test_a_node_killed_during_a_cell_retries_it_on_the_other_node(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(min_measure_s=5)
    proc, err = _start_run(cluster, tmp_path, suite)
    try:
        _wait_for(err, "on node w1", proc, 300)
        time.sleep(3)  # inside the cell: preparing or measuring
        cluster.kill("w1")
        assert proc.wait(timeout=600) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        if "w1" not in cluster.procs:
            cluster.start_worker("w1", {"host": "w1", "rack": "a"})
    cells = _results(tmp_path / "run")["cells"]
    assert [c["status"] for c in cells] == ["ok", "ok"], [c["error"] for c in cells]
    retried = [c for c in cells if any("retried on node w2 after: node w1 failed during the cell" in n
                                       for n in c["notes"])]
    assert len(retried) == 1 and retried[0]["node"]["name"] == "w2", [c["notes"] for c in cells]


def test_a_node_killed_in_an_each_node_run_fails_its_own_cells_only(cluster: LocalCluster, tmp_path: Path) -> None:
    suite = _suite(min_measure_s=3, scenarios=[{"name": "a", "kind": "generate"}, {"name": "b", "kind": "generate"}])
    proc, err = _start_run(cluster, tmp_path, suite, "--each-node")
    try:
        _wait_for(err, "on node w1", proc, 300)
        time.sleep(2)
        cluster.kill("w1")
        assert proc.wait(timeout=600) == 1, err.read_text()[-3000:]  # cells failed: exit 1
    finally:
        if proc.poll() is None:
            proc.kill()
        if "w1" not in cluster.procs:
            cluster.start_worker("w1", {"host": "w1", "rack": "a"})
    cells = {c["key"].split("/")[3] + "@" + c["spec"]["host"]: c for c in _results(tmp_path / "run")["cells"]}
    assert {k: c["status"] for k, c in cells.items()} == {"a@w1": "failed", "a@w2": "ok", "b@w1": "failed",
                                                          "b@w2": "ok"}
    # the cell it died under, and the one it never got to: a cell of w1 runs nowhere else
    assert cells["a@w1"]["error"].startswith("node w1 failed during the cell (NodeDiedError: ")
    assert cells["a@w1"]["error"].endswith("; no other live node can run it")
    assert cells["b@w1"]["error"] == "node w1 died before the cell could run there"


def test_tune_runs_one_study_per_node(cluster: LocalCluster, tmp_path: Path) -> None:
    """`harness tune --cluster`: each node tunes the cell in its own study (its name part of the question), the
    nodes of one machine in turn; each node's result comes back to the submitter's folder."""
    folder = tmp_path / "tune"
    folder.mkdir()
    (folder / "suite.yaml").write_text(yaml.safe_dump(_suite(scenarios=[{"name": "greedy", "kind": "generate"}])))
    db = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    args = [sys.executable, "-m", "harness", "tune", str(folder / "suite.yaml"), "--knob",
            "properties.KV_CACHE_PRECISION=null,u8", "--no-proof", "--out", str(folder / "out"), "--db", db,
            "--cluster", cluster.address]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=cluster.env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {n: json.loads((folder / "out" / n / "tune.json").read_text()) for n in ("w1", "w2")}
    assert {r["host"] for r in results.values()} == {"w1", "w2"}
    assert results["w1"]["study"] != results["w2"]["study"]
    assert all(len(r["trials"]) == 2 and r["trials"][0]["status"] == "ok" for r in results.values())
    spans = sorted((r["started_at"], r["finished_at"]) for r in results.values())
    assert spans[1][0] >= spans[0][1], spans  # one machine: the studies took turns
    assert "w1: trial 1: properties.KV_CACHE_PRECISION=u8: ok" in proc.stderr  # the nodes' progress, relayed
    # the same command again: both studies are read back, nothing is measured again
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, env=cluster.env, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resuming study") == 2 and "trial 2" not in again.stderr, again.stderr[-3000:]
    for n, first in results.items():
        read_back = json.loads((folder / "out" / n / "tune.json").read_text())
        assert [t["started_at"] for t in read_back["trials"]] == [t["started_at"] for t in first["trials"]]
