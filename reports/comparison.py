"""Renderers of a `Comparison` (harness/analyze/compare.py): Markdown, JSON and a rich terminal table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from harness.analyze.compare import Comparison, MetricComparison
from harness.core.escaping import json_of, md_code, md_text

_MARK = {"regression": "REGRESSION", "improvement": "improvement", "unchanged": "unchanged",
         "inconclusive": "inconclusive"}
_ORDER = {"regression": 0, "inconclusive": 1, "improvement": 2, "unchanged": 3}


def change_text(m: MetricComparison) -> str:
    """The change in percent with its interval, e.g. '+7.1% [+5.0, +9.3]'."""
    pct = (m.ratio - 1) * 100
    ci = (f" [{(m.ci_low - 1) * 100:+.1f}, {(m.ci_high - 1) * 100:+.1f}]"
          if m.ci_low is not None and m.ci_high is not None else "")
    return f"{pct:+.1f}%{ci}"


def p_text(m: MetricComparison) -> str:
    return "—" if m.p_adjusted is None else f"{m.p_adjusted:.3g}"


def _min_effect(m: MetricComparison) -> str:
    """The minimum effect used; marked * when the history's run-to-run noise raised it."""
    t = m.deciding_threshold
    return f"{t * 100:.0f}%" + ("*" if t > m.threshold else "")


def sorted_rows(comp: Comparison) -> list[tuple[str, MetricComparison]]:
    """(cell key, metric) rows, regressions first."""
    rows = [(c.key, m) for c in comp.cells for m in c.metrics]
    return sorted(rows, key=lambda r: (_ORDER[r[1].verdict], r[0], r[1].metric))


def render_comparison_md(comp: Comparison) -> str:
    """Markdown: drift, counts, unmatched cells, then one row per cell and metric, worst first."""
    n = comp.counts()
    lines = [f"# Comparison: {md_code(comp.base_run)} → {md_code(comp.candidate_run)}", ""]
    if comp.drift:
        lines += ["## Environment drift", "", "| what | base | candidate |", "|---|---|---|"]
        lines += [f"| {md_text(d.field)} | {md_text(d.base or '—')} | {md_text(d.candidate or '—')} |"
                  for d in comp.drift]
        lines.append("")
    lines += [f"**{n['regression']} regressions**, {n['improvement']} improvements, {n['unchanged']} unchanged, "
              f"{n['inconclusive']} inconclusive (alpha {comp.settings.alpha}, Benjamini–Hochberg-corrected Welch t-test on log values, "
              f"bootstrap 95% CI of the ratio of medians).", ""]
    if comp.only_in_base or comp.only_in_candidate:
        lines += ["Unmatched cells:"]
        lines += [f"- only in base: {md_code(k)}" for k in comp.only_in_base]
        lines += [f"- only in candidate: {md_code(k)}" for k in comp.only_in_candidate]
        lines.append("")
    status = [c for c in comp.cells if c.base_status != "ok" or c.candidate_status != "ok"]
    if status:
        lines += ["Cells not compared (status):"]
        lines += [f"- {md_code(c.key)}: base {md_text(c.base_status)}, candidate {md_text(c.candidate_status)}"
                  for c in status]
        lines.append("")
    lines += ["| cell | metric | base median | candidate median | change [95% CI] | p (adj.) | min effect | n | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, m in sorted_rows(comp):
        lines.append(f"| {md_code(key)} | {md_text(m.metric)} | {m.base_median:.3g} {md_text(m.unit)} "
                     f"| {m.candidate_median:.3g} {md_text(m.unit)} "
                     f"| {change_text(m)} | {p_text(m)} | {_min_effect(m)} | {m.n_base}/{m.n_candidate} "
                     f"| {'**' + _MARK[m.verdict] + '**' if m.verdict == 'regression' else _MARK[m.verdict]}"
                     f"{' (' + md_text(m.note) + ')' if m.note else ''} |")
    if any(m.effective_threshold is not None and m.effective_threshold > m.threshold for _, m in sorted_rows(comp)):
        lines += ["", "\\* minimum effect raised to the cell's run-to-run noise in the history "
                  f"(exp({comp.settings.noise_z:g} · sd · √2) − 1 over earlier runs' medians)."]
    return "\n".join(lines) + "\n"


def render_comparison_json(comp: Comparison) -> str:
    return json_of(comp, indent=1, ascii_only=True)


def comparison_table(comp: Comparison) -> Table:
    """rich table for the terminal, worst first."""
    n = comp.counts()
    table = Table(title=f"{comp.base_run} → {comp.candidate_run}: {n['regression']} regressions, "
                        f"{n['improvement']} improvements, {n['unchanged']} unchanged, {n['inconclusive']} inconclusive")
    for col in ("cell", "metric", "base", "candidate", "change [95% CI]", "p adj.", "min", "verdict"):
        table.add_column(col)
    style = {"regression": "bold red", "improvement": "green", "inconclusive": "yellow", "unchanged": ""}
    for key, m in sorted_rows(comp):
        table.add_row(key, m.metric, f"{m.base_median:.3g}", f"{m.candidate_median:.3g}", change_text(m), p_text(m),
                      _min_effect(m), Text(m.verdict + (" (below the noise floor)" if m.note else ""),
                                           style=style[m.verdict]))
    return table
