"""Bad input: one clear line naming file, field and value; exit code 2; no traceback."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import run_cli

GOOD = """
name: bad
models: [{name: m, source: synthetic:tiny}]
precisions: [fp16]
iterations: 1
scenarios: [{name: greedy, kind: generate}]
"""


def _check_one_line(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("old,new,field,value", [
    ("precisions: [fp16]", "precisions: [fp8]", "precisions[0]", "'fp8'"),
    ("iterations: 1", "iterations: 0", "iterations", "0"),
    ("iterations: 1", "iterations: 1\ngeneration: {max_new_tokens: -3}", "generation.max_new_tokens", "-3"),
    ("iterations: 1", "iterations: 1\ndevices: [XPU]", "devices", "XPU"),
    ("iterations: 1", "iterations: 1\nfrobnicate: true", "frobnicate", "True"),
    ("source: synthetic:tiny", "source: /nonexistent/model", "models[0].source", "/nonexistent/model"),
])
def test_bad_suite(tmp_path, old, new, field, value):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace(old, new))
    _check_one_line(run_cli("run", str(p), "--out", str(tmp_path / "r")), str(p), field, value)
    assert not (tmp_path / "r" / "cells.jsonl").exists()


def test_malformed_yaml(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: [unclosed\n")
    _check_one_line(run_cli("run", str(p)), str(p), "malformed YAML")


def test_missing_suite_file(tmp_path):
    _check_one_line(run_cli("run", str(tmp_path / "nope.yaml")), "nope.yaml", "not found")


def test_bad_report_format(tmp_path):
    _check_one_line(run_cli("report", str(tmp_path), "--format", "pdf"), "--format", "pdf")


def test_report_of_missing_run(tmp_path):
    _check_one_line(run_cli("report", str(tmp_path / "none")), "results file not found")


@pytest.mark.integration
def test_truncated_ir(tmp_path, model_cache):
    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model

    ir = prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path
    bad = tmp_path / "ir"
    shutil.copytree(ir, bad)
    binf = bad / "openvino_model.bin"
    binf.write_bytes(binf.read_bytes()[: binf.stat().st_size // 2])
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("synthetic:tiny", str(bad)))
    _check_one_line(run_cli("run", str(p), cache=model_cache), str(p), "models[0].source", "truncated")


def test_debug_shows_traceback(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("iterations: 1", "iterations: 0"))
    proc = run_cli("run", str(p), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def _ir_copy(tmp_path, model_cache):
    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model

    ir = prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path
    bad = tmp_path / "ir"
    shutil.copytree(ir, bad)
    return bad


@pytest.mark.integration
@pytest.mark.parametrize("damage,needle", [
    (lambda x: re.sub(r"<layers>.*</layers>", "<layers></layers>", x, flags=re.S), "has no layers"),
    (lambda x: re.sub(r'<layer [^>]*type="Parameter".*?</layer>', "", x, flags=re.S), "no Parameter layer"),
    (lambda x: re.sub(r'<layer [^>]*type="Result".*?</layer>', "", x, flags=re.S), "no Result layer"),
    (lambda x: re.sub(r'offset="\d+"', 'offset="zz"', x, count=1), "non-numeric offset"),
    (lambda x: x[: len(x) // 2], "does not parse"),
])
def test_damaged_ir_xml_is_one_line(tmp_path, model_cache, damage, needle):
    bad = _ir_copy(tmp_path, model_cache)
    xml = bad / "openvino_model.xml"
    xml.write_text(damage(xml.read_text()))
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("synthetic:tiny", str(bad)))
    _check_one_line(run_cli("run", str(p), cache=model_cache), str(p), "models[0].source", needle)
    _check_one_line(run_cli("serve", str(bad), "--port", "0", cache=model_cache), needle)


@pytest.mark.parametrize("args,needle", [
    (["--device", "TPU"], "unknown device 'TPU'"),
    (["--device", "GPU"], "GPU not available here"),
    (["--device", "HETERO:GPU,NPU"], "not available here"),
    (["--device", "HETERO:"], "needs a device list"),
    (["--port", "70000"], "--port"),
    (["--port", "-1"], "--port"),
    (["--port", "http"], "--port"),
    (["--properties", "[1]"], "--properties"),
])
def test_serve_refuses_what_it_cannot_use_before_loading(args, needle):
    proc = run_cli("serve", "synthetic:no-such-model-needed", *args, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr


@pytest.mark.integration
def test_serve_properties_the_runtime_refuses_are_one_line(model_cache):
    proc = run_cli("serve", "synthetic:tiny", "--port", "0", "--properties", '{"NUM_STREAMS": "banana"}',
                   cache=model_cache, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]  # after the progress lines
    assert len(errors) == 1 and "cannot serve" in errors[0] and "banana" in errors[0], proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["prepare", "synthetic:tiny", "--precision", "int4", "--ratio", "nan"], "--ratio"),
    (["prepare", "synthetic:tiny", "--precision", "int4", "--ratio", "5"], "--ratio"),
    (["prepare", "synthetic:tiny", "--precision", "int4", "--group-size", "0"], "--group-size"),
    (["prepare", "synthetic:tiny", "--precision", "int4", "--group-size", "-5"], "--group-size"),
    (["prepare", "synthetic:tiny", "--precision", "int4", "--group-size", "99999999999999999999"], "--group-size"),
    (["history", "--limit", "99999999999999999999999"], "--limit"),
    (["history", "--limit", "0"], "--limit"),
])
def test_out_of_range_numbers_on_the_command_line(args, needle):
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr


def test_every_command_reads_harness_cache_dir(monkeypatch, tmp_path):
    from harness.models.cache import default_cache_dir

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "ov-genai-harness"


def test_serve_on_a_host_that_cannot_be_resolved_is_one_line():
    proc = run_cli("serve", "synthetic:tiny", "--host", "no-such-host.invalid", timeout=60)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "--host" in errors[0], proc.stderr


@pytest.mark.parametrize("command", [["report", "{run}", "--format", "html"], ["schema"], ["metrics"],
                                     ["compare", "{run}", "{run}", "--format", "md"]])
def test_an_out_file_that_is_a_link_is_refused_not_written_through(tmp_path, command):
    """Before: `--out RUN/report.html` where report.html is a link overwrote the link's target, anywhere."""
    from harness.records.store import write_metadata, write_results
    from tests.factories import result, run, sample, spec

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    results = run([result(spec(), [sample(i) for i in range(3)])])
    write_metadata(run_dir, results.metadata)
    write_results(run_dir, results)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (run_dir / "out.txt").symlink_to(victim)
    proc = run_cli(*[a.format(run=run_dir) for a in command], "--out", str(run_dir / "out.txt"))
    _check_one_line(proc, "out.txt", "symbolic link")
    assert victim.read_text() == "keep"
