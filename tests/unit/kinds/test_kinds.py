"""The scenario-kind registry: every entry is complete and consistent, and suites are checked against it."""

from __future__ import annotations

import importlib

import pytest

from harness.core.errors import HarnessInputError
from harness.core.metrics import METRICS
from harness.core.schema import ScenarioSpec
from harness.kinds import KINDS, kind_spec
from harness.plan.suite import expand, load_suite
from tests.factories import spec as spec_of


@pytest.mark.parametrize("name", list(KINDS))
def test_entry_is_complete(name):
    spec = KINDS[name]
    assert spec.name == name
    spec.params()  # every parameter has a default
    from harness.execute.backends import backend_for
    from harness.execute.backends.driver import Backend, LoadBackend

    module, _, name_ = spec.backend.partition(":")
    named = getattr(importlib.import_module(module), name_)
    assert isinstance(named, Backend | LoadBackend) or callable(named)
    for runtime in ("openvino", *dict(spec.peers)):
        cell = spec_of(kind="generate").model_copy(update={"runtime": runtime, "scenario": ScenarioSpec(name=name, kind=name)})
        assert callable(backend_for(cell))
    table = spec.report
    assert table.title and table.columns and len(table.headline) == 2
    for col in (*table.columns, *table.headline, *table.speed, *table.accuracy):
        assert col.metric in METRICS, (name, col.metric)
    assert table.speedup_metric in METRICS
    # kinds that compare kept outputs do not make text; text kinds are compared on their text
    assert spec.compare_outputs is None or not spec.generates_text
    for keyed in spec.params.keyed:
        assert keyed in spec.params.model_fields
    # parameters sit beside a scenario's own fields in a suite
    assert not set(spec.params.model_fields) & {"name", "kind", "generation", "models"}


def test_unknown_kind_lists_the_registry():
    with pytest.raises(ValueError, match="unknown scenario kind 'text2sound'; known: generate, speculative"):
        kind_spec("text2sound")


SUITE = """name: t
models: [{name: m, source: synthetic:tiny-sd}]
scenarios:
  - {SCENARIO}
"""


def _load(tmp_path, scenario: str):
    p = tmp_path / "s.yaml"
    p.write_text(SUITE.replace("{SCENARIO}", scenario))
    return expand(load_suite(p)[0], p)


@pytest.mark.parametrize("scenario,needle", [
    ("{name: x, kind: text2sound}", "unknown scenario kind 'text2sound'"),
    ("{name: x, kind: image2image, strength: 2}", "strength: Input should be less than or equal to 1, got 2"),
    ("{name: x, kind: image2image, strength: [0.5, 0]}", "strength: Input should be greater than 0, got 0"),
    ("{name: x, kind: inpainting, width: true}", "width: Input should be a valid integer, got True"),
    ("{name: x, kind: text2image, strength: 0.5}", "strength does not apply to kind 'text2image' "
                                                   "\\(it takes width, height, steps\\)"),
    ("{name: x, kind: generate, steps: 3}", "steps does not apply to kind 'generate' \\(it takes no parameters\\)"),
    ("{name: x, kind: inpainting, mask_fraction: cheese}", "mask_fraction: Input should be a valid number"),
    ("{name: x, kind: text2video, width: 48}", "width: Input should be a multiple of 32, got 48"),
    ("{name: x, kind: text2video, height: [64, 100]}", "height: Input should be a multiple of 32, got 100"),
    ("{name: x, kind: text2video, num_frames: 5}",
     "num_frames: Input should be 8k \\+ 1 frames \\(the VAE compresses time 8x\\), e.g. 1 or 9, got 5"),
    ("{name: x, kind: text2video, num_frames: 16}", "num_frames: Input should be 8k \\+ 1 frames .*e.g. 9 or 17, got 16"),
    ("{name: x, kind: text2video, num_frames: 0}", "num_frames: Input should be greater than 0, got 0"),
])
def test_bad_parameters_name_field_and_value(tmp_path, scenario, needle):
    with pytest.raises(HarnessInputError, match=needle) as ei:
        _load(tmp_path, scenario)
    assert "scenarios[0]" in ei.value.line()


def test_video_sizes_that_fit_the_vae_are_accepted(tmp_path):
    cells = _load(tmp_path, "{name: x, kind: text2video, width: 96, height: 32, num_frames: [1, 17], steps: 2}")
    assert [c.scenario.params["num_frames"] for c in cells] == [1, 17]


def test_values_take_the_parameter_type_so_keys_do_not_depend_on_spelling(tmp_path):
    a = _load(tmp_path, "{name: x, kind: image2image, strength: [1, 0.5]}")
    b = _load(tmp_path, "{name: x, kind: image2image, strength: [1.0, 0.5]}")
    assert [c.key for c in a] == [c.key for c in b]
    assert a[0].scenario.params == {"strength": 1.0}


def test_a_null_parameter_is_left_out(tmp_path):
    (cell,) = _load(tmp_path, "{name: x, kind: image2image, strength: null, steps: 4}")
    assert cell.scenario.params == {"steps": 4}


def test_keyed_defaults_are_in_the_key_and_others_are_not(tmp_path):
    (cell,) = _load(tmp_path, "{name: x, kind: serving}")
    assert cell.scenario.params == {"api": "chat", "concurrency": 1}
    (cell,) = _load(tmp_path, "{name: x, kind: serving, rate: 2}")
    assert cell.scenario.params == {"api": "chat", "rate": 2.0}
    (cell,) = _load(tmp_path, "{name: x, kind: text2image}")
    assert cell.scenario.params == {}
