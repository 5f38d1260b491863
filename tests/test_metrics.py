from __future__ import annotations

from pathlib import Path

import pytest

from harness.metrics import METRICS, markdown_doc, sample_values
from tests.factories import sample

ROOT = Path(__file__).resolve().parent.parent


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
    from harness.backends.serving import meets_slo
    from harness.metrics import batch_values
    from harness.schema import BatchRecord

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
    from harness.backends.genai_common import prompt_lookup_acceptance

    # first step: the prompt and first token, nothing proposed; then 2, 0 and 4 of 4 proposals accepted
    assert prompt_lookup_acceptance([1, 3, 1, 5], 4) == {"accepted_tokens": 6.0, "proposed_tokens": 12.0,
                                                         "acceptance_rate_pct": 50.0}
    assert prompt_lookup_acceptance([1], 4) == {}
