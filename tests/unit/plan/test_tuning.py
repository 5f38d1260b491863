"""What `harness tune` searches and how it reads a setting (harness/plan/tuning.py), and the suite's `tune:` block."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from harness.core.schema import REMOTE_DEVICE, SideSpec
from harness.kinds import KINDS
from harness.plan.sides import apply_side, params_refusal, side_of
from harness.plan.suite_model import Suite
from harness.plan.tuning import (
    Objective,
    declared_space,
    default_space,
    objective_of,
    setting_side,
    slo_of,
    slo_readings,
    space_size,
    suite_snippet,
    thread_counts,
    tuned_cell,
)
from tests import factories


def test_objectives_and_slos_read_as_written():
    assert objective_of("output_tps") == Objective("output_tps", "median")
    assert objective_of(" ttft_ms  p90 ") == Objective("ttft_ms", "p90")
    assert objective_of("ttft_ms p90").label() == "ttft_ms p90"
    assert not objective_of("ttft_ms").higher_is_better and objective_of("output_tps").higher_is_better
    gate = slo_of("ttft_ms p90 < 500")
    assert (gate.metric, gate.stat, gate.max, gate.min) == ("ttft_ms", "p90", 500.0, None)
    floor = slo_of("output_tps >= 20")
    assert (floor.stat, floor.min, floor.max) == ("median", 20.0, None)


@pytest.mark.parametrize(("text", "says"), [
    ("no_such_metric", "unknown metric"), ("ttft_ms p42", "unknown statistic"), ("ttft_ms p90 < 500", "no limit"),
    ("", "expected"), ("ttft_ms; rm -rf /", "expected")])
def test_a_bad_objective_says_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        objective_of(text)


@pytest.mark.parametrize(("text", "says"), [
    ("ttft_ms p90", "needs a limit"), ("ttft_ms p90 < fast", "not a number"), ("ttft_ms p90 < nan", "finite"),
    ("ttft_ms p90 < inf", "finite"), ("nope < 3", "unknown metric")])
def test_a_bad_slo_says_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        slo_of(text)


def test_slo_readings_measure_the_excess_in_the_metric_direction():
    result = factories.result(factories.spec(), [factories.sample(i) for i in range(3)])
    ttft = result.summaries["ttft_ms"].p90
    met, broken = slo_readings([slo_of(f"ttft_ms p90 < {ttft * 2}"), slo_of(f"ttft_ms p90 < {ttft / 2}")], result)
    assert met.met and met.excess == pytest.approx(-0.5)
    assert not broken.met and broken.excess == pytest.approx(1.0)
    floor = slo_readings([slo_of("output_tps > 1e9")], result)[0]
    assert not floor.met and floor.excess > 0
    missing = slo_readings([slo_of("acceptance_rate_pct > 50")], result)[0]
    assert missing.value is None and not missing.met


def test_thread_counts_reach_the_host_count():
    assert thread_counts(1) == (1,)
    assert thread_counts(2) == (1, 2)
    assert thread_counts(12) == (1, 2, 4, 8, 12)


def test_default_space_follows_the_kind_and_the_device():
    cpu = default_space(factories.spec(), 4)
    names = [d.name for d in cpu]
    assert "properties.INFERENCE_NUM_THREADS" in names and "properties.ATTENTION_BACKEND" in names
    assert dict((d.name, d.choices) for d in cpu)["properties.INFERENCE_NUM_THREADS"] == (None, 1, 2, 4)
    assert all(d.choices[0] is None for d in cpu)  # the defaults are a setting of every default space
    auto = [d.name for d in default_space(factories.spec().model_copy(update={"device": "AUTO"}), 4)]
    assert "properties.INFERENCE_NUM_THREADS" not in auto and "properties.KV_CACHE_PRECISION" in auto
    hetero = [d.name for d in default_space(factories.spec().model_copy(update={"device": "HETERO:CPU"}), 4)]
    assert "properties.DYNAMIC_QUANTIZATION_GROUP_SIZE" not in hetero
    assert default_space(factories.spec("tokenizer"), 4) == []
    image = factories.spec().model_copy(update={"scenario": factories.spec().scenario.model_copy(
        update={"kind": "text2image", "params": {}})})
    assert [d.name for d in default_space(image, 2)] == ["properties.INFERENCE_NUM_THREADS",
                                                         "properties.PERFORMANCE_HINT"]


def test_every_default_knob_fits_its_kind():
    """A kind's default knob names a parameter its Params take, with values they accept."""
    for kind in KINDS.values():
        cell = factories.spec().model_copy(update={"scenario": factories.spec().scenario.model_copy(
            update={"kind": kind.name, "params": {}})})
        for knob in kind.tune_space:
            assert knob.name.startswith(("properties.", "params.")), knob
            for v in knob.choices:
                if v is not None:
                    assert params_refusal(cell, setting_side({knob.name: v})) is None, (kind.name, knob.name, v)


def test_a_remote_serving_cell_searches_only_what_the_client_sets():
    cell = factories.spec().model_copy(update={
        "device": REMOTE_DEVICE, "server": "http://example:8000/v3",
        "scenario": factories.spec().scenario.model_copy(update={"kind": "serving", "params": {}})})
    assert cell.remote
    assert [d.name for d in default_space(cell, 8)] == ["params.concurrency"]
    open_loop = cell.model_copy(update={"scenario": cell.scenario.model_copy(update={"params": {"rate": 2.0}})})
    assert default_space(open_loop, 8) == []  # an open loop's pace is its rate


def test_declared_space_is_checked_against_the_kind():
    cb = factories.spec().model_copy(update={"scenario": factories.spec().scenario.model_copy(
        update={"kind": "continuous_batching", "params": {"concurrency": 4}})})
    space = declared_space(cb, {"params.max_num_seqs": [None, 4, 4, 16], "properties.NUM_STREAMS": [1, 2]})
    assert [(d.name, d.choices) for d in space] == [("params.max_num_seqs", (None, 4, 16)),
                                                    ("properties.NUM_STREAMS", (1, 2))]
    assert space_size(space) == 6
    for bad, says in [({"params.max_num_seqs": [0]}, "greater than 0"), ({"params.no_such": [1]}, "no_such"),
                      ({"env": [1]}, "properties.NAME or params.NAME"), ({"properties.X": []}, "give the values"),
                      ({"nonsense": [1]}, "unknown axis")]:
        with pytest.raises(ValueError, match=says):
            declared_space(cb, bad)


def test_a_setting_is_a_side_and_a_cell_with_the_same_key():
    cb = factories.spec().model_copy(update={"scenario": factories.spec().scenario.model_copy(
        update={"kind": "continuous_batching", "params": {"concurrency": 4}}), "properties": {"A": 1}})
    setting = {"properties.KV_CACHE_PRECISION": "u8", "params.max_num_seqs": 8, "properties.NUM_STREAMS": None}
    side = setting_side(setting)
    assert side == SideSpec(properties={"KV_CACHE_PRECISION": "u8"}, params={"max_num_seqs": 8})
    assert side.label() == "properties.KV_CACHE_PRECISION=u8 params.max_num_seqs=8"
    tuned = tuned_cell(cb, setting)
    assert tuned.key == cb.key
    assert tuned.properties == {"A": 1, "KV_CACHE_PRECISION": "u8"}
    assert tuned.scenario.params == {"concurrency": 4, "max_num_seqs": 8}
    snippet = yaml.safe_load(suite_snippet(cb, setting))
    assert snippet == {"properties": {"A": 1, "KV_CACHE_PRECISION": "u8"},
                       "scenarios": [{"name": "generate", "kind": "continuous_batching", "concurrency": 4,
                                      "max_num_seqs": 8}]}
    assert suite_snippet(cb, {"params.max_num_seqs": None}).startswith("# the suite as it is")


def test_side_items_set_scenario_parameters():
    side = side_of(["params.max_num_batched_tokens=512", "params.dynamic_split_fuse=false"])
    assert side.params == {"max_num_batched_tokens": 512, "dynamic_split_fuse": False}
    cell = apply_side(factories.spec("continuous_batching"), side)
    assert cell.scenario.params["max_num_batched_tokens"] == 512
    assert params_refusal(factories.spec(), side_of(["params.max_num_seqs=4"])) is not None  # generate takes none


def _suite(**tune) -> dict:
    return {"name": "t", "models": [{"name": "m", "source": "synthetic:tiny"}],
            "scenarios": [{"name": "cb", "kind": "continuous_batching"}], "tune": tune}


def test_the_suite_tune_block():
    s = Suite.model_validate(_suite(objective=["batch_output_tps", "ttft_ms p90"], slo=["ttft_ms p90 < 500"],
                                    budget="20m", space={"params.max_num_seqs": [None, 4]}, min_gain=0.03))
    assert s.tune is not None and s.tune.space == {"params.max_num_seqs": [None, 4]}
    for bad in ({"objective": ["nope"]}, {"slo": ["ttft_ms p90"]}, {"space": {"env": [1]}},
                {"space": {"params.x": []}}, {"min_gain": 2}, {"surprise": 1}):
        with pytest.raises(ValidationError):
            Suite.model_validate(_suite(**bad))
