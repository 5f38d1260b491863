"""History database: runs, trends, baselines and last-good on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.analyze.history import HistoryStore, default_history_url, normalise_url
from harness.cli.history.recording import record_in_history
from harness.core.errors import HarnessInputError
from harness.core.schema import RunResults
from harness.records.store import write_metadata, write_results
from tests import factories
from tests.conftest import _free_port, run_cli

KEY = "m/fp16/CPU/generate/in8-out4"
KEY_INT8 = "m/int8/CPU/generate/in8-out4"


def make_run(run_id: str, started: str, e2e: float = 17.0, status: str = "ok", suite: str = "t",
             genai: str = "2026.4.1.0", finished: bool = True) -> RunResults:
    """Two cells (fp16 always ok, int8 with `status`); e2e medians are `e2e + 1`."""
    samples = [factories.sample(i, e2e_ms=e2e + i) for i in range(3)]
    cells = [factories.result(factories.spec(), samples),
             factories.result(factories.spec(precision="int8"), samples, status=status,
                              error=None if status in ("ok", "skipped") else "boom")]
    results = factories.run(cells)
    meta = results.metadata
    meta.run_id, meta.suite_name, meta.started_at = run_id, suite, started
    meta.finished_at = started.replace("T00:", "T01:") if finished else None
    meta.versions = {"openvino": "2026.4.1", "openvino-genai": genai}
    return results


# ---------------------------------------------------------------- the store


def test_record_list_and_trend(store: HistoryStore) -> None:
    store.record_run(make_run("r2", "2026-01-02T00:00:00+00:00", e2e=20.0), "/runs/r2")
    store.record_run(make_run("r1", "2026-01-01T00:00:00+00:00", e2e=10.0, genai="2026.3.0.0"), "/runs/r1")
    store.record_run(make_run("r3", "2026-01-03T00:00:00+00:00", e2e=30.0, status="failed"), None)

    rows = store.list_runs()
    assert [r.run_id for r in rows] == ["r3", "r2", "r1"]  # most recent first
    r3 = rows[0]
    assert (r3.n_cells, r3.n_ok, r3.n_failed, r3.run_dir) == (2, 1, 1, None)
    assert (r3.suite_name, r3.hostname, r3.cpu_model, r3.openvino_version) == ("t", "h", "cpu", "2026.4.1")
    assert rows[2].genai_version == "2026.3.0.0" and rows[2].run_dir == "/runs/r1"
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r3", "r2"]

    points = store.trend(KEY, "e2e_ms")
    assert [p.run_id for p in points] == ["r1", "r2", "r3"]  # oldest first
    assert [p.median for p in points] == pytest.approx([11.0, 21.0, 31.0])
    assert points[0].n == 3 and points[0].stdev == pytest.approx(1.0) and points[0].genai_version == "2026.3.0.0"
    assert [p.run_id for p in store.trend(KEY, "e2e_ms", limit=2)] == ["r2", "r3"]  # the latest two
    assert store.trend(KEY, "no_such_metric") == [] and store.trend("no/such/cell", "e2e_ms") == []
    assert KEY_INT8 in store.cell_keys("e2e_ms")


def test_run_to_run_noise(store: HistoryStore) -> None:
    for i, e2e in enumerate((10.0, 10.5, 9.5, 10.2, 9.8, 30.0)):  # one outlier run
        store.record_run(make_run(f"r{i}", f"2026-01-0{i + 1}T00:00:00+00:00", e2e=e2e), None)
    sd, n = store.run_to_run_noise(KEY, "e2e_ms")
    assert n == 6 and 0.02 < sd < 0.1  # robust: the 30 ms run barely moves it
    assert store.run_to_run_noise(KEY, "e2e_ms", exclude=frozenset({"r0", "r1"})) is None  # 4 runs < 5
    assert store.run_to_run_noise(KEY, "no_such_metric") is None


def test_suite_filter(store: HistoryStore) -> None:
    store.record_run(make_run("a", "2026-01-01T00:00:00+00:00", suite="smoke"), None)
    store.record_run(make_run("b", "2026-01-02T00:00:00+00:00", suite="nightly"), None)
    assert [r.run_id for r in store.list_runs(suite="smoke")] == ["a"]
    assert store.list_runs(suite="nope") == []


def test_rerecording_replaces_the_run(store: HistoryStore) -> None:
    first = make_run("r1", "2026-01-01T00:00:00+00:00", e2e=10.0, finished=False)
    store.record_run(first, "/runs/r1")
    store.set_baseline("keep", "r1")
    resumed = make_run("r1", "2026-01-01T00:00:00+00:00", e2e=40.0)
    resumed.cells = resumed.cells[:1]  # a cell dropped: its metric rows must go too
    store.record_run(resumed, "/runs/r1-resumed")

    rows = store.list_runs()
    assert len(rows) == 1 and rows[0].n_cells == 1 and rows[0].finished_at is not None
    assert rows[0].run_dir == "/runs/r1-resumed"
    assert [p.median for p in store.trend(KEY, "e2e_ms")] == [41.0]
    assert store.trend(KEY_INT8, "e2e_ms") == []
    assert store.baselines() == {"keep": "r1"}
    assert store.load("r1") == resumed


def test_load_round_trip(store: HistoryStore) -> None:
    original = make_run("r1", "2026-01-01T00:00:00+00:00", status="crashed")
    store.record_run(original, None)
    loaded = store.load("r1")
    assert loaded == original
    assert loaded.model_dump_json() == original.model_dump_json()


def test_unreadable_stored_run_is_a_clear_error(store: HistoryStore) -> None:
    from harness.analyze.history_tables import runs

    store.record_run(make_run("r1", "2026-01-01T00:00:00+00:00"), None)
    with store.engine.begin() as conn:  # as if written by a harness with another result schema
        conn.execute(runs.update().values(results_json='{"schema_version": "9.0", "metadata": {}}'))
    with pytest.raises(HarnessInputError, match="result schema") as e:
        store.load("r1")
    assert (e.value.field, e.value.value) == ("run", "r1")


def test_baselines_and_resolve(store: HistoryStore) -> None:
    store.record_run(make_run("r1", "2026-01-01T00:00:00+00:00"), None)
    store.record_run(make_run("r2", "2026-01-02T00:00:00+00:00"), None)
    assert store.baselines() == {}
    store.set_baseline("release", "r1")
    store.set_baseline("nightly", "r2")
    store.set_baseline("release", "r2")  # moving a baseline replaces it
    assert store.baselines() == {"nightly": "r2", "release": "r2"}
    assert store.resolve("r1").metadata.run_id == "r1"
    assert store.resolve("release").metadata.run_id == "r2"

    with pytest.raises(HarnessInputError) as e:
        store.set_baseline("x", "nope")
    assert (e.value.field, e.value.value) == ("run", "nope")
    with pytest.raises(HarnessInputError) as e:
        store.resolve("nope")
    assert (e.value.field, e.value.value) == ("run", "nope")
    assert "nightly, release" in e.value.line()
    with pytest.raises(HarnessInputError) as e:
        store.load("nope")
    assert e.value.field == "run"


def test_last_good(store: HistoryStore) -> None:
    with pytest.raises(HarnessInputError) as e:
        store.resolve("last-good")
    assert (e.value.field, e.value.value) == ("baseline", "last-good")

    store.record_run(make_run("r1", "2026-01-01T00:00:00+00:00"), None)
    store.record_run(make_run("r2", "2026-01-02T00:00:00+00:00", status="skipped"), None)
    store.record_run(make_run("r3", "2026-01-03T00:00:00+00:00", status="failed"), None)
    store.record_run(make_run("r4", "2026-01-04T00:00:00+00:00", status="timeout"), None)
    store.record_run(make_run("r5", "2026-01-05T00:00:00+00:00", finished=False), None)  # interrupted
    assert store.resolve("last-good").metadata.run_id == "r2"  # skipped cells are fine, failures are not

    store.record_run(make_run("o1", "2026-01-06T00:00:00+00:00", suite="other"), None)
    assert store.resolve("last-good").metadata.run_id == "o1"
    assert store.resolve("last-good", suite="t").metadata.run_id == "r2"
    with pytest.raises(HarnessInputError, match="suite 'none'"):
        store.resolve("last-good", suite="none")

    store.set_baseline("last-good", "r1")  # an explicit last-good baseline wins
    assert store.resolve("last-good").metadata.run_id == "r1"


def test_default_url_and_sqlite_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HISTORY_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = default_history_url()
    assert url == f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}"
    HistoryStore(url).close()
    assert (tmp_path / "results" / "history.sqlite").is_file()
    monkeypatch.setenv("HARNESS_HISTORY_URL", "sqlite:///elsewhere.sqlite")
    assert default_history_url() == "sqlite:///elsewhere.sqlite"


def test_url_handling() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    for bad in ("not a url", "mysql+nosuchdriver://u@h/db"):
        with pytest.raises(HarnessInputError) as e:
            HistoryStore(bad)
        assert e.value.field == "history URL"


def test_record_in_history_warns_instead_of_failing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = make_run("r1", "2026-01-01T00:00:00+00:00")
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert record_in_history(results, tmp_path, url) is True
    assert HistoryStore(url).list_runs()[0].run_dir == str(tmp_path.resolve())
    assert record_in_history(results, tmp_path, f"postgresql://u@127.0.0.1:{_free_port()}/db") is False
    assert "not recorded in the history" in capsys.readouterr().err


def test_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(HarnessInputError, match="cannot open the history database") as e:
        HistoryStore(f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/db?connect_timeout=5")
    assert "secret" not in e.value.line()


# ---------------------------------------------------------------- the command line


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HistoryStore:
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    monkeypatch.setenv("HARNESS_HISTORY_URL", url)
    s = HistoryStore(url)
    s.record_run(make_run("run-one", "2026-01-01T00:00:00+00:00", e2e=10.0), "/runs/one")
    s.record_run(make_run("run-two", "2026-01-02T00:00:00+00:00", e2e=20.0, status="failed"), "/runs/two")
    return s


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_history_lists_runs(cli_db: HistoryStore) -> None:
    proc = run_cli("history")
    assert proc.returncode == 0, proc.stderr
    assert "run-one" in proc.stdout and "run-two" in proc.stdout and "1/1/2" in proc.stdout
    assert proc.stdout.index("run-two") < proc.stdout.index("run-one")
    proc = run_cli("history", "--suite", "nope")
    assert proc.returncode == 0 and "no runs recorded" in proc.stderr


def test_cli_trend(cli_db: HistoryStore) -> None:
    proc = run_cli("history", "--cell", KEY, "--metric", "e2e_ms")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("run-one") < out.index("run-two")
    assert "11 ± 1" in out and "21 ± 1" in out and "+90.9%" in out and "2026.4.1.0" in out

    line = _one_error_line(run_cli("history", "--cell", KEY, "--metric", "speed"))
    assert "--metric" in line and "'speed'" in line and "e2e_ms" in line and "tpot_ms" in line
    line = _one_error_line(run_cli("history", "--cell", KEY + "x", "--metric", "e2e_ms"))
    assert "--cell" in line and KEY in line  # suggests the close match
    _one_error_line(run_cli("history", "--cell", KEY))


def test_cli_baselines(cli_db: HistoryStore, tmp_path: Path) -> None:
    proc = run_cli("baseline", "set", "release", "run-one")
    assert proc.returncode == 0, proc.stderr
    assert cli_db.baselines() == {"release": "run-one"}

    # A run directory that is not in the history yet is recorded first.
    run_dir = tmp_path / "run3"
    run_dir.mkdir()
    results = make_run("run-three", "2026-01-03T00:00:00+00:00")
    write_metadata(run_dir, results.metadata)
    write_results(run_dir, results)
    proc = run_cli("baseline", "set", "nightly", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert cli_db.baselines()["nightly"] == "run-three"
    assert cli_db.list_runs()[0].run_dir == str(run_dir.resolve())

    proc = run_cli("baseline", "list")
    assert proc.returncode == 0 and "release" in proc.stdout and "run-three" in proc.stdout

    line = _one_error_line(run_cli("baseline", "set", "x", "no-such-run"))
    assert "run" in line and "'no-such-run'" in line


def test_cli_record_and_compare_last_good(cli_db: HistoryStore, tmp_path: Path) -> None:
    run_dir = tmp_path / "run4"
    run_dir.mkdir()
    results = make_run("run-four", "2026-01-04T00:00:00+00:00", e2e=10.0)
    write_results(run_dir, results)
    proc = run_cli("history", "record", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert cli_db.load("run-four") == results

    # last-good: run-two failed, so it is run-four, compared with itself here.
    proc = run_cli("compare", "last-good", "run-four")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = _one_error_line(run_cli("compare", "no-such-ref", "run-four"))
    assert "'no-such-ref'" in line


def test_noise_floor_ignores_a_real_shift_and_other_configurations(store: HistoryStore) -> None:
    """Five runs at ~10 ms then five at ~13 ms (a new build): the spread around one median would call
    that 13% noise; successive differences see the run-to-run wobble only."""
    wobble = (0.0, 0.2, -0.1, 0.1, -0.2)
    values = [10 + w for w in wobble] + [13 + w for w in wobble]
    for i, e2e in enumerate(values):
        store.record_run(make_run(f"s{i}", f"2026-02-{i + 1:02d}T00:00:00+00:00", e2e=e2e), None)
    sd, n = store.run_to_run_noise(KEY, "e2e_ms")
    assert n == 10 and sd < 0.05  # the spread around one median would be ~0.19
    # runs measured with another configuration (here: another openvino-genai) do not share the floor
    from harness.analyze.compare import measurement_config

    r = make_run("s0", "2026-02-01T00:00:00+00:00")
    config = measurement_config(r.cells[0], r.metadata)
    assert store.run_to_run_noise(KEY, "e2e_ms", config=config)[1] == 10
    for i in range(3):
        store.record_run(make_run(f"o{i}", f"2026-03-0{i + 1}T00:00:00+00:00", e2e=50.0, genai="2026.3.1.0"), None)
    assert store.run_to_run_noise(KEY, "e2e_ms", config=config)[1] == 10
    assert store.run_to_run_noise(KEY, "e2e_ms", config="no-such-config") is None


def test_a_database_from_before_the_config_column_is_migrated(tmp_path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    HistoryStore(url).close()
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        db.execute("ALTER TABLE cell_metrics DROP COLUMN config")
    with HistoryStore(url) as store:
        store.record_run(make_run("m1", "2026-01-01T00:00:00+00:00"), None)
        assert store.trend(KEY, "e2e_ms")[0].run_id == "m1"


# ---------------------------------------------------------------- change points over the history


def _nightly(store: HistoryStore, n: int = 24, step_at: int = 12, factor: float = 1.25, suite: str = "t",
             day0: int = 1, seed: int = 0) -> None:
    """`n` runs a day apart whose e2e medians shift by `factor` from run `step_at` (and the genai version
    with it); 3% noise."""
    import numpy as np

    noise = np.exp(np.random.default_rng(seed).normal(0, 0.03, n))
    for i in range(n):
        e2e = 100 * noise[i] * (factor if i >= step_at else 1.0) - 1  # make_run's median is e2e + 1
        when = f"2026-03-{day0 + i:02d}T00:00:00+00:00"
        store.record_run(make_run(f"{suite}-{i:02d}", when, e2e=e2e, suite=suite,
                                  genai="2026.4.1.0" if i >= step_at else "2026.4.0.0"), None)


def test_series_are_per_suite_and_host_and_find_the_step(store: HistoryStore) -> None:
    from harness.analyze.changes import series_changes
    from harness.core.schema import ChangeSettings

    _nightly(store, suite="a")
    _nightly(store, n=10, suite="b", factor=1.0, seed=1)
    series = store.series(cells=[KEY], metrics=["e2e_ms"])
    assert sorted(k.suite for k in series) == ["a", "b"] and {k.host for k in series} == {"h"}
    a = next(v for k, v in series.items() if k.suite == "a")
    assert [p.run_id for p in a] == [f"a-{i:02d}" for i in range(24)]
    (c,) = series_changes(next(k for k in series if k.suite == "a"), a, ChangeSettings())
    assert (c.before_run, c.after_run, c.direction) == ("a-11", "a-12", "regression")
    assert "2026.4.0.0" in c.before_versions and "2026.4.1.0" in c.after_versions
    assert 0.2 < c.change < 0.3 and c.runs_since == 12
    assert len(store.series(metrics=["e2e_ms"], since="2026-03-20T00:00:00+00:00", suite="a")[
        next(k for k in series if k.suite == "a")]) == 5
    assert len(next(iter(store.series(cells=[KEY], metrics=["e2e_ms"], suite="a", limit=7).values()))) == 7
    assert store.series(host="elsewhere") == {}


def test_ab_sides_are_not_part_of_a_series(store: HistoryStore) -> None:
    from harness.experiment.ab import ABResult, ABSettings, SideSpec

    _nightly(store, n=8, factor=1.0)
    base = make_run("ab-base", "2026-03-04T12:00:00+00:00", e2e=500.0)
    cand = make_run("ab-cand", "2026-03-04T12:01:00+00:00", e2e=900.0)
    ab = ABResult(ab_id="ab-1", suite_name="t", base=SideSpec(), candidate=SideSpec(properties={"X": 1}),
                  base_run="ab-base", candidate_run="ab-cand", settings=ABSettings(),
                  started_at="2026-03-04T12:00:00+00:00")
    store.record_ab(ab, base, cand, None)
    assert store.has_run("ab-cand")
    (points,) = store.series(cells=[KEY], metrics=["e2e_ms"]).values()
    assert [p.run_id for p in points] == [f"t-{i:02d}" for i in range(8)]
    assert [p.run_id for p in store.trend(KEY, "e2e_ms")] == [f"t-{i:02d}" for i in range(8)]


def test_cli_changes_gates_on_recent_regressions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    monkeypatch.setenv("HARNESS_HISTORY_URL", url)
    with HistoryStore(url) as s:
        _nightly(s, n=20, step_at=16)
    proc = run_cli("history", "changes", "--metric", "e2e_ms")
    assert proc.returncode == 0, proc.stderr
    assert "t-15 → t-16" in proc.stdout and "regression" in proc.stdout and "+2" in proc.stdout
    assert run_cli("history", "changes", "--recent", "3").returncode == 0  # 4 runs at the new level
    proc = run_cli("history", "changes", "--recent", "4", "--format", "json")
    assert proc.returncode == 1 and "t-16" in proc.stderr
    report = json.loads(proc.stdout)
    (c,) = [c for c in report["changes"] if c["metric"] == "e2e_ms" and c["cell_key"] == KEY]
    assert c["after_run"] == "t-16" and c["runs_since"] == 4
    # e2e and what follows from it (output tok/s), in both cells; every one a regression
    assert report["recent_regressions"] == len(report["changes"]) >= 4
    assert {c["metric"] for c in report["changes"]} >= {"e2e_ms", "output_tps"}
    proc = run_cli("history", "--cell", KEY, "--metric", "e2e_ms")  # the trend marks where the change starts
    assert proc.returncode == 0 and "regression" in proc.stdout
    assert [ln.split()[1] for ln in proc.stdout.splitlines() if "▶" in ln] == ["t-16"]
    proc = run_cli("history", "changes", "--format", "md", "--out", str(tmp_path / "c.md"), "--cell", KEY)
    assert proc.returncode == 0 and "| t @ h: " in (tmp_path / "c.md").read_text()
    # a higher bar for significance than the data reaches: nothing found
    proc = run_cli("history", "changes", "--max-pvalue", "1e-300", "--recent", "4")
    assert proc.returncode == 0 and "t-16" not in proc.stdout


@pytest.mark.parametrize("args, option", [
    (["--recent", "2"], "--recent"),
    (["--metric", "speed"], "--metric"),
    (["--cell", "nope/int8"], "--cell"),
    (["--since", "last tuesday"], "--since"),
    (["--suite", "never-ran"], "--suite"),
    (["--max-pvalue", "2"], "--max-pvalue"),
    (["--min-segment", "1"], "--min-segment"),
    (["--format", "xml"], "--format"),
    (["--out", "x.md"], "--out"),
])
def test_cli_changes_bad_input_is_one_line(cli_db: HistoryStore, args: list[str], option: str) -> None:
    line = _one_error_line(run_cli("history", "changes", *args))
    assert option in line, line


def test_report_trends_carry_the_change_points_of_the_runs_suite(tmp_path: Path) -> None:
    from harness.cli.history.recording import history_trends

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with HistoryStore(url) as s:
        _nightly(s, n=20, step_at=10)
        _nightly(s, n=20, suite="other", factor=3.0, step_at=5)
        last = s.load("t-19")
    trends = history_trends(last, url)
    # e2e is not a headline trend metric; output tok/s follows it and is
    t = trends[f"{KEY} output_tps"]
    assert len(t.points) == 20 and [m.index for m in t.marks] == [10] and t.marks[0].regression
    assert all(p[0].startswith("t-") for p in t.points)  # the other suite's series is not mixed in
    assert history_trends(last, f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}") == {}


def test_text_that_does_not_encode_is_recorded_and_looked_up(tmp_path):
    """Before: a run directory or a --cell holding a lone surrogate (a path or argument in bytes that are not
    UTF-8, as os.fsdecode gives them) made the driver raise UnicodeEncodeError."""
    res = factories.run([factories.result(factories.spec(key="k\udcff"), [factories.sample(i) for i in range(3)])])
    with HistoryStore(f"sqlite:///{tmp_path}/h.sqlite") as store:
        store.record_run(res, str(tmp_path / "run\udcff"))
        [row] = store.list_runs()
        assert row.run_dir.endswith("run\ufffd")
        assert [p.median for p in store.trend("k\udcff", "tpot_ms")] == [p.median for p in store.trend("k\ufffd", "tpot_ms")]
        assert store.trend("k\ufffd", "tpot_ms")


# ---------------------------------------------------------------- ratios to a reference side


def _with_reference(results: RunResults, ratio: float, label: str = "r2026.3") -> RunResults:
    """The fp16 cell measured beside a reference side: its e2e ratio `ratio` to it."""
    from harness.core.schema import RatioFigure, ReferenceRatios
    from harness.core.stats import summarize

    cell = results.cells[0]
    e2e = cell.summaries["e2e_ms"].median
    cell.vs_reference = ReferenceRatios(
        label=label, description="env=r2026_3", runtime_versions={"openvino-genai": "2026.3.1"},
        ratios=[RatioFigure(metric="e2e_ms", ratio=ratio, ci_low=ratio * 0.99, ci_high=ratio * 1.01, call_pairs=32,
                            process_pairs=4, higher_is_better=False)],
        summaries={"e2e_ms": summarize([e2e / ratio] * 3)})
    return results


def _nightly_with_reference(store: HistoryStore, n: int = 30, step_at: int = 27, factor: float = 1.05,
                            seed: int = 0) -> None:
    """`n` runs whose e2e medians move 8% run to run with the machine while their ratio to the reference side moves
    1%; from run `step_at` on the candidate is `factor` slower, in both."""
    import numpy as np

    rng = np.random.default_rng(seed)
    machine, own = np.exp(rng.normal(0, 0.08, n)), np.exp(rng.normal(0, 0.01, n))
    for i in range(n):
        ratio = own[i] * (factor if i >= step_at else 1.0)
        run = make_run(f"t-{i:02d}", f"2026-03-{i + 1:02d}T00:00:00+00:00", e2e=100 * machine[i] * ratio - 1)
        store.record_run(_with_reference(run, float(ratio)), None)


def test_ratios_round_trip_beside_the_values(store: HistoryStore) -> None:
    store.record_run(_with_reference(make_run("r1", "2026-01-01T00:00:00+00:00", e2e=10.0), 1.04), None)
    store.record_run(make_run("r2", "2026-01-02T00:00:00+00:00", e2e=20.0), None)  # no reference side
    store.record_run(_with_reference(make_run("r3", "2026-01-03T00:00:00+00:00"), 0.97, label="r2026.4"), None)
    series = store.ratio_series(cells=[KEY], metrics=["e2e_ms"])
    assert {k.reference for k in series} == {"r2026.3", "r2026.4"}  # a new reference starts its own series
    (old,) = [v for k, v in series.items() if k.reference == "r2026.3"]
    assert [(p.run_id, p.median) for p in old] == [("r1", pytest.approx(1.04))]
    assert all(k.reference is None for k in store.series(cells=[KEY], metrics=["e2e_ms"]))
    points = store.trend(KEY, "e2e_ms")
    assert [(p.run_id, p.ratio, p.reference) for p in points] == [
        ("r1", pytest.approx(1.04), "r2026.3"), ("r2", None, None), ("r3", pytest.approx(0.97), "r2026.4")]
    assert points[0].ratio_low == pytest.approx(1.04 * 0.99) and points[0].median == pytest.approx(11.0)
    # re-recording replaces the ratios with the run's
    store.record_run(make_run("r1", "2026-01-01T00:00:00+00:00", e2e=10.0), None)
    assert store.trend(KEY, "e2e_ms")[0].ratio is None
    assert store.load("r3").cells[0].vs_reference is not None


def test_a_database_from_before_the_ratio_table_opens_and_records(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    HistoryStore(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE cell_ratios")
    with HistoryStore(f"sqlite:///{path}") as store:
        assert store.ratio_series() == {} and store.trend(KEY, "e2e_ms") == []
        store.record_run(_with_reference(make_run("m1", "2026-01-01T00:00:00+00:00"), 1.02), None)
        assert [p.ratio for p in store.trend(KEY, "e2e_ms")] == [pytest.approx(1.02)]


def test_cli_changes_finds_the_shift_in_the_ratio_series_the_absolute_one_hides(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    monkeypatch.setenv("HARNESS_HISTORY_URL", url)
    with HistoryStore(url) as s:
        _nightly_with_reference(s)
    proc = run_cli("history", "changes", "--metric", "e2e_ms", "--on", "ratio", "--recent", "3", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    (c,) = report["changes"]
    assert (c["reference"], c["after_run"], c["direction"], c["runs_since"]) == ("r2026.3", "t-27", "regression", 3)
    assert 0.03 < c["change"] < 0.07 and report["ratio_series"] == report["series"] == 1
    assert report["ratio_settings"]["noise"] == "series" and report["on"] == "ratio"
    assert "÷ r2026.3" in proc.stderr  # the gate's line names the ratio series
    # the run medians, moved 8% by the machine, show nothing
    proc = run_cli("history", "changes", "--metric", "e2e_ms", "--on", "value", "--recent", "3")
    assert proc.returncode == 0 and "no change points" in proc.stderr
    proc = run_cli("history", "changes", "--metric", "e2e_ms", "--cell", KEY)  # both by default, labelled
    assert proc.returncode == 0 and "e2e_ms ÷ r2026.3" in proc.stdout and "t-26 → t-27" in proc.stdout
    proc = run_cli("history", "changes", "--metric", "e2e_ms", "--format", "md")
    assert "1 of the series are ratios candidate / reference side" in proc.stdout
    proc = run_cli("history", "--cell", KEY, "--metric", "e2e_ms")  # the trend shows the ratios and marks the start
    assert proc.returncode == 0 and "÷ reference" in proc.stdout and "÷ r2026.3" in proc.stdout
    (marked,) = [ln for ln in proc.stdout.splitlines() if "▶" in ln]
    assert marked.split()[1] == "t-27"
    line = _one_error_line(run_cli("history", "changes", "--on", "ratios"))
    assert "--on" in line and "value, ratio, both" in line


def test_cli_changes_on_ratio_with_no_ratio_series_judges_nothing(cli_db: HistoryStore) -> None:
    proc = run_cli("history", "changes", "--on", "ratio")
    assert proc.returncode == 3 and "no recorded ratio series match" in proc.stderr


@pytest.mark.parametrize(("url", "says"), [
    ("nonsense://", "unsupported database"), ("mysql://u:secret@h/db", "database driver not installed: MySQLdb"),
    ("://", "not a database URL")])
def test_a_url_no_database_can_be_opened_from_is_one_line(url, says):
    with pytest.raises(HarnessInputError) as e:
        HistoryStore(url)
    assert says in e.value.line() and "secret" not in e.value.line()
