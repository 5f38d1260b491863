from __future__ import annotations

from harness.core.schema import Gate
from reports.verdicts import render_qualification, render_release
from tests.factories import result, run, sample, spec


def _cell(precision, device, gates, status="ok"):
    s = spec(precision=precision)
    s.device = device
    s.key = f"m/{precision}/{device}/generate/in8-out4"
    s.gates = gates
    if status == "skipped":
        return result(s, [], status="skipped", error=f"device {device} not available on this host")
    return result(s, [sample(0, warmup=True), sample(1), sample(2)])


def test_gates_become_checks():
    ok = _cell("int8", "CPU", [Gate(metric="output_tps", min=100), Gate(metric="ttft_ms", stat="p90", max=50)])
    checks = {c.name: c for c in ok.checks}
    assert checks["gate: output_tps median >= 100"].status == "pass"
    assert checks["gate: ttft_ms p90 <= 50"].status == "pass"
    bad = _cell("int8", "CPU", [Gate(metric="ttft_ms", max=5)])
    assert {c.name: c.status for c in bad.checks}["gate: ttft_ms median <= 5"] == "fail"


def test_qualification_verdict_per_device():
    res = run([_cell("int8", "CPU", [Gate(metric="ttft_ms", max=50)]),
               _cell("int4", "CPU", [Gate(metric="ttft_ms", max=5)]),
               _cell("int8", "GPU", [], status="skipped")])
    text = render_qualification(res)
    assert "## CPU: **FAIL**" in text
    assert "## GPU: **NOT RUN**" in text and "not available" in text
    assert "ttft_ms median <= 5 (median 10)" in text


def test_release_table_has_device_columns():
    res = run([_cell("int8", "CPU", [Gate(metric="ttft_ms", max=50)]), _cell("int8", "GPU", [], status="skipped")])
    text = render_release(res)
    assert "| model | precision | scenario | CPU | GPU |" in text
    row = next(line for line in text.splitlines() if line.startswith("| m | int8 |"))
    assert "pass" in row and "skipped" in row


def test_unjudged_checks_do_not_fail_a_verdict():
    from harness.core.schema import CheckResult

    c = _cell("int8", "CPU", [Gate(metric="ttft_ms", max=50)])
    c.checks.append(CheckResult(name="accuracy_vs_fp16", status="not_run", detail="no accuracy gate set"))
    assert "## CPU: **PASS**" in render_qualification(run([c]))
    c.checks.append(CheckResult(name="matches_greedy", status="fail", detail="differs"))
    assert "## CPU: **FAIL**" in render_qualification(run([c]))
