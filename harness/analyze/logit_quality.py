"""Quality from logits: perplexity, KL divergence against the fp16 model, top-1 agreement and Δp, computed the way
llama.cpp's `llama-perplexity --kl-divergence` computes them (definitions: the quality metrics in
harness/core/metrics.py). Pure numpy: a window's rows in, per-token figures out, then one summary."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.core.metrics import (
    KLDP99,
    KLDP999,
    KLDSE,
    BasePerplexity,
    DeltaPAbsMean,
    DeltaPMean,
    KLDMax,
    KLDMean,
    KLDMedian,
    LnPerplexityRatio,
    LnPerplexityRatioSE,
    Perplexity,
    PerplexitySE,
    ScoredTokens,
    Top1Agreement,
    Top1AgreementSE,
)


def scored_rows(n_ctx: int) -> slice:
    """The rows of a window's logits that are scored: positions n_ctx/2 .. n_ctx-2 predict tokens n_ctx/2+1 ..
    n_ctx-1 (llama-perplexity: `first = n_ctx/2`, `n_ctx - 1 - first` tokens a window)."""
    return slice(n_ctx // 2, n_ctx - 1)


def scored_targets(window: np.ndarray) -> np.ndarray:
    """The tokens the scored rows predict."""
    n = len(window)
    return window[n // 2 + 1:n]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (the sums over a 50k-150k vocabulary need it)."""
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return x


@dataclass(frozen=True)
class TokenScores:
    """Per scored token of one or more windows: the model's and the base model's NLL, the KL divergence, whether
    the top-1 tokens agree, and the probabilities both give the base model's top token."""

    nll: np.ndarray
    nll_base: np.ndarray
    kld: np.ndarray
    same_top: np.ndarray
    p_top: np.ndarray
    p_top_base: np.ndarray

    @staticmethod
    def join(parts: list[TokenScores]) -> TokenScores:
        return TokenScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                             ("nll", "nll_base", "kld", "same_top", "p_top", "p_top_base")))


def score_window(logp: np.ndarray, base_logp: np.ndarray, targets: np.ndarray) -> TokenScores:
    """Scores of one window's scored rows: `logp` and `base_logp` are log-probabilities [tokens, vocab]."""
    if logp.shape != base_logp.shape:
        raise ValueError(f"the model's logits are {logp.shape[-1]} wide and the fp16 model's {base_logp.shape[-1]}: "
                         "not the same vocabulary")
    rows = np.arange(len(targets))
    logp, base = logp.astype(np.float64), base_logp.astype(np.float64)
    p_base = np.exp(base)
    kld = (p_base * (base - logp)).sum(axis=-1)
    top_base = base.argmax(axis=-1)
    return TokenScores(
        nll=-logp[rows, targets], nll_base=-base[rows, targets], kld=np.maximum(kld, 0.0),
        same_top=logp.argmax(axis=-1) == top_base,
        p_top=np.exp(logp[rows, top_base]), p_top_base=p_base[rows, top_base])


def _se(values: np.ndarray) -> float:
    """Standard error of the mean as llama.cpp gives it: sqrt(var / (N - 1))."""
    n = len(values)
    return math.sqrt(float(np.var(values)) / (n - 1)) if n > 1 else math.nan


def _at(sorted_values: np.ndarray, q: float) -> float:
    return float(sorted_values[int(q * (len(sorted_values) - 1))])


def summary(scores: TokenScores) -> dict[str, float]:
    """The cell's quality figures (metric tag -> value) from every scored token."""
    n = len(scores.nll)
    if n == 0:
        return {}
    mean_nll = float(scores.nll.mean())
    ppl = math.exp(mean_nll)
    ratio = scores.nll - scores.nll_base
    kld = np.sort(scores.kld)
    agree = float(scores.same_top.mean())
    dp = scores.p_top - scores.p_top_base
    return {
        Perplexity.tag: ppl, PerplexitySE.tag: ppl * _se(scores.nll), BasePerplexity.tag: math.exp(float(scores.nll_base.mean())),
        LnPerplexityRatio.tag: float(ratio.mean()), LnPerplexityRatioSE.tag: _se(ratio),
        KLDMean.tag: float(kld.mean()), KLDSE.tag: _se(kld), KLDMedian.tag: _at(kld, 0.5), KLDP99.tag: _at(kld, 0.99),
        KLDP999.tag: _at(kld, 0.999), KLDMax.tag: float(kld[-1]),
        Top1Agreement.tag: 100.0 * agree,
        Top1AgreementSE.tag: 100.0 * math.sqrt(agree * (1 - agree) / (n - 1)) if n > 1 else math.nan,
        DeltaPMean.tag: 100.0 * float(dp.mean()), DeltaPAbsMean.tag: 100.0 * float(np.abs(dp).mean()),
        ScoredTokens.tag: float(n),
    }
