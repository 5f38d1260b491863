"""`harness host`: the host state and its warnings, exit code 0; --json prints the HostState model."""

from __future__ import annotations

from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.schema import HostState


def test_host_json_prints_the_host_state_model():
    out = CliRunner().invoke(app, ["host", "--json", "--window", "0.1"])
    assert out.exit_code == 0, out.output
    state = HostState.model_validate_json(out.stdout)
    assert state.window_s >= 0.1 and not state.own_work
    assert state.other_cpu_pct is not None and 0.0 <= state.other_cpu_pct <= 100.0


def test_host_prints_one_line_per_reading_and_its_warnings():
    out = CliRunner().invoke(app, ["host", "--window", "0.1"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("other processes' CPU") and any(line.startswith("SMT") for line in lines)
    assert lines[-1].startswith("warning:") or lines[-1] == "nothing found that makes measurements move"
