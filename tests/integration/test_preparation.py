"""A run prepares each model once, outside the cells' time limits, and a failed preparation fails every cell that
needs it without being attempted again (harness/execute/preparation.py, runner.Preparations). Workers are stand-ins."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.events import Done, Error, Event, Log, Phase, Prepared, SampleEvent
from harness.core.schema import CompressionSpec
from harness.execute import runner, worker_process
from harness.execute.preparation import FailedPreparations, PreparationFailure, PrepareKey, prepare_keys
from harness.execute.worker import WorkerTask
from harness.records.store import load_cells
from tests import factories

GROUP_ERROR = ("ModelPreparationError: optimum-cli export of 'tiny' to int4 failed (exit 1): ValueError: Channel "
               "size 256 should be divisible by size of group 100")


def _cells() -> list:
    """Five cells on one int4 IR (as in the issue), two fp16 cells, a speculative one with its draft."""
    cells = []
    for n in (8, 16, 32, 64):
        c = factories.spec(precision="int4", key=f"tiny/int4/CPU/greedy/in{n}")
        c.compression = CompressionSpec(group_size=100)
        cells.append(c)
    lookup = factories.spec("prompt_lookup", precision="int4", key="tiny/int4/CPU/lookup/in8")
    lookup.compression = CompressionSpec(group_size=100)
    cells.append(lookup)
    cells += [factories.spec(key="tiny/fp16/CPU/greedy/in8"), factories.spec("speculative", key="tiny/fp16/CPU/spec/in8")]
    for c in cells:
        c.prepare_timeout_s = 30
    return cells


class FakeWorkers:
    """Stands in for `worker_process.run_worker`: records every worker asked for; an int4 export fails."""

    def __init__(self, tmp_path: Path, fail_int4: bool = True) -> None:
        self.tmp_path, self.fail_int4 = tmp_path, fail_int4
        self.prepared: list[PrepareKey] = []
        self.limits: list[tuple[float, bool]] = []
        self.measured: list[str] = []

    def __call__(self, task: WorkerTask, workdir, timeout_s, cell, progress, env=None, since_progress=False):
        if task.mode == "prepare":
            assert task.prepare is not None, "a run prepares models, not cells"
            self.prepared.append(task.prepare)
            self.limits.append((timeout_s, since_progress))
            if task.prepare.precision == "int4" and self.fail_int4:
                return [Phase(phase="prepare"), Error(error=GROUP_ERROR)], "failed", GROUP_ERROR
            model = self.tmp_path / task.prepare.source.replace(":", "_")
            return [Phase(phase="prepare"), Prepared(model_dir=str(model), model_size_mb=1.0, weight_bytes_per_token=4096),
                    Done()], "ok", None
        self.measured.append(cell.key)
        return [SampleEvent(sample=factories.sample(0)), Done()], "ok", None


class Seen(runner.ProgressSink):
    def __init__(self) -> None:
        self.started: list[PrepareKey] = []
        self.finished: list[runner.Preparation] = []

    def preparation_started(self, key):
        self.started.append(key)

    def preparation_finished(self, preparation):
        self.finished.append(preparation)


def _run(cells, tmp_path, retry_failed=False, progress=None):
    opts = runner.RunOptions(cache_dir=tmp_path / "cache", available_devices=["CPU"])
    return runner.run_cells(cells, tmp_path / "run", factories.run([]).metadata, opts, progress or runner.ProgressSink(),
                            retry_failed=retry_failed)


def test_each_model_is_prepared_once_for_all_the_cells_that_need_it(tmp_path, monkeypatch):
    workers = FakeWorkers(tmp_path, fail_int4=False)
    monkeypatch.setattr(worker_process, "run_worker", workers)
    seen = Seen()
    res = _run(_cells(), tmp_path, progress=seen)
    assert all(c.status == "ok" for c in res.cells), [(c.key, c.error) for c in res.cells]
    # 7 cells, 3 models: tiny int4 (5 cells), tiny fp16 (2 cells, one of them speculative), its draft
    assert [(k.source, k.precision) for k in workers.prepared] == [
        ("synthetic:tiny", "int4"), ("synthetic:tiny", "fp16"), ("synthetic:tiny-draft", "fp16")]
    assert seen.started == workers.prepared and [p.status for p in seen.finished] == ["ok"] * 3
    # the cells' prepare timeout applies to silence, not to the whole build (a training build reports progress)
    assert workers.limits == [(30, True)] * 3
    by_key = {c.key: c for c in res.cells}
    spec = by_key["tiny/fp16/CPU/spec/in8"]
    assert spec.model_dir == str(tmp_path / "synthetic_tiny")
    # a preparation reads weight bytes for any model; only kinds with a memory roofline keep the figure
    assert by_key["tiny/fp16/CPU/greedy/in8"].cell_values["weight_bytes_per_token"] == pytest.approx(0.004096)
    assert "weight_bytes_per_token" not in spec.cell_values
    assert "weight_bytes_per_token" not in by_key["tiny/int4/CPU/lookup/in8"].cell_values
    assert sorted(workers.measured) == sorted(by_key)


def test_a_failed_preparation_fails_every_cell_needing_it_once_and_retry_failed_tries_again(tmp_path, monkeypatch):
    workers = FakeWorkers(tmp_path)
    monkeypatch.setattr(worker_process, "run_worker", workers)
    cells = _cells()
    res = _run(cells, tmp_path)
    int4 = [c for c in res.cells if c.spec.precision == "int4"]
    assert len(int4) == 5 and [k.precision for k in workers.prepared].count("int4") == 1
    for c in int4:  # the same one-line error for each, and why it was not attempted again
        assert (c.status, c.error) == ("failed", GROUP_ERROR)
        [note] = [n for n in c.notes if n.startswith("not retried")]
        assert "synthetic:tiny int4 (group 100, ratio 1)" in note and "--retry-failed" in note
        assert "work/prepare/" in note
    assert not any("int4" in k for k in workers.measured)
    assert all(c.status == "ok" for c in res.cells if c.spec.precision == "fp16")
    # a plain resume runs nothing; --retry-failed attempts the preparation again, once for the five cells
    _run(cells, tmp_path)
    assert len(workers.prepared) == 3
    workers.fail_int4 = False
    again = _run(cells, tmp_path, retry_failed=True)
    assert [(k.source, k.precision) for k in workers.prepared[3:]] == [("synthetic:tiny", "int4")]
    assert all(c.status == "ok" for c in again.cells)
    assert len(load_cells(tmp_path / "run")) == 7 + 5


def test_a_speculative_cell_whose_model_failed_does_not_prepare_its_draft(tmp_path, monkeypatch):
    workers = FakeWorkers(tmp_path)
    monkeypatch.setattr(worker_process, "run_worker", workers)
    spec = factories.spec("speculative", precision="int4")
    res = _run([spec], tmp_path)
    assert [k.source for k in workers.prepared] == ["synthetic:tiny"]
    assert res.cells[0].error == GROUP_ERROR


def test_failures_recorded_for_one_cell_apply_to_every_cell_needing_the_model():
    """The cluster's record: a failure of the draft fails a cell using that model as its draft, not one using it
    as another precision; the role is the one the asking cell gives the model."""
    failed = FailedPreparations()
    spec = factories.spec("speculative")
    failed.record(spec, PreparationFailure(role="draft", status="failed", error="boom", what="d", log="l", node="w1"))
    other = factories.spec("speculative", key="other")
    assert failed.get(other) is not None and failed.get(other).error == "boom"
    assert failed.get(factories.spec()) is None  # tiny fp16 itself was never prepared, so never failed
    draft_as_model = factories.spec()
    draft_as_model.model.source = "synthetic:tiny-draft"
    assert failed.get(draft_as_model).role == "model"
    assert failed.get(factories.spec("speculative", precision="int8")) is None


def test_keys_follow_what_the_prepare_worker_builds():
    greedy, spec = factories.spec(), factories.spec("speculative")
    assert prepare_keys(greedy) == {"model": PrepareKey("synthetic:tiny", "fp16", CompressionSpec())}
    assert prepare_keys(spec)["draft"] == PrepareKey("synthetic:tiny-draft", "fp16", CompressionSpec())
    int4 = factories.spec(precision="int4")
    int4.compression = CompressionSpec(group_size=64)
    assert prepare_keys(int4)["model"] != PrepareKey("synthetic:tiny", "int4", CompressionSpec())
    pinned = factories.spec()
    pinned.host = "w1"  # --each-node: every node prepares into its own cache
    assert prepare_keys(pinned)["model"] != prepare_keys(greedy)["model"]


def _stand_in(tmp_path: Path, body: str) -> SimpleNamespace:
    """An interpreter for worker_process.run_worker that runs `body` as a shell script with the events file as $4."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n" + body)
    python.chmod(0o755)
    return SimpleNamespace(python=str(python), worker_env=lambda: None)


def _line(event: Event) -> str:
    return event.model_dump_json().replace("'", "'\\''")


@pytest.mark.parametrize("since_progress", [True, False])
def test_a_build_that_keeps_reporting_progress_is_not_cut_off(tmp_path, since_progress):
    """A build reporting progress every 0.1 s for 2.5 s under a 1 s limit: counted from its last report it
    finishes; counted from its start (as the cell's prepare phase did) it is killed with its work."""
    log = _line(Log(message="training tiny: 5%"))
    env = _stand_in(tmp_path, f"for i in $(seq 25); do echo '{log}' >> \"$4\"; sleep 0.1; done\n"
                              f"echo '{_line(Done())}' >> \"$4\"\n")
    task = WorkerTask(mode="prepare", cell=factories.spec(), cache_dir=str(tmp_path), workdir=str(tmp_path))
    events, status, error = worker_process.run_worker(task, tmp_path, 1.0, factories.spec(), runner.ProgressSink(),
                                               env, since_progress=since_progress)  # type: ignore[arg-type]
    if since_progress:
        assert (status, error) == ("ok", None) and sum(isinstance(e, Log) for e in events) == 25
    else:
        assert status == "timeout" and "exceeded the prepare timeout of 1 s" in error


def test_a_silent_build_is_stopped_after_the_prepare_timeout(tmp_path):
    env = _stand_in(tmp_path, f"echo '{_line(Log(message='exporting'))}' >> \"$4\"\nsleep 30\n")
    task = WorkerTask(mode="prepare", cell=factories.spec(), cache_dir=str(tmp_path), workdir=str(tmp_path))
    events, status, error = worker_process.run_worker(task, tmp_path, 1.0, factories.spec(), runner.ProgressSink(),
                                               env, since_progress=True)  # type: ignore[arg-type]
    assert status == "timeout" and error.startswith("reported no progress for 1 s, the prepare timeout")


def test_a_cell_without_the_runs_preparations_prepares_its_own_within_its_timeout(tmp_path, monkeypatch):
    """A cluster node's cell (and the pytest plugin's): the prepare timeout limits its preparations together."""
    workers = FakeWorkers(tmp_path)
    monkeypatch.setattr(worker_process, "run_worker", workers)
    opts = runner.RunOptions(cache_dir=tmp_path, available_devices=["CPU"])
    r = runner.run_cell(factories.spec("speculative"), tmp_path / "run", opts, runner.ProgressSink())
    assert r.status == "ok" and len(workers.prepared) == 2
    (first, first_quiet), (second, second_quiet) = workers.limits
    assert 3590 < second <= first <= 3600 and not first_quiet and not second_quiet


def test_the_prepare_worker_prepares_one_model_when_told(tmp_path, monkeypatch):
    """The worker side: a task naming one model prepares that model only, whatever its cell is."""
    from harness.execute import worker
    from harness.models import prepare as prepare_module

    asked = []

    def fake_prepare(source, precision, compression, cache, log=None):
        asked.append((source, precision, compression.group_size))
        return SimpleNamespace(path=tmp_path, size_mb=2.0, cache_hit=True, export_s=1.5, notes=("a note",),
                               source_kind="synthetic")

    monkeypatch.setattr(prepare_module, "prepare_model", fake_prepare)
    key = PrepareKey("synthetic:tiny-draft", "int4", CompressionSpec(group_size=32))
    task = WorkerTask(mode="prepare", cell=factories.spec("speculative"), cache_dir=str(tmp_path),
                      workdir=str(tmp_path), prepare=key)
    emitted: list[Event] = []
    worker.run_task(task, emitted.append)
    assert asked == [("synthetic:tiny-draft", "int4", 32)]
    [prepared] = [e for e in emitted if isinstance(e, Prepared)]
    assert prepared.model_dir == str(tmp_path) and prepared.draft_dir is None and prepared.cache_hit
    assert prepared.notes == ["a note"]  # what preparing decided reaches the cells (the int4 group size, ...)


class FakeRay:
    """Just enough of Ray for the submitter (cluster/executor.py): a task runs at once, in this process, through
    `run(cell, job)`; its result is returned by the next `wait`."""

    def __init__(self, nodes: list, run) -> None:
        self._nodes, self._run = nodes, run
        self._results: dict[int, object] = {}
        self.sent: list[tuple[str, str]] = []
        self.exceptions = SimpleNamespace()  # no node faults happen here

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "NodeID": n.node_id, "NodeManagerAddress": n.address, "Labels": {},
                 "Resources": {"CPU": n.cpus}} for n in self._nodes]

    def remote(self, **_: object):
        fake = self

        class Task:
            def options(self, **_: object) -> Task:
                return self

            def remote(self, cell, job) -> int:
                fake.sent.append((cell.key, job.node.name))
                ref = len(fake.sent)
                fake._results[ref] = fake._run(cell, job)
                return ref

        return lambda _function: Task()

    def wait(self, refs, num_returns, timeout):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return self._results.pop(ref)

    def cancel(self, ref, force=False) -> None:
        self._results.pop(ref, None)


def _node(name: str):
    from harness.core.schema import DeviceInfo, NodeIdentity

    host = factories.run([]).metadata.host.model_copy(update={"hostname": name})
    node_id = name.encode().hex().rjust(56, "0")  # Ray's scheduling strategy reads it as a node id
    return NodeIdentity(name=name, node_id=node_id, address="127.0.0.1", cpus=2, host=host,
                        devices=[DeviceInfo(name="CPU")], cache=f"node-local /cache/{name}")


@pytest.mark.parametrize("mode", ["spread", "each-node"])
def test_the_cluster_submitter_sends_no_more_cells_needing_a_model_that_failed_to_prepare(tmp_path, mode):
    from harness.execute.cluster import placement
    from harness.execute.cluster.executor import Cluster, ClusterOptions, run_cells_on_cluster
    from harness.execute.cluster.node_task import CellOnNode
    from harness.execute.run_record import now_iso

    def on_node(cell, job) -> CellOnNode:
        """A node: the int4 export fails (only w1 fails in each-node mode), everything else measures."""
        if cell.precision == "int4" and (mode == "spread" or job.node.name == "w1"):
            failure = PreparationFailure(role="model", status="failed", error=GROUP_ERROR, what="tiny int4",
                                         log="/tmp/x/prepare.log", node=job.node.name)
            return CellOnNode(result=factories.result(cell, [], "failed", GROUP_ERROR),
                              preparation_failures=[failure])
        return CellOnNode(result=factories.result(cell, [factories.sample(0)]))

    nodes = [_node("w1")] if mode == "spread" else [_node("w1"), _node("w2")]
    ray = FakeRay(nodes, on_node)
    cluster = Cluster(ray=ray, options=ClusterOptions(address="fake", mode=mode), nodes=nodes,
                      cache_dirs={n.node_id: n.cache for n in nodes}, left_out={})
    cells = [c for c in _cells() if c.precision == "int4"] + [factories.spec(key="tiny/fp16/CPU/greedy/in8")]
    if mode == "each-node":
        cells = placement.each_node(cells, nodes)
    meta = factories.run([]).metadata
    meta.started_at = now_iso()
    (tmp_path / "run").mkdir()
    res = run_cells_on_cluster(cells, tmp_path / "run", meta, cluster, {}, runner.ProgressSink())
    sent_int4 = [(k, node) for k, node in ray.sent if "/int4/" in k]
    by_key = {c.key: c for c in res.cells}
    if mode == "spread":
        assert len(sent_int4) == 1  # 5 cells need the model; one attempted it
        failed = [c for c in res.cells if c.spec.precision == "int4"]
    else:  # each node prepares into its own cache: w1's failure is w1's; w2 ran all five
        assert [node for _, node in sent_int4].count("w1") == 1 and [node for _, node in sent_int4].count("w2") == 5
        failed = [c for c in res.cells if c.spec.precision == "int4" and c.spec.host == "w1"]
        assert all(by_key[k].status == "ok" for k, node in sent_int4 if node == "w2")
    assert len(failed) == 5 and all((c.status, c.error) == ("failed", GROUP_ERROR) for c in failed)
    assert sum(any(n.startswith("not retried") and "on node w1" in n for n in c.notes) for c in failed) == 4
    assert all(c.status == "ok" for c in res.cells if c.spec.precision == "fp16")


@pytest.mark.parametrize(("status", "reported"), [("failed", 1), ("crashed", 1), ("timeout", 0)])
def test_a_node_reports_the_preparations_that_failed_but_not_one_cut_off_by_the_cells_timeout(
        tmp_path, monkeypatch, status, reported):
    from harness.execute.cluster import node_task

    def worker(task, workdir, timeout_s, cell, progress, env=None, since_progress=False):
        assert task.prepare is not None and not since_progress  # on a node: the cell's prepare timeout, in total
        return [Error(error="boom")], status, "boom"

    monkeypatch.setattr(worker_process, "run_worker", worker)
    monkeypatch.setattr(node_task, "node_run_dir", lambda run_id: tmp_path / run_id)
    on_node = node_task.run_cell_on_node(factories.spec(), node_task.NodeJob(run_id="r", node=_node("w1"),
                                                                             cache_dir=str(tmp_path)))
    assert on_node.result.status == status and len(on_node.preparation_failures) == reported
    if reported:
        [f] = on_node.preparation_failures
        assert (f.role, f.node, f.error) == ("model", "w1", "boom")
