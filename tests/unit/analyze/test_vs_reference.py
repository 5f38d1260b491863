"""A cell's ratios to its reference side from paired values (harness/analyze/vs_reference.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analyze.vs_reference import ProcessPairValues, vs_reference
from harness.core.metrics import TPOT, TTFT, OutputThroughput, PeakRSS
from harness.core.schema import ReferenceRatios, ReferenceSide, SideSpec

REF = ReferenceSide(label="r2026.3", side=SideSpec(env="r2026_3"))


def pairs(rng: np.random.Generator, n_pairs: int = 4, calls: int = 10, slower: float = 1.03) -> list[ProcessPairValues]:
    """Process pairs whose candidate TPOT is `slower` x the reference's, both moved alike by a per-call drift."""
    out = []
    for _ in range(n_pairs):
        drift = np.exp(rng.normal(0, 0.05, calls))  # the machine: both sides of a call pair alike
        ref = 20.0 * drift * np.exp(rng.normal(0, 0.005, calls))
        cand = 20.0 * slower * drift * np.exp(rng.normal(0, 0.005, calls))
        out.append(ProcessPairValues(candidate={TPOT.tag: cand.tolist(), PeakRSS.tag: [510.0]},
                                     reference={TPOT.tag: ref.tolist(), PeakRSS.tag: [500.0]}))
    return out


def test_ratios_with_intervals_and_the_references_own_summary():
    got = vs_reference(REF, {"openvino-genai": "2026.3.1"}, pairs(np.random.default_rng(0)))
    assert (got.label, got.description, got.runtime_versions) == ("r2026.3", "env=r2026_3", {"openvino-genai": "2026.3.1"})
    tpot = got.figure(TPOT.tag)
    assert tpot is not None and tpot.ci_low is not None and tpot.ci_high is not None
    assert tpot.ci_low < 1.03 < tpot.ci_high and tpot.ci_high - tpot.ci_low < 0.02  # the drift cancelled
    assert (tpot.call_pairs, tpot.process_pairs, tpot.higher_is_better) == (40, 4, False)
    assert 18 < got.summaries[TPOT.tag].median < 22 and got.summaries[TPOT.tag].n == 40
    rss = got.figure(PeakRSS.tag)  # one value a process: one pair per process pair
    assert rss is not None and rss.ratio == pytest.approx(1.02) and (rss.call_pairs, rss.process_pairs) == (4, 4)
    assert ReferenceRatios.model_validate_json(got.model_dump_json()) == got


def test_unusable_pairs_are_left_out_and_a_lone_pair_has_no_interval():
    p = ProcessPairValues(candidate={TTFT.tag: [10.0, float("nan"), 0.0, 12.0], OutputThroughput.tag: [50.0]},
                          reference={TTFT.tag: [8.0, 9.0, 10.0, -1.0], OutputThroughput.tag: [40.0]})
    got = vs_reference(REF, {}, [p])
    ttft = got.figure(TTFT.tag)
    assert ttft is not None and ttft.ratio == pytest.approx(1.25) and ttft.call_pairs == 1 and ttft.ci_low is None
    tps = got.figure(OutputThroughput.tag)
    assert tps is not None and tps.higher_is_better and tps.ratio == pytest.approx(1.25)
    assert got.summaries[TTFT.tag].n == 4  # the reference's own values, all it measured
    assert vs_reference(REF, {}, []).ratios == []


def test_a_metric_on_one_side_only_gives_no_ratio():
    p = ProcessPairValues(candidate={TPOT.tag: [1.0, 2.0]}, reference={TTFT.tag: [1.0, 2.0]})
    got = vs_reference(REF, {}, [p])
    assert got.ratios == [] and set(got.summaries) == {TTFT.tag}


@pytest.mark.parametrize("pair", [
    ProcessPairValues(candidate={"speed": [1.0]}, reference={"speed": [1.0]}),
    ProcessPairValues(candidate={TPOT.tag: [1.0, 2.0]}, reference={TPOT.tag: [1.0]}),
])
def test_unknown_tags_and_unpaired_calls_are_refused(pair):
    with pytest.raises(ValueError):
        vs_reference(REF, {}, [pair])


def test_the_ratio_is_the_geometric_mean_of_the_paired_ratios():
    p = ProcessPairValues(candidate={TPOT.tag: [2.0, 8.0]}, reference={TPOT.tag: [1.0, 2.0]})
    (f,) = vs_reference(REF, {}, [p]).ratios
    assert f.ratio == pytest.approx(math.sqrt(2 * 4))
