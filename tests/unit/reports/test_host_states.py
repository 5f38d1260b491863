"""Reports flag cells measured on a busy host and show the run's host state; results without one show nothing."""

from __future__ import annotations

from harness.core.schema import BusyProcess, HostState, HostWarning
from reports import render
from reports.host_states import BUSY_MARK
from reports.html import render_html
from tests.factories import result, run, sample, spec

QUIET = HostState(measured_at="2026-01-01T00:00:00+00:00", window_s=0.5, logical_cores=2, other_cpu_pct=1.0,
                  load_avg_1m=0.1, smt="on", warnings=[HostWarning(kind="smt", message="SMT on")])
BUSY = HostState(measured_at="2026-01-01T00:01:00+00:00", window_s=42.0, own_work=True, logical_cores=2,
                 other_cpu_pct=55.0, busy_processes=[BusyProcess(name="stress|<b>", pid=7, cpu_pct=110.0)],
                 warnings=[HostWarning(kind="other_cpu", message="other processes used 55% (stress|<b> 110%)"),
                           HostWarning(kind="smt", message="SMT on")])


def _results():
    quiet = result(spec(), [sample(0, warmup=True), sample(1)])
    busy = result(spec(precision="int8"), [sample(0, warmup=True), sample(1)])
    quiet.host_state, busy.host_state = QUIET, BUSY
    res = run([quiet, busy])
    res.metadata.host_state_before = QUIET
    return res


def test_markdown_flags_the_busy_cell_and_shows_the_host_state():
    md = render(_results(), "md")
    rows = {line.split(" | ")[1]: line for line in md.splitlines() if line.startswith("| m | ")}
    assert rows["int8"].endswith(f"| ok {BUSY_MARK} |") and rows["fp16"].endswith("| ok |")
    start = md.index("### Host state")
    section = md[start:md.index("###", start + 1)]
    assert "- before the first cell: other processes 1% CPU, load 0.10 on 2 cores" in section
    assert "  - warning (smt): SMT on" in section
    assert f"- {BUSY_MARK} measured on a busy host" in section
    # the busy cell's busy warnings only, its text escaped (a pipe cannot split a row, a tag is not passed)
    assert "  - `m/int8/CPU/generate/in8-out4`: other processes used 55% (stress\\|&lt;b> 110%)" in section
    assert "m/fp16/CPU/generate/in8-out4" not in section


def test_html_flags_the_busy_cell_and_shows_the_host_state():
    page = render_html(_results())
    assert page.count(">busy host</span>") == 2  # its row's badge and the host state section
    assert "stress|&lt;b&gt; 110%" in page and "<b> 110%" not in page
    assert "before the first cell: other processes 1% CPU" in page


def test_results_without_host_states_show_no_flag_and_no_section():
    res = run([result(spec(), [sample(0, warmup=True), sample(1)])])
    md, page = render(res, "md"), render_html(res)
    assert "Host state" not in md and BUSY_MARK not in md
    assert "busy host" not in page and "Host state" not in page
