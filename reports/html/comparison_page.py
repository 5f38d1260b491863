"""The HTML page of a comparison of two runs: verdict counts, change charts, the cells × metrics matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import Markup

from harness.core.metrics import METRICS, TPOT, OutputThroughput
from harness.core.schema import RunResults
from reports.html.charts import Bar, bar_chart
from reports.html.environment import env
from reports.html.labels import short_labels
from reports.html.svg import unique

if TYPE_CHECKING:  # harness.analyze.compare pulls in scipy: imported only when a comparison is rendered
    from harness.analyze.compare import Comparison, MetricComparison

VERDICT_COLORS = {"regression": "#d62728", "improvement": "#2ca02c", "inconclusive": "#e0a100",
                  "unchanged": "#8c8c8c"}


def _change_chart(comp: Comparison, tag: str, labels: dict[str, str]) -> Markup | None:
    """Change of one metric per cell in %, CI as whiskers, bars coloured by verdict."""
    found = [(c.key, m) for c in comp.cells for m in c.metrics if m.metric == tag]
    if not found:
        return None
    bars = {(labels[k], "change"): _change_bar(m) for k, m in found}
    meta = METRICS[tag]
    threshold = max(m.deciding_threshold for _, m in found) * 100
    legend = [(v, VERDICT_COLORS[v]) for v in ("regression", "improvement", "unchanged", "inconclusive")]
    better = "higher" if meta.higher_is_better else "lower"
    return bar_chart(f"{meta.title}: change candidate vs base (%)", "% change", [g for g, _ in bars], ["change"], bars,
                     subtitle=f"ratio of medians − 1; whiskers 95% bootstrap CI; band ±{threshold:.0f}% min effect; "
                              f"{better} is better", band=threshold, legend=legend)


def _change_bar(m: MetricComparison) -> Bar:
    from reports.comparison import change_text

    pct = (m.ratio - 1) * 100
    lo = (m.ci_low - 1) * 100 if m.ci_low is not None else None
    hi = (m.ci_high - 1) * 100 if m.ci_high is not None else None
    return Bar(pct, lo, hi, color=VERDICT_COLORS[m.verdict], label=f"{pct:+.1f}%",
               tip=f"{m.metric}: {change_text(m)} — {m.verdict}")


def _matrix(comp: Comparison, labels: dict[str, str]) -> dict[str, object]:
    """Cells × metrics: each entry the MetricComparison (or None)."""
    metrics = unique(m.metric for c in comp.cells for m in c.metrics)
    rows = [(c, labels[c.key], [next((m for m in c.metrics if m.metric == t), None) for t in metrics])
            for c in comp.cells if c.metrics]
    return {"metrics": [(t, METRICS[t].title) for t in metrics], "rows": rows}


def _run_facts(res: RunResults | None) -> dict[str, str] | None:
    if res is None:
        return None
    m = res.metadata
    return {"run": m.run_id, "suite": m.suite_name, "started": m.started_at, "host": m.host.hostname,
            "cpu": f"{m.host.cpu_model or '?'} ({m.host.logical_cores} logical cores)",
            "openvino-genai": m.versions.get("openvino-genai") or "—", "harness commit": m.harness_commit or "—",
            "cells ok": f"{sum(c.status == 'ok' for c in res.cells)}/{len(res.cells)}"}


def render_comparison_html(comp: Comparison, base: RunResults | None = None,
                           candidate: RunResults | None = None) -> str:
    """The HTML page of a comparison; the runs themselves, when given, add their facts side by side."""
    from reports.comparison import change_text, p_text, sorted_rows

    labels = short_labels([c.key for c in comp.cells if c.metrics])
    charts = [c for c in (_change_chart(comp, t, labels) for t in (TPOT.tag, OutputThroughput.tag)) if c is not None]
    return env.get_template("comparison.html.j2").render(
        comp=comp, counts=comp.counts(), charts=charts, matrix=_matrix(comp, labels), rows=sorted_rows(comp),
        change=change_text, p=p_text, facts=[(n, _run_facts(r)) for n, r in (("base", base), ("candidate", candidate))
                                     if r is not None],
        not_compared=[c for c in comp.cells if c.base_status != "ok" or c.candidate_status != "ok"],
    )
