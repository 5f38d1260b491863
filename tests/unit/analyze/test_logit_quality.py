"""Quality from logits against hand-computed figures: KL divergence, perplexity and its llama.cpp standard error,
same top-1, Δp and the percentiles, on small distributions whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analyze.logit_quality import (
    TokenScores,
    log_softmax,
    score_window,
    scored_rows,
    scored_targets,
    summary,
)


def _logp(probs: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=np.float64))


def test_identical_distributions_score_zero_divergence_and_full_agreement():
    p = _logp([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    s = summary(score_window(p, p.astype(np.float32), np.array([0, 2])))
    assert s["kld_mean"] == pytest.approx(0.0, abs=1e-7)
    assert s["kld_max"] == pytest.approx(0.0, abs=1e-7)
    assert s["top1_agree_pct"] == 100.0
    assert s["ln_ppl_ratio"] == pytest.approx(0.0, abs=1e-7)
    assert s["ppl"] == pytest.approx(s["ppl_base"])
    assert s["dp_abs_mean"] == pytest.approx(0.0, abs=1e-5)


def test_kl_divergence_and_delta_p_match_hand_computation():
    base = [[0.5, 0.5], [0.9, 0.1]]
    model = [[0.25, 0.75], [0.6, 0.4]]
    scores = score_window(_logp(model), _logp(base), np.array([1, 0]))
    kld0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kld1 = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    assert scores.kld.tolist() == pytest.approx([kld0, kld1])
    # base top-1 of row 0 is a tie broken to token 0 (argmax), the model's is token 1; row 1 both token 0
    assert scores.same_top.tolist() == [False, True]
    assert scores.p_top.tolist() == pytest.approx([0.25, 0.6])
    assert scores.p_top_base.tolist() == pytest.approx([0.5, 0.9])
    s = summary(scores)
    assert s["kld_mean"] == pytest.approx((kld0 + kld1) / 2)
    assert s["dp_mean"] == pytest.approx(100 * ((0.25 - 0.5) + (0.6 - 0.9)) / 2)
    assert s["dp_abs_mean"] == pytest.approx(100 * (0.25 + 0.3) / 2)
    # perplexity: exp of the mean NLL of the targets
    assert s["ppl"] == pytest.approx(math.exp(-(math.log(0.75) + math.log(0.6)) / 2))
    assert s["ppl_base"] == pytest.approx(math.exp(-(math.log(0.5) + math.log(0.9)) / 2))


def test_standard_errors_are_llama_cpps():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 7))
    base = log_softmax(logits)
    model = log_softmax(logits + rng.normal(scale=0.3, size=logits.shape))
    targets = rng.integers(0, 7, size=50)
    scores = score_window(model, base, targets)
    s = summary(scores)
    nll = scores.nll
    # llama-perplexity: nll2 = sqrt((mean(nll^2) - mean(nll)^2) / (N - 1)); error = nll2 * ppl
    expected = math.sqrt((np.mean(nll ** 2) - np.mean(nll) ** 2) / (len(nll) - 1)) * s["ppl"]
    assert s["ppl_se"] == pytest.approx(expected)
    assert s["kld_se"] == pytest.approx(np.std(scores.kld) / math.sqrt(len(nll) - 1))
    agree = scores.same_top.mean()
    assert s["top1_agree_se"] == pytest.approx(100 * math.sqrt(agree * (1 - agree) / 49))
    ordered = np.sort(scores.kld)
    assert s["kld_median"] == ordered[24] and s["kld_p99"] == ordered[48] and s["kld_max"] == ordered[-1]
    assert s["scored_tokens"] == 50


def test_scored_rows_are_the_second_half_of_a_window():
    window = np.arange(512)
    rows = scored_rows(512)
    assert (rows.start, rows.stop) == (256, 511)  # 255 predictions, llama-perplexity's n_ctx - 1 - n_ctx/2
    assert scored_targets(window).tolist() == list(range(257, 512))


def test_windows_of_different_vocabularies_are_refused_in_one_line():
    with pytest.raises(ValueError, match="not the same vocabulary"):
        score_window(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1]))


def test_no_scored_tokens_gives_no_figures():
    empty = TokenScores(*(np.zeros(0) for _ in range(6)))
    assert summary(empty) == {}
