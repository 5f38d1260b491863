"""`harness ab` pairing calls: the two-level estimate, the round loop over scripted process pairs (ABBA blocks,
process offsets, drift within a round), the fallback when two sides do not fit, and the block order of the
process-pair engine over scripted workers."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from harness.core.events import BatchEvent, SampleEvent
from harness.core.schema import BatchRecord
from harness.core.stats import two_level_sd
from harness.execute import paired
from harness.execute.paired import CallPair, ProcessPair
from harness.experiment import ab
from harness.experiment.ab import ABResult, ABSettings, SideSpec, judge
from tests.factories import sample
from tests.factories import spec as make_cell_spec


def test_two_level_sd_separates_process_offsets_from_call_noise():
    rng = np.random.default_rng(1)
    groups = [rng.normal(rng.normal(0, 0.02), 0.05, 16) for _ in range(400)]
    within, between = two_level_sd(groups)
    assert within == pytest.approx(0.05, rel=0.05) and between == pytest.approx(0.02, rel=0.2)
    no_offsets = [rng.normal(0, 0.05, 16) for _ in range(400)]
    assert two_level_sd(no_offsets)[1] < 0.006
    assert two_level_sd([[1.0, 2.0]]) is None


def test_judge_on_call_pairs_uses_rounds_as_the_units():
    """Forty call pairs in one round with an offset are one unit, not forty: one process pair cannot settle."""
    rng = random.Random(0)
    logs = [[0.03 + rng.gauss(0, 0.002) for _ in range(40)]]
    m = judge("tpot_ms", [1.0], [1.03], 0.05, 0.05, 20, 1, call_logs=logs)
    assert m.paired_by == "call" and m.pairs == 40 and m.rounds == 1 and m.verdict == "inconclusive"
    many = [[0.03 + rng.gauss(0, 0.01) for _ in range(16)] for _ in range(8)]
    m = judge("tpot_ms", [1.0] * 8, [1.03] * 8, 0.05, 0.01, 20, 5, call_logs=many)
    assert m.verdict == "regression" and m.ratio == pytest.approx(1.03, abs=0.005)
    assert m.within_sd == pytest.approx(0.01, rel=0.2) and m.between_sd is not None


class _Pairs:
    """Stands in for process pairs: each process has its own offset, the machine drifts within a round, each
    call has its own noise; the candidate is slower by `effect`."""

    def __init__(self, effect: float, offset_sd: float = 0.005, call_sd: float = 0.02, drift: float = 0.3,
                 seed: int = 0, room: bool = True):
        self.effect, self.offset_sd, self.call_sd, self.drift = effect, offset_sd, call_sd, drift
        self.rng = random.Random(seed)
        self.room = room
        self.rounds: list[tuple[int, int]] = []
        self.process_rounds: list[int] = []
        self.slices: list[float | None] = []

    def prepare(self, cell, run_dir, options, progress):
        return ab.PreparedCell(cell, run_dir, [], "ok", None, task=run_dir.name)  # type: ignore[arg-type]

    def measure(self, prepared, process, options, progress):
        self.process_rounds.append(process)
        return [{"v": 10.0 * (1 + self.effect if prepared.task == "candidate" else 1)}], "ok", None

    def process_pair(self, sides, process, blocks, first_iteration, rng, options, progress, slice_ms=None):
        self.rounds.append((process, first_iteration))
        self.slices.append(slice_ms)
        if not self.room:
            return ProcessPair(no_room="1 MB available, 900 MB needed")
        offset = {s: self.rng.gauss(0, self.offset_sd) for s in paired.SIDES}
        out = ProcessPair(status={"base": "ok", "candidate": "ok"})
        for i in range(2 * blocks):
            level = 10 * (1 + self.drift * math.sin(i / 2 + process))  # the machine moves between calls
            out.pairs.append(CallPair(first_iteration + i, {
                s: [{"v": level * (1 + offset[s]) * (1 + (self.effect if s == "candidate" else 0))
                     * (1 + self.rng.gauss(0, self.call_sd))}] for s in paired.SIDES}))
        out.blocks = ["ABBA"] * blocks
        return out


@pytest.fixture
def scripted_pairs(monkeypatch):
    def install(script: _Pairs):
        monkeypatch.setattr(ab, "prepare_cell", script.prepare)
        monkeypatch.setattr(ab, "measure_process", script.measure)
        monkeypatch.setattr(ab, "process_pair", script.process_pair)
        monkeypatch.setattr(ab, "median_values", lambda events, spec: {"tpot_ms": events[0]["v"]} if events else {})
        monkeypatch.setattr(ab, "cell_result", lambda spec, events, status, *a: (spec.key, len(events), status))
        return script
    return install


def _run(tmp_path, settings: ABSettings):
    from harness.execute.run_options import RunOptions
    from harness.execute.worker_process import ProgressSink

    result = ABResult(ab_id="t", suite_name="s", base=SideSpec(), candidate=SideSpec(), base_run="b",
                      candidate_run="c", settings=settings, started_at="now")
    ab.run_ab([make_cell_spec()], SideSpec(), SideSpec(), tmp_path, RunOptions(tmp_path, ["CPU"]), settings, result,
              ProgressSink(), log=lambda m: None)
    return result.cells[0]


@pytest.mark.parametrize("pairing", ["slices", "calls"])
def test_calls_pairing_finds_a_two_percent_slowdown_under_drift_that_process_rounds_miss(scripted_pairs, tmp_path,
                                                                                        pairing):
    script = scripted_pairs(_Pairs(effect=0.02))
    cell = _run(tmp_path, ABSettings(metrics=["tpot_ms"], blocks=8, max_rounds=12, thresholds={"tpot_ms": 0.01},
                                     pairing=pairing, slice_ms=7))
    m = cell.metrics[0]
    assert cell.pairing == pairing and m.paired_by == "call" and m.pairs == 16 * cell.rounds
    assert set(script.slices) == ({7} if pairing == "slices" else {None})
    assert m.verdict == "regression" and m.ratio == pytest.approx(1.02, abs=0.006)
    # every round is one process pair, its calls numbered on from the warm-up, never reused
    firsts = [first for _, first in script.rounds]
    assert firsts == [make_cell_spec().warmup + 16 * r for r in range(cell.rounds)]


def test_calls_pairing_a_a_is_not_a_change(scripted_pairs, tmp_path):
    for seed in range(5):
        scripted_pairs(_Pairs(effect=0.0, seed=seed))
        cell = _run(tmp_path / str(seed), ABSettings(metrics=["tpot_ms"], max_rounds=10, seed=seed))
        assert cell.metrics[0].verdict in ("unchanged", "inconclusive")


def test_process_offsets_widen_the_interval_instead_of_hiding(scripted_pairs, tmp_path):
    """Large process-level offsets with tiny call noise: the call pairs alone would look certain; the two-level
    estimate reports the offsets and stays honest."""
    scripted_pairs(_Pairs(effect=0.0, offset_sd=0.03, call_sd=0.001, seed=3))
    cell = _run(tmp_path, ABSettings(metrics=["tpot_ms"], max_rounds=6, min_rounds=5))
    m = cell.metrics[0]
    assert m.between_sd is not None and m.between_sd > 0.02 and m.within_sd < 0.005
    assert m.verdict != "regression" and m.verdict != "improvement"
    assert m.cs_high / m.cs_low > 1.02  # the interval spans the offsets, not the call noise


def test_sides_that_do_not_fit_together_fall_back_to_process_rounds(scripted_pairs, tmp_path):
    script = scripted_pairs(_Pairs(effect=0.0, room=False))
    cell = _run(tmp_path, ABSettings(metrics=["tpot_ms"], max_rounds=6))
    assert cell.pairing == "processes" and "900 MB needed" in cell.pairing_note
    assert len(script.rounds) == 1 and script.process_rounds  # asked once, then whole-process rounds
    assert cell.metrics[0].paired_by == "process"


def test_a_kind_without_call_backend_is_paired_by_processes(scripted_pairs, tmp_path, monkeypatch):
    scripted_pairs(_Pairs(effect=0.0))
    monkeypatch.setattr(ab, "call_pairing_possible", lambda *cells: False)
    cell = _run(tmp_path, ABSettings(metrics=["tpot_ms"], max_rounds=5))
    assert cell.pairing == "processes" and "whole processes" in cell.pairing_note


class _FakeWorker:
    """A CallWorker that records the order of calls (for the block structure)."""

    log: list[tuple[str, int]] = []
    fail_at: int | None = None
    warmup_readings: dict[str, float] | None = {}  # None: no warm-up call

    def __init__(self, prepared, process, fault, progress):
        self.side = prepared.task
        self.pid = 4242  # a started worker has one; the memory readings of it are faked
        readings = _FakeWorker.warmup_readings
        warm = sample(0, warmup=True).model_copy(update={"readings": dict(readings or {})})
        self.events = [SampleEvent(sample=warm, of=1)] if readings is not None else []

    def start(self):
        pass

    def wait_ready(self):
        return True

    def call(self, iteration):
        if _FakeWorker.fail_at is not None and len(_FakeWorker.log) == _FakeWorker.fail_at:
            return None
        _FakeWorker.log.append((self.side, iteration))
        return []

    def finish(self):
        failed = _FakeWorker.fail_at is not None
        return [], "crashed" if failed and self.side == "candidate" else "ok", "died" if failed else None

    def kill(self):
        pass


def _sides(tmp_path):
    return {s: ab.PreparedCell(make_cell_spec(), tmp_path / s, [], "ok", None, task=s)  # type: ignore[arg-type]
            for s in paired.SIDES}


def _process_pair(monkeypatch, tmp_path, blocks, first_iteration, seed, fail_at=None, rss=500.0, available=10_000.0,
                  slice_ms=None, readings: dict[str, float] | None = {}):  # noqa: B006 (never mutated)
    """One process pair over fake workers, with the memory readings given."""
    from harness.execute.run_options import RunOptions

    monkeypatch.setattr(paired, "CallWorker", _FakeWorker)
    monkeypatch.setattr(paired, "rss_mb", lambda pid: rss)
    monkeypatch.setattr(paired, "available_mb", lambda: available)
    _FakeWorker.log, _FakeWorker.fail_at, _FakeWorker.warmup_readings = [], fail_at, readings
    return paired.process_pair(_sides(tmp_path), 0, blocks, first_iteration, random.Random(seed),
                               RunOptions(tmp_path, ["CPU"]), None, slice_ms)


def test_process_pair_runs_balanced_abba_blocks_on_shared_inputs(monkeypatch, tmp_path):
    out = _process_pair(monkeypatch, tmp_path, 50, 3, 0)
    log = _FakeWorker.log
    assert len(out.pairs) == 100 and len(log) == 200 and [p.iteration for p in out.pairs] == list(range(3, 103))
    for b, kind in enumerate(out.blocks):
        block = [s for s, _ in log[4 * b:4 * b + 4]]
        first, second = ("base", "candidate") if kind == "ABBA" else ("candidate", "base")
        assert block == [first, second, second, first]
        # both calls of a pair are on the same input
        assert log[4 * b][1] == log[4 * b + 1][1] and log[4 * b + 2][1] == log[4 * b + 3][1]
    assert 15 <= out.blocks.count("ABBA") <= 35  # random, balanced


def test_process_pair_stops_at_a_failed_call_and_keeps_the_pairs_before(monkeypatch, tmp_path):
    out = _process_pair(monkeypatch, tmp_path, 4, 0, 1, fail_at=5)
    assert len(out.pairs) == 2 and out.status["candidate"] == "crashed" and out.errors["candidate"] == "died"


def test_no_room_for_the_second_side_is_said_before_loading_it(monkeypatch, tmp_path):
    out = _process_pair(monkeypatch, tmp_path, 4, 0, 1, rss=4000.0, available=3000.0)
    assert out.no_room is not None and "needed" in out.no_room and not out.pairs and len(out.events) == 1


def test_a_1_0_record_reads_as_paired_by_processes():
    record = {"version": "1.0", "ab_id": "x", "suite_name": "s", "base": {}, "candidate": {}, "base_run": "b",
              "candidate_run": "c", "settings": {"alpha": 0.05}, "started_at": "now",
              "cells": [{"key": "k", "model": "m", "precision": "int8", "device": "CPU", "scenario": "g"}]}
    old = ABResult.model_validate(record)
    assert old.settings.pairing == "processes" and old.cells[0].pairing == "processes"
    assert ABResult.model_validate({**record, "version": "1.1"}).settings.pairing == "calls"
    assert ABResult.model_validate({**record, "version": "1.2"}).settings.pairing == "slices"


def test_calls_the_backend_alone_timed_are_not_sliced_but_run_one_after_the_other(monkeypatch, tmp_path):
    """Sliced calls are read on their active clock; a call whose times only the backend took (its readings) cannot
    be, so the pair runs its calls one after the other and says why."""
    out = _process_pair(monkeypatch, tmp_path, 2, 0, 1, slice_ms=25, readings={"ov_encode_ms": 3.0})
    assert not out.sliced and "ov_encode_ms" in out.slicing_note and len(out.pairs) == 4
    assert [s for s, _ in _FakeWorker.log[:2]] in (["base", "candidate"], ["candidate", "base"])
    out = _process_pair(monkeypatch, tmp_path, 1, 0, 1, slice_ms=25, readings=None)
    assert not out.sliced and "no warm-up call" in out.slicing_note


def test_a_sliced_call_is_read_on_its_active_clock():
    """Pauses inside a call come out of its chunk times and its end; the backend's own timed readings, which
    include them, are left out; counts stay; a batch's end follows too."""
    s = sample(3, chunks=(10.0, 30.0, 50.0), e2e_ms=60.0).model_copy(update={"genai": {
        "ttft_ms": 10.0, "tpot_ms": 20.0, "input_tokens": 8.0}})
    t0 = s.start_ns
    ms = 1_000_000
    pauses = [(t0 - 5 * ms, t0 - ms), (t0 + 15 * ms, t0 + 25 * ms), (t0 + 40 * ms, t0 + 45 * ms)]
    batch = BatchRecord(iteration=3, warmup=False, requests=1, start_ns=t0, end_ns=t0 + 60 * ms, output_tokens=3,
                        input_tokens=8, steps=3)
    sample_ev, batch_ev = paired.on_active_clock([SampleEvent(sample=s, of=4), BatchEvent(batch=batch)], pauses)
    got = sample_ev.sample
    assert got.chunk_offsets_ms == pytest.approx([10.0, 20.0, 35.0])
    assert got.end_ns - got.start_ns == 45 * ms and got.paused_ms == pytest.approx(15.0)
    assert got.genai == {"input_tokens": 8.0}
    assert batch_ev.batch.end_ns - batch_ev.batch.start_ns == 45 * ms
    unpaused = paired.on_active_clock([SampleEvent(sample=s, of=4)], [])[0].sample
    assert unpaused.paused_ms == 0.0 and unpaused.chunk_offsets_ms == [10.0, 30.0, 50.0]
