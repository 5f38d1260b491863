"""A suite's `reference_side`: read, checked in one line naming the file, the field and the value, and carried by
every cell the suite runs here (harness/plan/suite_model.py, harness/plan/cells.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import HarnessInputError
from harness.core.schema import RatioChangeSettings, SideSpec
from harness.plan.environments import EnvironmentSpec
from harness.plan.overrides import EnvironmentsOverride, apply_overrides
from harness.plan.source_checks import validate_sources
from harness.plan.suite import expand, load_suite

ENVS = """environments:
  - {name: r2026_3, packages: [openvino-genai==2026.3.1]}
"""
SUITE = """name: nightly
models: [{name: m, source: synthetic:tiny}]
precisions: [int8]
scenarios: [{name: greedy, kind: generate}]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(HarnessInputError) as e:
        path = write(tmp_path, text)
        expand(load_suite(path)[0], path)
    line = e.value.line()
    assert "\n" not in line and str(tmp_path / "suite.yaml") in line
    return line


def test_every_cell_carries_the_reference_side_and_its_environment_is_no_axis(tmp_path):
    path = write(tmp_path, SUITE + ENVS + "reference_side:\n  label: r2026.3\n  side: [env=r2026_3, "
                 "properties.KV_CACHE_PRECISION=u8, properties.NUM_STREAMS=1]\n")
    suite, _ = load_suite(path)
    (cell,) = expand(suite, path)
    assert cell.environment is None and "env=" not in cell.key  # the harness's own interpreter: the candidate
    assert cell.reference_side is not None and cell.reference_side.label == "r2026.3"
    assert cell.reference_side.side == SideSpec(env="r2026_3", properties={"KV_CACHE_PRECISION": "u8", "NUM_STREAMS": 1})
    assert suite.reference_side is not None and suite.reference_side.changes == RatioChangeSettings()
    assert cell.reference_side.slice_ms == 25  # sliced call pairs unless the suite says null
    path.write_text(path.read_text() + "  slice_ms: null\n")
    assert expand(load_suite(path)[0], path)[0].reference_side.slice_ms is None


def test_other_environments_stay_axes_and_the_label_defaults_to_the_side(tmp_path):
    text = (SUITE + ENVS + "  - {name: nightly, python: /opt/nightly/bin/python}\n"
            "reference_side: {side: [env=r2026_3], changes: {max_pvalue: 0.001}}\n")
    path = write(tmp_path, text)
    suite, _ = load_suite(path)
    (cell,) = expand(suite, path)
    assert cell.environment == "nightly" and cell.key.endswith("env=nightly")
    assert cell.reference_side is not None and cell.reference_side.label == "env=r2026_3"
    # a partial changes: block keeps the ratio series' own defaults for the rest
    assert suite.reference_side is not None and suite.reference_side.changes.noise == "series"
    assert suite.reference_side.changes.max_pvalue == 0.001


def test_a_model_folder_is_relative_to_the_suite_file_and_must_be_an_ir(tmp_path):
    (tmp_path / "exports" / "r263").mkdir(parents=True)
    path = write(tmp_path, SUITE + "reference_side: {label: old export, side: [model=exports/r263]}\n")
    suite, _ = load_suite(path)
    cells = expand(suite, path)
    ref = cells[0].reference_side
    assert ref is not None and ref.side.model == str((tmp_path / "exports" / "r263").resolve())
    with pytest.raises(HarnessInputError) as e:
        validate_sources(cells, path, suite, lambda _: None, here=False)
    line = e.value.line()
    assert "reference_side.side" in line and "model=" in line and "r263" in line and "\n" not in line


@pytest.mark.parametrize(("block", "says"), [
    ("{side: [env=r2026_4]}", "reference_side names environment 'r2026_4', which the suite does not declare"),
    ("{side: [colour=red]}", "reference_side.side[0]: unknown axis 'colour'"),
    ("{side: [env]}", "reference_side.side[0]: expected env=NAME"),
    ("{side: [env=r2026_3, device=TPU]}", "reference_side.side[1]"),
    ("{side: [env=r2026_3, env=r2026_3]}", "env is given twice (got 'env=r2026_3')"),
    ("{side: []}", "reference_side.side"),
    ("{label: r1}", "reference_side.side"),
    ("{side: [env=r2026_3], label: \"a\\u001b[31mb\"}", "reference_side.label: a label is printable"),
    ("{side: [env=r2026_3], label: \"  \"}", "reference_side.label"),
    ("{side: [env=r2026_3], colour: red}", "reference_side.colour: unknown key"),
    ("{side: [env=r2026_3], changes: {max_pvalue: 2}}", "reference_side.changes.max_pvalue"),
    ("[env=r2026_3]", "reference_side"),
    ("{side: [properties.=1]}", "reference_side.side[0]: unknown axis"),
    ("{side: [env=r2026_3], slice_ms: 0}", "reference_side.slice_ms"),
    ("{side: [env=r2026_3], slice_ms: fast}", "reference_side.slice_ms"),
])
def test_a_bad_reference_side_is_one_line(tmp_path, block, says):
    assert says in error_of(tmp_path, SUITE + ENVS + f"reference_side: {block}\n")


def test_an_exclude_naming_the_reference_environment_is_refused(tmp_path):
    line = error_of(tmp_path, SUITE + ENVS + "reference_side: {side: [env=r2026_3]}\nexclude: [{env: r2026_3}]\n")
    assert "the reference side's, which is no axis" in line


def test_env_options_keep_the_reference_sides_environment(tmp_path):
    path = write(tmp_path, SUITE + ENVS + "reference_side: {side: [env=r2026_3]}\n")
    suite, _ = load_suite(path)
    new = EnvironmentSpec(name="today", python="/opt/today/bin/python")
    changed = apply_overrides(suite, [EnvironmentsOverride(origin="command line", option="--env today=...",
                                                           environments=[new])])
    assert [e.name for e in changed.environments] == ["r2026_3", "today"]
    (cell,) = expand(changed, path)
    assert cell.environment == "today" and cell.reference_side is not None
    # --env of the reference's own name redefines it
    redefined = EnvironmentSpec(name="r2026_3", python="/opt/r263/bin/python")
    changed = apply_overrides(suite, [EnvironmentsOverride(origin="command line", option="--env r2026_3=...",
                                                           environments=[redefined])])
    assert [e.python for e in changed.environments] == ["/opt/r263/bin/python"]


def test_ab_leaves_the_reference_side_out(tmp_path):
    from harness.experiment.ab_session import ab_cells

    path = write(tmp_path, SUITE + ENVS + "reference_side: {side: [env=r2026_3]}\n")
    (cell,), _ = ab_cells(load_suite(path)[0], path)
    assert cell.reference_side is None


def test_run_list_says_how_the_cells_meet_their_reference_side(tmp_path):
    from tests.conftest import run_cli

    path = write(tmp_path, SUITE + ENVS + "reference_side: {side: [env=r2026_3], label: r2026.3, blocks: 2}\n")
    proc = run_cli("run", str(path), "--list")
    assert proc.returncode == 0 and "r2026_3" not in proc.stdout  # stdout: the cell keys alone
    assert ("1 of them measured against the reference side r2026.3 (env=r2026_3): 4 process pairs x 2 blocks a "
            "cell, sliced every 25 ms") in proc.stderr
