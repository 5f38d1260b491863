"""SLO search: the highest open-loop rate at which a load still meets the SLO, by bisection on the rate.

From the first rate, the rate doubles while loads pass and halves while they fail, until one passing and one
failing rate bracket the limit; then the geometric midpoint of the bracket is tried until the failing rate is
within `precision` above the passing one, or the probes run out. A load passes when at least `target_pct` of
its requests completed and met every per-request limit (errors count as misses). On a noisy machine a lower
rate can fail after a higher one passed: the bracket is always (highest pass below the lowest fail, lowest
fail), so the search stays consistent."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.schema import SloProbe, SloSearch


@dataclass(frozen=True)
class SearchPolicy:
    start_rps: float
    target_pct: float
    precision: float
    max_probes: int


def bracket(probes: list[SloProbe]) -> tuple[float | None, float | None]:
    """(highest passing rate below the lowest failing one, lowest failing rate)."""
    failing = min((p.rate_rps for p in probes if not p.passed), default=None)
    passing = max((p.rate_rps for p in probes if p.passed and (failing is None or p.rate_rps < failing)),
                  default=None)
    return passing, failing


def next_rate(policy: SearchPolicy, probes: list[SloProbe]) -> float | None:
    """The next rate to try, or None when the search is done."""
    if len(probes) >= policy.max_probes:
        return None
    low, high = bracket(probes)
    if low is None and high is None:
        return policy.start_rps
    if high is None:
        return 2 * low  # type: ignore[operator]
    if low is None:
        return high / 2
    if high / low - 1 <= policy.precision:
        return None
    return math.sqrt(low * high)


def probe(rate: float, requests: int, good: int, target_pct: float) -> SloProbe:
    attainment = 100.0 * good / requests if requests else 0.0
    return SloProbe(rate_rps=rate, requests=requests, good=good, attainment_pct=attainment,
                    passed=requests > 0 and attainment >= target_pct)


def outcome(policy: SearchPolicy, limits: dict[str, float], probes: list[SloProbe]) -> SloSearch:
    low, high = bracket(probes)
    chosen = next((i for i, p in enumerate(probes) if p.passed and p.rate_rps == low), None)
    return SloSearch(limits=dict(limits), target_pct=policy.target_pct, probes=probes, max_rate_rps=low,
                     first_failing_rps=high, chosen_probe=chosen)
