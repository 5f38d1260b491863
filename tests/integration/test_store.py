"""The run directory's append-only record and its lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.core.errors import HarnessInputError
from harness.records.store import CELLS, append_cell, load_cells, lock_run_dir, scan_cells
from tests.conftest import ROOT, run_cli
from tests.factories import result, run, sample, spec


def _cell(key: str):
    return result(spec(key=key), [sample(0), sample(1)])


@pytest.mark.parametrize("fragment", [b'{"key": "m/fp16/CPU/gen', b"\x00\x00\x00", b"{", b'{"key": "x"}'])
def test_a_record_appended_after_a_torn_line_is_kept(tmp_path, fragment):
    append_cell(tmp_path, _cell("a"))
    with open(tmp_path / CELLS, "ab") as f:
        f.write(fragment)  # the process died (or the disk filled) in the middle of a write
    append_cell(tmp_path, _cell("b"))
    cells, bad = scan_cells(tmp_path)
    assert [c.key for c in cells] == ["a", "b"]
    assert bad == [2]
    assert [c.key for c in load_cells(tmp_path)] == ["a", "b"]


def test_unreadable_records_are_reported_not_dropped_silently(tmp_path):
    append_cell(tmp_path, _cell("a"))
    with open(tmp_path / CELLS, "ab") as f:
        f.write(b"garbage\n\xff\xfe not utf-8\n")
    append_cell(tmp_path, _cell("c"))
    cells, bad = scan_cells(tmp_path)
    assert [c.key for c in cells] == ["a", "c"] and bad == [2, 3]


def test_second_lock_on_a_run_directory_is_one_clear_error(tmp_path):
    held = lock_run_dir(tmp_path)
    with pytest.raises(HarnessInputError) as e:
        lock_run_dir(tmp_path)
    assert "in use by another harness run" in str(e.value) and str(tmp_path) in str(e.value)
    held.close()
    lock_run_dir(tmp_path).close()  # released: a crashed holder leaves no stale lock


def test_concurrent_resume_is_refused_and_a_dead_holder_releases(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: t, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "metadata.json").write_text(run([]).metadata.model_dump_json())
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from harness.records.store import lock_run_dir; f = lock_run_dir(Path(sys.argv[1])); "
                               "print('locked', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_cli("run", str(suite), "--resume", str(out), timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "in use by another harness run" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    lock_run_dir(out).close()


@pytest.mark.parametrize("name", ["../../tmp/evil", "/etc", "a/b", "..", "x" * 101, "", " lead", "a\nb", "[/x]"])
def test_suite_names_that_would_leave_results_are_refused(tmp_path, name):
    import yaml

    from harness.plan.suite import load_suite

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": name, "models": [{"name": "t", "source": "synthetic:tiny"}],
                                 "scenarios": [{"name": "g", "kind": "generate"}]}))
    with pytest.raises(HarnessInputError) as e:
        load_suite(p)
    assert "name" in str(e.value) and "plain name" in str(e.value)


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\t=1"])
def test_csv_cells_never_start_a_formula(text):
    import csv
    import io

    from reports.csv_report import render_csv

    c = result(spec(key=text), [sample(0)], status="failed", error=text)
    rows = list(csv.DictReader(io.StringIO(render_csv(run([c])), newline="")))
    assert rows[0]["key"] == "'" + text and rows[0]["error"] == "'" + text
    # numbers stay numbers, negative ones too
    assert float(rows[0]["tpot_ms.median"]) > 0


def test_csv_cell_text_neutralises_control_starts():
    from harness.core.escaping import csv_cell

    # a lone CR becomes a newline: the csv module quotes a cell for "\n" only, and a reader splits at "\r"
    assert csv_cell("\r=1") == "'\n=1" and csv_cell("\n=1") == "'\n=1" and csv_cell("a\r\nb") == "a\nb"
    assert csv_cell(-2.5) == -2.5 and csv_cell(None) == "" and csv_cell("plain") == "plain"


def test_yaml_alias_bomb_is_refused_fast(tmp_path):
    from harness.plan.suite import load_suite

    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(levels) + "\nname: bomb\nmodels: *a8\nscenarios: [{name: g, kind: generate}]\n")
    t0 = time.monotonic()
    with pytest.raises(HarnessInputError) as e:
        load_suite(p)
    assert time.monotonic() - t0 < 20  # refused up front; expanding it would take minutes and gigabytes
    assert "alias" in str(e.value) and str(p) in str(e.value)


def test_suites_with_ordinary_anchors_still_load(tmp_path):
    from harness.plan.suite import load_suite

    p = tmp_path / "s.yaml"
    p.write_text("name: s\nmodels: [{name: t, source: synthetic:tiny}]\n"
                 "x-props: &p {KV_CACHE_PRECISION: u8}\nproperties: *p\n"
                 "scenarios: [{name: g, kind: generate}]\n")
    with pytest.raises(HarnessInputError) as e:  # the anchor holder itself is an unknown key, said as such
        load_suite(p)
    assert "x-props" in str(e.value)
    p.write_text("name: s\nmodels: [{name: t, source: synthetic:tiny}]\n"
                 "properties: &p {KV_CACHE_PRECISION: u8}\n"
                 "scenarios: [{name: g, kind: generate}, {name: h, kind: generate, generation: *p}]\n")
    suite, _ = load_suite(p)
    assert suite.properties == {"KV_CACHE_PRECISION": "u8"}


HOSTILE = ["[/x]", "[bold red]boom[/]", "\x1b[2J\x1b[31mred", "a\x07bell", "\x9b31m"]


@pytest.mark.parametrize("text", HOSTILE)
def test_user_text_is_printed_as_text(text):
    from harness.core.console import PlainConsole, styled

    c = PlainConsole(record=True, width=200)
    c.print(f"cell {text} done")
    c.print(styled("red", "error:", text))
    out = c.export_text()
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    if text.isprintable():
        assert text in out  # markup shown, not applied


@pytest.mark.parametrize("text", HOSTILE)
def test_history_prints_hostile_names_and_keeps_working(tmp_path, text):
    from harness.cli.history.recording import record_in_history

    db = f"sqlite:///{tmp_path / 'h.sqlite'}"
    key = f"m{text}/fp16/CPU/generate/in8-out4"
    res = run([result(spec(key=key), [sample(0), sample(1)])])
    assert record_in_history(res, tmp_path, db)
    for args in (["history", "--db", db], ["history", "--db", db, "--cell", key, "--metric", "tpot_ms"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "\x1b[2J" not in proc.stdout


def test_error_line_with_markup_and_escapes_in_a_path(tmp_path):
    proc = run_cli("run", str(tmp_path / "[red]x[/]\x1b[2J.yaml"))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "[red]x[/]" in line and "\x1b" not in line and "Traceback" not in line


@pytest.mark.parametrize("where, field", [({"precison": "int8"}, "precison"), ({"precision": "int3"}, "gates[0].where"),
                                          ({"device": "GPU"}, "gates[0].where"), ({"kind": "speculative"}, "gates[0].where")])
def test_a_gate_that_selects_no_cell_is_an_error(tmp_path, where, field):
    import yaml

    from harness.plan.suite import expand, load_suite

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "models": [{"name": "t", "source": "synthetic:tiny"}],
                                 "precisions": ["fp16", "int8"], "scenarios": [{"name": "g", "kind": "generate"}],
                                 "gates": [{"metric": "tpot_ms", "max": 5, "where": where}]}))
    with pytest.raises(HarnessInputError) as e:
        suite, _ = load_suite(p)
        expand(suite, p)
    assert field in str(e.value) and str(p) in str(e.value)


def test_a_suite_that_expands_to_no_cell_is_an_error(tmp_path):
    import yaml

    from harness.plan.suite import expand, load_suite

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "models": [{"name": "t", "source": "synthetic:tiny"}],
                                 "scenarios": [{"name": "g", "kind": "generate"}], "exclude": [{"precision": "fp16"}]}))
    suite, _ = load_suite(p)
    with pytest.raises(HarnessInputError) as e:
        expand(suite, p)
    assert "no cell" in str(e.value)


def test_retry_failed_runs_failed_cells_again_and_keeps_every_attempt(tmp_path, monkeypatch):
    from harness.execute import runner
    specs = [spec(key="ok"), spec(key="bad"), spec(key="slow")]
    outcomes = {"ok": ["ok"], "bad": ["crashed", "ok"], "slow": ["timeout", "timeout"]}
    calls = []

    def fake_run_cell(cell, run_dir, options, progress, preparations=None):
        calls.append(cell.key)
        status = outcomes[cell.key].pop(0)
        return result(cell, [sample(0)] if status == "ok" else [], status=status,
                      error=None if status == "ok" else f"{status} in attempt")

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    meta = run([]).metadata
    opts = runner.RunOptions(cache_dir=tmp_path, available_devices=["CPU"])
    runner.run_cells(specs, tmp_path, meta, opts, runner.ProgressSink())
    runner.run_cells(specs, tmp_path, meta, opts, runner.ProgressSink())  # plain resume: nothing to do
    assert calls == ["ok", "bad", "slow"]
    res = runner.run_cells(specs, tmp_path, meta, opts, runner.ProgressSink(), retry_failed=True)
    assert calls == ["ok", "bad", "slow", "bad", "slow"]
    by_key = {c.key: c for c in res.cells}
    assert by_key["bad"].status == "ok" and "attempt 2; earlier: crashed (crashed in attempt)" in by_key["bad"].notes
    assert by_key["slow"].status == "timeout" and any("attempt 2" in n for n in by_key["slow"].notes)
    assert len(load_cells(tmp_path)) == 5  # every attempt kept in cells.jsonl


def test_retry_failed_needs_resume():
    proc = run_cli("run", "suites/smoke.yaml", "--retry-failed")
    assert proc.returncode == 2 and "--retry-failed" in proc.stderr and "--resume" in proc.stderr


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 KiB filesystem to fill (skipped where this machine does not allow mounting one)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt):
    with open(mnt / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_disk_full_mid_run_keeps_what_was_measured(small_tmpfs, monkeypatch):
    from harness.execute import runner
    from harness.records.store import load_results

    run_dir = small_tmpfs / "run"
    run_dir.mkdir()
    specs = [spec(key=f"c{i}") for i in range(4)]
    filled = []

    def fake_run_cell(cell, run_dir_, options, progress, preparations=None):
        if cell.key == "c2" and not filled:
            _fill(small_tmpfs)  # the disk fills while the third cell measures
            filled.append(True)
        return result(cell, [sample(i) for i in range(3)])

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    opts = runner.RunOptions(cache_dir=small_tmpfs, available_devices=["CPU"])
    with pytest.raises(OSError):
        runner.run_cells(specs, run_dir, run([]).metadata, opts, runner.ProgressSink())
    assert [c.key for c in load_cells(run_dir)] == ["c0", "c1"]
    # the last complete results.json: rewritten after a cell unless the last rewrite was under 5x its own cost ago
    # (RunRecord.record), so with these instant cells it may hold c0 alone; never a torn file
    assert [c.key for c in load_results(run_dir).cells] in (["c0"], ["c0", "c1"])
    (small_tmpfs / "filler").unlink()
    runner.run_cells(specs, run_dir, run([]).metadata, opts, runner.ProgressSink())  # resume after freeing space
    assert [c.key for c in load_cells(run_dir)] == ["c0", "c1", "c2", "c3"]


def test_disk_full_and_unusable_output_paths_are_one_line(small_tmpfs, tmp_path):
    out_dir = tmp_path / "r"
    out_dir.mkdir()
    (out_dir / "results.json").write_text(run([_cell("a")]).model_dump_json())
    _fill(small_tmpfs)
    proc = run_cli("report", str(out_dir), "--out", str(small_tmpfs / "report.md"))
    assert proc.returncode == 3, proc.stderr  # a full disk is not bad input, and nothing could be written
    assert "No space left" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for target in (tmp_path / "r" / "results.json" / "x.md", tmp_path / "missing" / "deeper" / "x.md",
                   tmp_path / ("n" * 300 + ".md")):
        proc = run_cli("report", str(out_dir), "--out", str(target))
        assert proc.returncode == 2, (target, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_read_only_output_folder_is_one_line(small_tmpfs, tmp_path):
    out_dir = tmp_path / "r"
    out_dir.mkdir()
    (out_dir / "results.json").write_text(run([_cell("a")]).model_dump_json())
    if subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    proc = run_cli("report", str(out_dir), "--out", str(small_tmpfs / "report.md"))
    assert proc.returncode == 2 and "Read-only file system" in proc.stderr, proc.stderr
    proc = run_cli("run", "suites/smoke.yaml", "--out", str(small_tmpfs / "run"))
    assert proc.returncode == 2 and "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_and_history_print_whole_keys(tmp_path):
    from harness.cli.history.recording import record_in_history

    key = "m/fp16/CPU/speculative[num_assistant_tokens=3]/in8-out4"
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(run([result(spec("speculative", key=key), [sample(i) for i in range(5)])])
                                        .model_dump_json())
    proc = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert "[num_assistant_tokens=3]" in proc.stdout, proc.stdout
    db = f"sqlite:///{tmp_path / 'h.sqlite'}"
    record_in_history(run([result(spec("speculative", key=key), [sample(0)])]), tmp_path / "a", db)
    proc = run_cli("history", "--db", db, "--cell", key, "--metric", "tpot_ms")
    assert proc.returncode == 0 and "[num_assistant_tokens=3]" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("extra, field", [
    ({"generation": {"max_new_tokens": 8, "min_new_tokens": 9}}, "min_new_tokens"),
    ({"generation": {"max_new_tokens": [16, 4], "min_new_tokens": 8}}, "min_new_tokens"),
    ({"generation": {"num_beams": 4}}, "num_beams"),
    ({"iterations": 50, "max_iterations": 10}, "max_iterations"),
    ({"iterations": True}, "iterations"),
    ({"warmup": 1.5}, "warmup"),
    ({"processes": "3"}, "processes"),
    ({"generation": {"max_new_tokens": True}}, "max_new_tokens"),
    ({"fidelity_tolerance": float("nan")}, "fidelity_tolerance"),
    ({"fidelity_tolerance": -0.1}, "fidelity_tolerance"),
    ({"transformers_tolerance": 0}, "transformers_tolerance"),
    ({"transformers_tolerance": float("nan")}, "transformers_tolerance"),
    ({"iterations": 10**30}, "iterations"),
])
def test_contradictory_or_mistyped_suite_values_are_one_line(tmp_path, extra, field):
    import yaml

    from harness.plan.suite import load_suite

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "models": [{"name": "t", "source": "synthetic:tiny"}],
                                 "scenarios": [{"name": "g", "kind": "generate"}], **extra}))
    with pytest.raises(HarnessInputError) as e:
        load_suite(p)
    assert field in str(e.value) and str(p) in str(e.value), str(e.value)


@pytest.mark.parametrize("content, where", [(b"ok prompt\n\xff\xfe bad\n", "line 2"), (b'{"prompt": 5}\n', "line 1.prompt"),
                                            (b'{"prompt": null}\n', "line 1.prompt"), (b'{"prompt": ""}\n', "line 1.prompt"),
                                            (b'{"prompt": ["a"]}\n', "line 1.prompt")])
def test_bad_prompt_files_are_one_line(tmp_path, content, where):
    import yaml

    from harness.plan.suite import expand, load_suite

    name = "p.jsonl" if content.startswith(b"{") else "p.txt"
    (tmp_path / name).write_bytes(content)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "models": [{"name": "t", "source": "synthetic:tiny"}],
                                 "prompts": {"file": name}, "scenarios": [{"name": "g", "kind": "generate"}]}))
    suite, _ = load_suite(p)
    with pytest.raises(HarnessInputError) as e:
        expand(suite, p)
    assert where in str(e.value) and name in str(e.value)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", b"{\"schema_version\": \"1.3\", \"metadata\": 5}",
                                     b"", b"[]", b"\xff" * 100])
def test_binary_or_damaged_result_files_are_one_line_for_every_command(tmp_path, content):
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.json").write_bytes(content)
    (d / "metadata.json").write_bytes(content)
    good = tmp_path / "good"
    good.mkdir()
    (good / "results.json").write_text(run([_cell("a")]).model_dump_json())
    for args in (["report", str(d)], ["report", str(d), "--format", "html"], ["compare", str(good), str(d)],
                 ["compare", str(d), str(good)], ["run", "--resume", str(d)], ["history", "record", str(d)]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)


@pytest.mark.parametrize("hostile", ["a|b", "<script>alert(1)</script>", "line\nbreak", "tick`s", "x\r|y"])
def test_markdown_report_keeps_user_text_in_its_cell(hostile):
    from reports.markdown import render_markdown

    s = spec(key=f"m{hostile}/fp16/CPU/generate/in8-out4")
    s.model.name = f"m{hostile}"
    s.properties = {"NAME": hostile}
    bad = result(s, [], status="failed", error=f"RuntimeError: {hostile}")
    ok = result(spec(key=f"ok{hostile}"), [sample(0), sample(1)])
    md = render_markdown(run([ok, bad]))
    assert "<script>" not in md
    lines = md.splitlines()
    width = None
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            width = None
            continue
        cells = len(line.replace("\\|", "").split("|"))  # unescaped cell separators
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            width = cells  # a header
        elif not line.startswith("|---"):
            assert cells == width, line
    assert "RuntimeError:" in md and all("\n" not in ln for ln in md.splitlines())


@pytest.mark.parametrize("args, field", [(["--alpha", "2"], "--alpha"), (["--alpha", "0"], "--alpha"),
                                         (["--alpha", "nan"], "--alpha"), (["--threshold", "tpot_ms=-0.1"], "--threshold"),
                                         (["--threshold", "tpot_ms=nan"], "--threshold")])
def test_compare_out_of_range_options_are_one_line(tmp_path, args, field):
    d = tmp_path / "r"
    d.mkdir()
    (d / "results.json").write_text(run([_cell("a")]).model_dump_json())
    proc = run_cli("compare", str(d), str(d), *args)
    assert proc.returncode == 2 and field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("content", [b"garbage\n", b"\x00" * 4096, b"SQLite format 3\x00" + b"\xff" * 200])
def test_history_db_that_is_not_a_database_is_one_line(tmp_path, content):
    db = tmp_path / "notdb.sqlite"
    db.write_bytes(content)
    proc = run_cli("history", "--db", f"sqlite:///{db}")
    assert proc.returncode == 3, proc.stderr  # nothing recorded there can be read: not judged (README, Exit codes)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_resume_refuses_a_run_directory_holding_a_link_before_running_anything(tmp_path):
    from harness.records.store import write_metadata

    target = tmp_path / "system-file"
    target.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_metadata(run_dir, run([]).metadata)
    (run_dir / CELLS).symlink_to(target)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: tiny, source: 'synthetic:tiny'}]\nprecisions: [fp16]\n"
                     "scenarios: [{name: greedy, kind: generate}]\niterations: 1\n")
    proc = run_cli("run", str(suite), "--resume", str(run_dir))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "cells.jsonl" in errors[0] and "symbolic link" in errors[0], \
        proc.stderr[-2000:]
    assert target.read_text() == "precious\n" and "cells, cache" not in proc.stderr  # no cell started
