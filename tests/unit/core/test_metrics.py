from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.events import Done, Event, SampleEvent
from harness.core.metrics import METRICS, sample_values
from reports.metric_docs import markdown_doc
from tests.factories import sample

ROOT = Path(__file__).resolve().parents[3]


def test_formulas_on_known_sample():
    s = sample(0, chunks=(10.0, 12.0, 14.0, 16.0), e2e_ms=17.0)
    v = sample_values(s)
    assert v["ttft_ms"] == [10.0]
    assert v["e2e_ms"] == [pytest.approx(17.0)]
    assert v["tpot_ms"] == [pytest.approx((17.0 - 10.0) / 3)]
    assert v["itl_ms"] == [pytest.approx(2.0)] * 3
    assert v["output_tps"] == [pytest.approx(4 / 0.017)]
    assert v["decode_tps"] == [pytest.approx(3 / 0.007)]
    assert v["genai_ttft_ms"] == [9.5]


def test_multi_token_chunks_tpot_differs_from_itl():
    # speculative decoding: 2 chunks carrying 3 + 5 tokens
    s = sample(0, chunks=(10.0, 20.0), tokens=(3, 5), e2e_ms=20.0)
    v = sample_values(s)
    assert v["output_tokens"] == [8.0]
    assert v["itl_ms"] == [10.0]
    assert v["tpot_ms"] == [pytest.approx(10.0 / 7)]
    assert v["tokens_per_chunk"] == [3.0, 5.0]


def test_single_token_has_no_tpot():
    v = sample_values(sample(0, chunks=(5.0,), e2e_ms=6.0))
    assert "tpot_ms" not in v and "itl_ms" not in v


def test_every_metric_is_documented():
    for tag, m in METRICS.items():
        assert m.unit and m.title and m.formula(), tag
        assert isinstance(m.higher_is_better, bool)


def test_docs_metrics_md_is_current():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    assert doc == markdown_doc(), "regenerate with `harness metrics --out docs/metrics.md`"


def test_goodput_counts_requests_within_every_slo_limit():
    from harness.core.metrics import batch_values
    from harness.core.schema import BatchRecord
    from harness.execute.backends.serving import meets_slo

    fast, slow_first = sample(0, chunks=(10.0, 12.0, 14.0, 16.0), e2e_ms=17.0), sample(1, chunks=(90.0, 92.0), e2e_ms=93.0)
    assert meets_slo(fast, {"ttft_ms": 50, "tpot_ms": 5})
    assert not meets_slo(slow_first, {"ttft_ms": 50, "tpot_ms": 5})
    assert meets_slo(slow_first, {"tpot_ms": 5})
    assert meets_slo(sample(2, chunks=(5.0,), e2e_ms=6.0), {"tpot_ms": 1})  # one token: no TPOT to judge
    b = BatchRecord(iteration=0, warmup=False, requests=4, start_ns=0, end_ns=2_000_000_000, output_tokens=40,
                    input_tokens=60, steps=0, good_requests=3)
    v = batch_values(b)
    assert v["goodput_rps"] == [1.5] and v["request_rps"] == [2.0] and v["batch_total_tps"] == [50.0]
    assert "goodput_rps" not in batch_values(b.model_copy(update={"good_requests": None}))


def test_prompt_lookup_acceptance_counts_every_verification_step():
    from harness.execute.backends.genai_common import prompt_lookup_acceptance

    # first step: the prompt and first token, nothing proposed; then 2, 0 and 4 of 4 proposals accepted
    assert prompt_lookup_acceptance([1, 3, 1, 5], 4) == {"accepted_tokens": 6.0, "proposed_tokens": 12.0,
                                                         "acceptance_rate_pct": 50.0}
    assert prompt_lookup_acceptance([1], 4) == {}


def test_readings_batches_and_cell_values_on_hand_built_records():
    """The metrics no other fast test names, each from a record built by hand with a known answer."""
    from harness.analyze.aggregate import cell_result
    from harness.core.metrics import sample_values
    from harness.core.schema import BatchRecord
    from tests import factories

    s = factories.sample(0, e2e_ms=500.0)
    s.genai.update({"throughput_tps": 123.0, "generate_ms": 480.0, "features_ms": 12.5, "vae_decoder_ms": 40.0})
    s.input_tokens = 100
    s.readings["documents"] = 4.0
    values = sample_values(s)
    assert values["genai_throughput_tps"] == [123.0] and values["genai_generate_ms"] == [480.0]
    assert values["speech_features_ms"] == [12.5] and values["vae_decoder_ms"] == [40.0]
    assert values["input_tps"] == [pytest.approx(200.0)]  # 100 tokens / 0.5 s
    assert "input_tps" not in sample_values(factories.sample(0))  # only calls that embed documents

    b = BatchRecord(iteration=0, warmup=False, requests=3, start_ns=0, end_ns=2_000_000_000, output_tokens=30,
                    input_tokens=60, steps=12, cache_usage_max_pct=37.5)
    assert METRICS["batch_ms"].compute_batch(b) == [2000.0]
    assert METRICS["kv_cache_peak_pct"].compute_batch(b) == [37.5]
    assert METRICS["kv_cache_peak_pct"].compute_batch(b.model_copy(update={"cache_usage_max_pct": None})) == []

    cell_values = {"genai_load_ms": 321.0, "reference_ttft_ms": 9.5, "reference_output_tps": 88.0, "export_s": 12.0,
                   "tokenizer_decode_mismatches": 2.0}
    events: list[Event] = [SampleEvent(sample=factories.sample(i)) for i in range(3)]
    events.append(Done(cell_values=cell_values))
    r = cell_result(factories.spec(), events, "ok", None, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0)
    for tag, v in cell_values.items():
        assert r.summaries[tag].median == v and r.summaries[tag].n == 1, tag


def test_video_metrics_divide_one_call_over_frames_and_steps():
    from tests import factories

    s = factories.sample(0, e2e_ms=900.0)
    s.readings.update({"frames": 9.0, "steps": 4.0, "pixels": 64 * 64 * 9})
    s.genai.update({"transformer_ms": 600.0, "vae_decoder_ms": 150.0})
    v = sample_values(s)
    assert v["video_s"] == [pytest.approx(0.9)] and v["frame_ms"] == [pytest.approx(100.0)]
    assert v["step_ms"] == [pytest.approx(225.0)] and v["transformer_ms"] == [600.0]
    assert "image_s" not in v  # a video is not an image
    assert "video_s" not in sample_values(factories.sample(0)) and "frame_ms" not in sample_values(factories.sample(0))


def test_text_similarity_against_the_reference_cell():
    from harness.analyze.checks import run_level_checks
    from tests import factories

    def cell(precision: str, texts: list[str]):
        samples = [factories.sample(i, text=t) for i, t in enumerate(texts)]
        return factories.result(factories.spec(precision=precision), samples)

    fp16 = cell("fp16", ["abcd", "wxyz"])
    int8 = cell("int8", ["abcd", "wxyq"])
    [_, int8] = run_level_checks([fp16, int8])
    # per prompt: 100 and 75 (3 of 4 characters), averaged
    assert int8.cell_values["output_similarity_pct"] == pytest.approx(87.5)


def test_roofline_figures_of_a_plain_decoding_cell():
    """weight_bytes_per_token from the prepare phase, memory_bandwidth_gbs from the runner, and the two figures
    derived from them and the measured TPOT (harness/analyze/roofline.py)."""
    from harness.analyze.aggregate import cell_result
    from harness.core.events import Prepared, RunnerValues
    from tests import factories

    events: list[Event] = [Prepared(model_dir="/m", weight_bytes_per_token=150_000_000)]
    # TPOTs (e2e − TTFT) / 3 of 6 and 12 ms: mean 9 ms, 111.1 tok/s; the warm-up's 3 ms is left out
    for i, e2e in enumerate((19.0, 28.0, 46.0)):
        events.append(SampleEvent(sample=factories.sample(i, warmup=i == 0, chunks=(10.0, 12.0, 14.0, 16.0),
                                                          e2e_ms=e2e)))
    events.append(RunnerValues(cell_values={"memory_bandwidth_gbs": 25.0}))
    r = cell_result(factories.spec(), events, "ok", None, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0)
    v = r.cell_values
    assert v["weight_bytes_per_token"] == 150.0 and v["memory_bandwidth_gbs"] == 25.0
    assert v["achieved_bandwidth_gbs"] == pytest.approx(150e6 * (1000 / 9.0) / 1e9)  # 16.67 GB/s
    assert v["roofline_pct"] == pytest.approx(100 * 150e6 * (1000 / 9.0) / 1e9 / 25.0)  # 66.7%
    assert r.summaries["roofline_pct"].median == pytest.approx(v["roofline_pct"])


def test_a_derived_metric_is_evaluated_after_what_it_requires_and_must_be_registered_after_it():
    from harness.core.metrics import TPOT, DecodeThroughput, DerivedMetric, metric

    order = list(METRICS)
    assert all(order.index(r.tag) < order.index(m.tag) for m in METRICS.values() for r in getattr(m, "requires", ()))
    assert DecodeThroughput.requires == (TPOT,)

    class Early(DerivedMetric):
        tag, title, unit, higher_is_better = "early_x", "x", "x", True
        requires = (type("Later", (DerivedMetric,), {"tag": "later_x"}),)

    with pytest.raises(ValueError, match="requires later_x, not registered before it"):
        metric(Early)
    assert "early_x" not in METRICS


def test_every_reading_a_metric_reads_is_declared():
    from harness.core.metrics import READINGS

    read = {m.reading for m in METRICS.values() if hasattr(m, "reading") and not getattr(m, "genai", False)}
    assert read <= set(READINGS), sorted(read - set(READINGS))
