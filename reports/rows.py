"""Flat per-cell rows shared by the renderers: one place that picks what a report shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.metrics import METRICS
from harness.schema import CellResult, Summary

# Metrics every tabular report shows, in order.
HEADLINE = ("ttft_ms", "tpot_ms", "output_tps", "peak_rss_mb")


@dataclass
class CellRow:
    key: str
    model: str
    precision: str
    device: str
    scenario: str
    params: str
    status: str
    error: str | None
    input_tokens: float | None
    output_tokens: float | None
    summaries: dict[str, Summary]
    checks: dict[str, str] = field(default_factory=dict)


def _params(r: CellResult) -> str:
    spec = r.spec
    parts = [f"{k}={v}" for k, v in sorted(spec.scenario.params.items())]
    parts += [f"{k}={v}" for k, v in sorted(spec.properties.items())]
    g = spec.generation
    if g.mode != "greedy":
        parts.append(f"mode={g.mode}")
    return " ".join(parts)


def cell_row(r: CellResult) -> CellRow:
    s = r.summaries
    return CellRow(
        key=r.key, model=r.spec.model.name, precision=r.spec.precision, device=r.spec.device,
        scenario=r.spec.scenario.name, params=_params(r), status=r.status, error=r.error,
        input_tokens=s["input_tokens"].median if "input_tokens" in s else None,
        output_tokens=s["output_tokens"].median if "output_tokens" in s else None,
        summaries=s, checks={c.name: c.status for c in r.checks},
    )


def fmt_value(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_spread(s: Summary | None, digits: int = 1) -> str:
    """'median ± sample sd' (sd omitted for a single value); '—' when not measured."""
    if s is None:
        return "—"
    if s.stdev is None or s.n < 2:
        return fmt_value(s.median, digits)
    return f"{s.median:.{digits}f} ± {s.stdev:.{digits}f}"


def metric_label(tag: str) -> str:
    m = METRICS[tag]
    return f"{m.title} ({m.unit})"
