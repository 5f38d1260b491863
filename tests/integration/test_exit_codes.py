"""Exit codes a CI gate can trust (README, "Exit codes"): every command of the README's table is run here into
every outcome the table gives it, and the table, the cases here and the commands of the CLI are checked to agree
(a cell of the table without a case, a case the table does not list, or a command without a row fails).

Most commands run in this process through the CLI's entry point (`harness.cli.app.main`, what `harness` runs) on
results, history databases, suites and candidate files made here. `ab` and `bisect` measure through a stand-in for
their worker processes: each round's samples are scripted, and a side slows down or fails by a property it sets
(FAKE_SLOWDOWN, FAKE_FAIL). `run` runs real worker processes on the tiny model of the tests' model cache, its three
outcomes at once in the background while the other cases run, with tests/faults.py's crash for the failing cell."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.analyze.history import HistoryStore
from harness.core.schema import RunResults
from harness.records.store import write_results
from tests import factories
from tests.conftest import ROOT, model_cache_dir

KEY = "m/fp16/CPU/generate/in8-out4"  # the factories' cell
TINY_KEY = "tiny/fp16/CPU/g/in8-out4"  # the cell of SUITE
SUITE = {"name": "exit-codes", "models": [{"name": "tiny", "source": "synthetic:tiny"}], "precisions": ["fp16"],
         "scenarios": [{"name": "g", "kind": "generate"}], "prompts": {"input_tokens": [8]},
         "generation": {"max_new_tokens": 4}, "iterations": 1, "warmup": 0, "validation_prompts": 0,
         "load_twice": False, "timeout_s": 120}
NOT_A_DATABASE = b"this file is not a database\n" * 8


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    def said(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"


@dataclass
class Ctx:
    """What a case gets: the command line in this process, a folder of its own, and pytest's monkeypatch."""

    harness: Callable[..., Outcome]
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    real_runs: dict[str, subprocess.Popen] | None = None

    def expect(self, code: int, *args: object) -> Outcome:
        got = self.harness(*args)
        assert got.code == code, f"harness {' '.join(map(str, args))}: {got.said()}"
        assert "Traceback" not in got.err, got.said()
        return got

    def not_a_database(self) -> str:
        path = self.tmp / "not-a-database.sqlite"
        path.write_bytes(NOT_A_DATABASE)
        return f"sqlite:///{path}"


CASES: dict[tuple[str, int], Callable[[Ctx], None]] = {}


def case(command: str, code: int) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        assert (command, code) not in CASES, (command, code)
        CASES[(command, code)] = fn
        return fn
    return register


# ---------------------------------------------------------------- made here: runs, histories, stand-in workers


def make_run(run_id: str, scale: float = 1.0, key: str = KEY, status: str = "ok", started: str | None = None,
             seed: int = 0, n: int = 8) -> RunResults:
    """One cell of `n` measured iterations, its times `scale` x the factories' (1% noise)."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        f = scale * (1 + rng.gauss(0, 0.01))
        samples.append(factories.sample(i, chunks=tuple(c * f for c in (10.0, 12.0, 14.0, 16.0)), e2e_ms=17.0 * f))
    cell = factories.result(factories.spec(key=key), samples if status == "ok" else [], status=status,
                            error=None if status == "ok" else "RuntimeError: made to fail here")
    results = factories.run([cell])
    results.metadata.run_id = run_id
    if started:
        results.metadata.started_at = started
    return results


def run_dir(ctx: Ctx, name: str, results: RunResults) -> Path:
    folder = ctx.tmp / name
    folder.mkdir()
    write_results(folder, results)
    return folder


def history(ctx: Ctx, n: int, step_at: int | None = None, factor: float = 1.3) -> str:
    """A history of `n` nightly runs a day apart whose times shift by `factor` from run `step_at`."""
    url = f"sqlite:///{ctx.tmp / f'nightly-{n}-{step_at}.sqlite'}"
    with HistoryStore(url) as store:
        for i in range(n):
            scale = factor if step_at is not None and i >= step_at else 1.0
            store.record_run(make_run(f"night-{i:02d}", scale, started=f"2026-03-{i + 1:02d}T00:00:00+00:00",
                                      seed=i), None)
    return url


def fake_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker processes of `ab` (and so of each `bisect` step) replaced: preparing does nothing, and each
    measuring process gives two samples whose times are the cell's FAKE_SLOWDOWN property times the factories'
    (0.5% noise per side and round), or fails when the cell sets FAKE_FAIL."""
    from harness.core.events import Done, SampleEvent
    from harness.execute.runner import PreparedCell
    from harness.experiment import ab

    def prepare(cell, run_dir, options, progress):
        return PreparedCell(cell, run_dir / "work", [], "ok", None)

    def measure(prepared, process, options, progress):
        props = prepared.cell.properties
        if "FAKE_FAIL" in props:
            return [], "failed", "RuntimeError: the stand-in worker refuses FAKE_FAIL"
        side = prepared.workdir.parent.name
        f = float(props.get("FAKE_SLOWDOWN", 1.0)) * (1 + random.Random(f"{side}/{process}").gauss(0, 0.005))
        events = [SampleEvent(sample=factories.sample(i, chunks=tuple(c * f for c in (10.0, 12.0, 14.0, 16.0)),
                                                      e2e_ms=17.0 * f)) for i in range(2)]
        return [*events, Done(cell_values={"peak_rss_mb": 500.0, "load_cold_ms": 100.0})], "ok", None

    monkeypatch.setattr(ab, "prepare_cell", prepare)
    monkeypatch.setattr(ab, "measure_process", measure)
    monkeypatch.setattr(ab, "call_pairing_possible", lambda *cells: False)  # the stand-ins are whole processes


def fake_trials(monkeypatch: pytest.MonkeyPatch, noise: float = 0.005) -> None:
    """`tune`'s trials measured by a stand-in: a cell of three samples whose times are its FAKE_SLOWDOWN property
    times the factories' (`noise` per trial, seeded by the trial's folder), failed when it sets FAKE_FAIL."""
    from harness.cli import tune

    def local_measure(out_dir, options):
        def measure(cell, folder):
            if "FAKE_FAIL" in cell.properties:
                return factories.result(cell, [], status="failed", error="RuntimeError: the stand-in refuses FAKE_FAIL")
            f = float(cell.properties.get("FAKE_SLOWDOWN", 1.0)) * (1 + random.Random(folder.name).gauss(0, noise))
            return factories.result(cell, [factories.sample(i, chunks=tuple(c * f for c in (10.0, 12.0, 14.0, 16.0)),
                                                            e2e_ms=17.0 * f) for i in range(3)])
        return measure

    monkeypatch.setattr(tune, "_local_measure", local_measure)


def suite_file(ctx: Ctx, **changes: object) -> Path:
    path = ctx.tmp / "suite.yaml"
    path.write_text(yaml.safe_dump({**SUITE, **changes}))
    return path


def candidates_file(ctx: Ctx, *entries: dict) -> Path:
    path = ctx.tmp / "candidates.yaml"
    path.write_text(yaml.safe_dump(list(entries)))
    return path


AB_ROUNDS = ("--metric", "tpot_ms", "--min-rounds", "3", "--max-rounds", "8")


def bisect(ctx: Ctx, code: int, *entries: dict) -> Outcome:
    fake_workers(ctx.monkeypatch)
    return ctx.expect(code, "bisect", suite_file(ctx), "--cell", TINY_KEY, "--candidates",
                      candidates_file(ctx, *entries), "--out", ctx.tmp / "bisect", *AB_ROUNDS)


# ---------------------------------------------------------------- the cases, by command

# run: its 0, 1 and 3 run real worker processes (see real_runs below)


@case("run", 2)
def _(ctx: Ctx) -> None:
    got = ctx.expect(2, "run", suite_file(ctx, iterations=0), "--out", ctx.tmp / "run")
    assert "iterations" in got.err and not (ctx.tmp / "run").exists()


@case("report", 0)
def _(ctx: Ctx) -> None:
    got = ctx.expect(0, "report", run_dir(ctx, "a", make_run("a")))
    assert KEY in got.out


@case("report", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "report", run_dir(ctx, "a", make_run("a")), "--format", "pdf")
    ctx.expect(2, "report", ctx.tmp / "no-such-run")


@case("compare", 0)
def _(ctx: Ctx) -> None:
    got = ctx.expect(0, "compare", run_dir(ctx, "a", make_run("a", seed=1)), run_dir(ctx, "b", make_run("b", seed=2)),
                     "--no-history-noise")
    assert "unchanged" in got.out


@case("compare", 1)
def _(ctx: Ctx) -> None:
    base = run_dir(ctx, "a", make_run("a", seed=1))
    got = ctx.expect(1, "compare", base, run_dir(ctx, "slower", make_run("slower", 1.3, seed=2)), "--no-history-noise")
    assert "regression" in got.out.lower()
    # a cell that ran in the base and fails in the candidate is no pass, though no metric could regress
    got = ctx.expect(1, "compare", base, run_dir(ctx, "failed", make_run("failed", status="crashed")),
                     "--no-history-noise")
    assert f"failed in the candidate: {KEY} (crashed" in got.err


@case("compare", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "compare", run_dir(ctx, "a", make_run("a")), ctx.tmp / "no-such-run", "--no-history-noise")


@case("compare", 3)
def _(ctx: Ctx) -> None:
    base = run_dir(ctx, "a", make_run("a"))
    got = ctx.expect(3, "compare", base, run_dir(ctx, "other", make_run("other", key="m/int8/CPU/generate/in8-out4")),
                     "--no-history-noise")
    assert "nothing judged" in got.err and "1 only in the base" in got.err
    # failed on both sides: nothing to compare either
    ctx.expect(3, "compare", run_dir(ctx, "f1", make_run("f1", status="failed")),
               run_dir(ctx, "f2", make_run("f2", status="failed")), "--no-history-noise")


@case("ab", 0)
def _(ctx: Ctx) -> None:
    fake_workers(ctx.monkeypatch)
    got = ctx.expect(0, "ab", suite_file(ctx), "--out", ctx.tmp / "ab", *AB_ROUNDS)
    assert "regression" not in got.out


@case("ab", 1)
def _(ctx: Ctx) -> None:
    fake_workers(ctx.monkeypatch)
    got = ctx.expect(1, "ab", suite_file(ctx), "--candidate", "properties.FAKE_SLOWDOWN=1.3", "--out", ctx.tmp / "ab",
                     *AB_ROUNDS)
    assert "regression" in got.out


@case("ab", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "ab", suite_file(ctx), "--budget", "soon", "--out", ctx.tmp / "ab")
    assert not (ctx.tmp / "ab").exists()


@case("ab", 3)
def _(ctx: Ctx) -> None:
    fake_workers(ctx.monkeypatch)
    got = ctx.expect(3, "ab", suite_file(ctx), "--candidate", "properties.FAKE_FAIL=1", "--out", ctx.tmp / "ab",
                     *AB_ROUNDS)
    # the terminal says which side failed, and why
    assert (f"not judged: {TINY_KEY}: candidate failed: round 1: RuntimeError: the stand-in worker refuses "
            "FAKE_FAIL") in got.err, got.said()
    assert "base failed" not in got.err and "nothing judged" in got.err


TUNE = ("--objective", "output_tps", "--budget", "10m", "--proof-budget", "5m", "--min-rounds", "3")


@case("tune", 0)
def _(ctx: Ctx) -> None:
    fake_workers(ctx.monkeypatch)
    fake_trials(ctx.monkeypatch)
    got = ctx.expect(0, "tune", suite_file(ctx), "--knob", "properties.FAKE_SLOWDOWN=null,0.7,1.3", "--out",
                     ctx.tmp / "tune", *TUNE)
    assert "gain: output_tps +4" in got.err, got.said()  # 1 / 0.7 - 1 = +43%, proven by the A/B


@case("tune", 2)
def _(ctx: Ctx) -> None:
    got = ctx.expect(2, "tune", suite_file(ctx), "--slo", "ttft_ms p90 < soon", "--out", ctx.tmp / "tune")
    assert "--slo" in got.err and "not a number" in got.err
    assert not (ctx.tmp / "tune").exists()


@case("tune", 3)
def _(ctx: Ctx) -> None:
    fake_trials(ctx.monkeypatch)
    got = ctx.expect(3, "tune", suite_file(ctx, properties={"FAKE_FAIL": 1}), "--knob",
                     "properties.FAKE_SLOWDOWN=null,0.7", "--out", ctx.tmp / "tune", *TUNE)
    assert "trial 0: the suite as is: failed (RuntimeError: the stand-in refuses FAKE_FAIL)" in got.err, got.said()
    assert "nothing judged" in got.err


@case("bisect", 0)
def _(ctx: Ctx) -> None:
    got = bisect(ctx, 0, {"name": "c0"}, {"name": "c1", "properties": {"FAKE_SLOWDOWN": 1.0}},
                 {"name": "c2", "properties": {"FAKE_SLOWDOWN": 1.3}}, {"name": "c3", "properties": {"FAKE_SLOWDOWN": 1.3}})
    assert "first bad: c2" in got.err


@case("bisect", 1)
def _(ctx: Ctx) -> None:
    got = bisect(ctx, 1, {"name": "c0"}, {"name": "c1", "properties": {"FAKE_SLOWDOWN": 1.0}})
    assert "no regression: the bad end c1" in got.err


@case("bisect", 2)
def _(ctx: Ctx) -> None:
    # a candidate whose environment is refused says why (not pydantic's link to its documentation)
    got = bisect(ctx, 2, {"name": "c0"}, {"name": "c1", "packages": ["openvino genai"]})
    assert "[1].packages" in got.err and "is not a requirement" in got.err and "pydantic" not in got.err, got.said()


@case("bisect", 3)
def _(ctx: Ctx) -> None:
    got = bisect(ctx, 3, {"name": "c0"}, {"name": "c1", "properties": {"FAKE_FAIL": 1}})
    # the candidate that failed, with its reason, then why nothing could be judged
    assert ("skip: c1: the cell failed: candidate, round 1: RuntimeError: the stand-in worker refuses FAKE_FAIL"
            in got.err), got.said()
    assert "cannot bisect: the bad end c1 could not be measured" in got.err and "nothing judged" in got.err


@case("history", 0)
def _(ctx: Ctx) -> None:
    url = history(ctx, 2)
    assert "night-01" in ctx.expect(0, "history", "--db", url).out
    assert "night-00" in ctx.expect(0, "history", "--db", url, "--cell", KEY, "--metric", "tpot_ms").out


@case("history", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "history", "--db", history(ctx, 2), "--cell", KEY)
    ctx.expect(2, "history", "--db", history(ctx, 0), "--cell", "nope/fp16", "--metric", "tpot_ms")


@case("history", 3)
def _(ctx: Ctx) -> None:
    got = ctx.expect(3, "history", "--db", ctx.not_a_database())
    assert "cannot open the history database" in got.err
    ctx.expect(3, "history", "--db", ctx.not_a_database(), "--cell", KEY, "--metric", "tpot_ms")


@case("history changes", 0)
def _(ctx: Ctx) -> None:
    url = history(ctx, 10)
    ctx.expect(0, "history", "changes", "--db", url, "--recent", "3")
    ctx.expect(0, "history", "changes", "--db", url)  # no gate: the series shown


@case("history changes", 1)
def _(ctx: Ctx) -> None:
    got = ctx.expect(1, "history", "changes", "--db", history(ctx, 10, step_at=6), "--recent", "4",
                     "--metric", "tpot_ms")
    assert "regression:" in got.err and "night-06" in got.err


@case("history changes", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "history", "changes", "--db", history(ctx, 10), "--since", "last tuesday")


@case("history changes", 3)
def _(ctx: Ctx) -> None:
    # the case: a file that is not a database
    assert "cannot open the history database" in ctx.expect(
        3, "history", "changes", "--db", ctx.not_a_database(), "--recent", "3").err
    # a database with nothing recorded (a mistyped path is created empty), or no series long enough to judge
    fresh = f"sqlite:///{ctx.tmp / 'typo.sqlite'}"
    assert "no recorded series match" in ctx.expect(3, "history", "changes", "--db", fresh, "--recent", "3").err
    assert "no recorded series match" in ctx.expect(3, "history", "changes", "--db", fresh, "--format", "json").err
    got = ctx.expect(3, "history", "changes", "--db", history(ctx, 4), "--recent", "3")
    assert "too short to hold a change point" in got.err


@case("history record", 0)
def _(ctx: Ctx) -> None:
    url = f"sqlite:///{ctx.tmp / 'h.sqlite'}"
    ctx.expect(0, "history", "record", run_dir(ctx, "a", make_run("rec-a")), "--db", url)
    with HistoryStore(url) as store:
        assert store.has_run("rec-a")


@case("history record", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "history", "record", ctx.tmp / "no-such-run", "--db", f"sqlite:///{ctx.tmp / 'h.sqlite'}")


@case("history record", 3)
def _(ctx: Ctx) -> None:
    ctx.expect(3, "history", "record", run_dir(ctx, "a", make_run("rec-a")), "--db", ctx.not_a_database())


@case("history publish", 0)
def _(ctx: Ctx) -> None:
    url = history(ctx, 10, step_at=6)
    got = ctx.expect(0, "history", "publish", "--db", url, "--out", ctx.tmp / "site")
    assert "published" in got.err and (ctx.tmp / "site" / "index.html").is_file()
    assert "0 searched again" in ctx.expect(0, "history", "publish", "--db", url, "--out", ctx.tmp / "site").err


@case("history publish", 2)
def _(ctx: Ctx) -> None:
    (ctx.tmp / "mine").mkdir()
    (ctx.tmp / "mine" / "notes.txt").write_text("not a site")
    ctx.expect(2, "history", "publish", "--db", history(ctx, 2), "--out", ctx.tmp / "mine")
    ctx.expect(2, "history", "publish", "--db", history(ctx, 2), "--out", ctx.tmp / "mine" / "notes.txt")


@case("history publish", 3)
def _(ctx: Ctx) -> None:
    ctx.expect(3, "history", "publish", "--db", ctx.not_a_database(), "--out", ctx.tmp / "site")


def _change_id(ctx: Ctx, url: str) -> str:
    import json

    changes = json.loads(ctx.expect(0, "history", "changes", "--db", url, "--metric", "tpot_ms", "--format",
                                    "json").out)["changes"]
    return changes[0]["id"]


@case("history triage", 0)
def _(ctx: Ctx) -> None:
    url = history(ctx, 10, step_at=6)
    ctx.expect(1, "history", "changes", "--db", url, "--recent", "4", "--metric", "tpot_ms")
    ctx.expect(0, "history", "triage", _change_id(ctx, url), "--state", "acknowledged", "--note", "bug 1", "--db", url)
    assert "bug 1" in ctx.expect(0, "history", "triage", "--db", url).out
    ctx.expect(0, "history", "changes", "--db", url, "--recent", "4", "--metric", "tpot_ms")  # the gate honours it


@case("history triage", 2)
def _(ctx: Ctx) -> None:
    url = history(ctx, 10, step_at=6)
    ctx.expect(2, "history", "triage", "cp-0123456789", "--state", "fixed", "--db", url)
    ctx.expect(2, "history", "triage", _change_id(ctx, url), "--state", "maybe", "--db", url)
    ctx.expect(2, "history", "triage", _change_id(ctx, url), "--clear", "--db", url)  # nothing to clear


@case("history triage", 3)
def _(ctx: Ctx) -> None:
    ctx.expect(3, "history", "triage", "--db", ctx.not_a_database())


@case("baseline set", 0)
def _(ctx: Ctx) -> None:
    url = history(ctx, 2)
    ctx.expect(0, "baseline", "set", "last-good", "night-01", "--db", url)
    assert "night-01" in ctx.expect(0, "baseline", "list", "--db", url).out


@case("baseline set", 2)
def _(ctx: Ctx) -> None:
    url = history(ctx, 2)
    ctx.expect(2, "baseline", "set", "last-good", "no-such-run", "--db", url)
    ctx.expect(2, "baseline", "set", " ", "night-01", "--db", url)


@case("baseline set", 3)
def _(ctx: Ctx) -> None:
    ctx.expect(3, "baseline", "set", "last-good", "night-01", "--db", ctx.not_a_database())


@case("baseline list", 0)
def _(ctx: Ctx) -> None:
    ctx.expect(0, "baseline", "list", "--db", history(ctx, 1))


@case("baseline list", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "baseline", "list", "--no-such-option")


@case("baseline list", 3)
def _(ctx: Ctx) -> None:
    ctx.expect(3, "baseline", "list", "--db", ctx.not_a_database())


@case("prepare", 0)
def _(ctx: Ctx) -> None:
    got = ctx.expect(0, "prepare", "synthetic:tiny", "--precision", "fp16")  # in the tests' model cache
    assert Path(got.out.strip().splitlines()[-1]).is_dir()


@case("prepare", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "prepare", "synthetic:tiny", "--precision", "fp3")
    ctx.expect(2, "prepare", str(ctx.tmp / "no-such-model"))


@case("serve", 2)
def _(ctx: Ctx) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got = ctx.expect(2, "serve", "synthetic:tiny", "--port", port)  # said before any model is prepared
    assert "--port" in got.err and "in use" in got.err
    ctx.expect(2, "serve", "synthetic:tiny", "--properties", "[1]")


@case("devices", 0)
def _(ctx: Ctx) -> None:
    assert "CPU" in ctx.expect(0, "devices").out


@case("devices", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "devices", "--no-such-option")


@case("host", 0)
def _(ctx: Ctx) -> None:
    assert '"logical_cores"' in ctx.expect(0, "host", "--json", "--window", "0.2").out


@case("host", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "host", "--window", "-1")


@case("schema", 0)
def _(ctx: Ctx) -> None:
    ctx.expect(0, "schema", "--out", ctx.tmp / "schema.json")
    assert (ctx.tmp / "schema.json").stat().st_size > 0


@case("schema", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "schema", "--out", ctx.tmp)  # a folder


@case("metrics", 0)
def _(ctx: Ctx) -> None:
    assert "tpot_ms" in ctx.expect(0, "metrics").out


@case("metrics", 2)
def _(ctx: Ctx) -> None:
    ctx.expect(2, "metrics", "--out", ctx.tmp)


# run's real outcomes: started together when this module starts, each case waits for its own


REAL_RUNS: dict[int, tuple[dict, tuple[str, ...]]] = {
    0: ({}, ()),
    1: ({"prompts": {"input_tokens": [8, 12]}}, ("--fault", "tiny/fp16/CPU/g/in12-out4=crash")),
    3: ({}, ("--fault", f"{TINY_KEY}=crash")),
}


def _real_run(ctx: Ctx, code: int) -> Outcome:
    assert ctx.real_runs is not None
    proc = ctx.real_runs[f"run-{code}"]
    out, err = proc.communicate(timeout=600)
    return Outcome(proc.returncode, out, err)


@case("run", 0)
def _(ctx: Ctx) -> None:
    got = _real_run(ctx, 0)
    assert got.code == 0, got.said()


@case("run", 1)
def _(ctx: Ctx) -> None:
    got = _real_run(ctx, 1)
    assert got.code == 1 and "crashed" in got.out, got.said()


@case("run", 3)
def _(ctx: Ctx) -> None:
    got = _real_run(ctx, 3)
    assert got.code == 3 and "nothing judged: no cell ran (1 failed, 0 skipped of 1)" in got.err, got.said()


# ---------------------------------------------------------------- the README's table, the CLI's commands, the cases


def readme_table() -> dict[str, set[int]]:
    """Command -> the exit codes the README's table gives it (a cell that is not '—')."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip() for line in section.splitlines() if line.startswith("|")]
    codes = [int(c) for c in [c.strip() for c in rows[0].strip("|").split("|")][1:]]
    table: dict[str, set[int]] = {}
    for row in rows[2:]:
        first, *cells = [c.strip() for c in row.strip("|").split("|")]
        for command in re.findall(r"`([^`]+)`", first):
            table[command] = {code for code, cell in zip(codes, cells, strict=True) if not cell.startswith("—")}
    return table


def cli_commands() -> set[str]:
    """Every command `harness --help` lists, a group's subcommands as 'group sub' (and the group itself when it
    runs on its own, as `harness history` does)."""
    import click
    import typer

    from harness.cli.app import app

    out = set()
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        if isinstance(command, click.Group):
            out |= {f"{name} {sub}" for sub in command.commands}
            if command.invoke_without_command:
                out.add(name)
        else:
            out.add(name)
    return out


def test_the_readme_table_lists_every_command_and_every_outcome_has_a_case() -> None:
    table = readme_table()
    assert set(table) == cli_commands(), "a command without a row in README's Exit codes, or a row of no command"
    cells = {(command, code) for command, codes in table.items() for code in codes}
    assert cells - set(CASES) == set(), "outcomes in README's table without a case here"
    assert set(CASES) - cells == set(), "cases here of outcomes README's table does not give"


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
              ) -> Iterator[dict[str, subprocess.Popen]]:
    """`harness run` into 0, 1 and 3, started at once (real worker processes on the tiny model)."""
    folder = tmp_path_factory.mktemp("real-runs")
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SET"}
    env.update(HARNESS_CACHE_DIR=str(model_cache_dir()), HARNESS_HISTORY_URL=f"sqlite:///{folder / 'h.sqlite'}",
               COLUMNS="200")
    wanted = {item.name for item in request.session.items}
    procs = {}
    for code, (changes, args) in REAL_RUNS.items():
        name = f"run-{code}"
        if f"test_exit_code[{name}]" not in wanted:
            continue
        suite = folder / f"{name}.yaml"
        suite.write_text(yaml.safe_dump({**SUITE, **changes}))
        procs[name] = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--out",
                                        str(folder / name), *args], cwd=ROOT, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Outcome]:
    """`harness ARGS` in this process, in tmp_path, with its own history database and the tests' model cache."""
    from harness.cli.app import main

    monkeypatch.delenv("HARNESS_SET", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(model_cache_dir()))
    monkeypatch.setenv("HARNESS_HISTORY_URL", f"sqlite:///{tmp_path / 'history.sqlite'}")
    monkeypatch.chdir(tmp_path)

    def call(*args: object) -> Outcome:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return call


# run's real cases last (their processes run while the others do), marked as the real pipelines they run
ORDER = [pytest.param(command, code, id=f"{command.replace(' ', '-')}-{code}",
                      marks=[pytest.mark.integration] if code in REAL_RUNS and command == "run" else [])
         for command, code in sorted(CASES, key=lambda c: (c[0] == "run" and c[1] in REAL_RUNS, c))]


@pytest.mark.parametrize("command, code", ORDER)
def test_exit_code(command: str, code: int, cli: Callable[..., Outcome], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch, real_runs: dict[str, subprocess.Popen]) -> None:
    CASES[(command, code)](Ctx(cli, tmp_path, monkeypatch, real_runs))
