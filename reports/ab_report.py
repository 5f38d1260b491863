"""Renderers of an A/B record (harness/experiment/ab.py's ABResult): the release comparison as Markdown, a terminal
table and an HTML page whose chart draws every ratio with its interval."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text

from harness.core.escaping import html_text, md_code, md_text
from harness.experiment.ab import ABCell, ABMetric, ABResult

_ORDER = {"regression": 0, "inconclusive": 1, "improvement": 2, "unchanged": 3}
_COLOUR = {"regression": "#c0392b", "improvement": "#1e8449", "unchanged": "#566573", "inconclusive": "#b9770e"}


def ratio_pct(x: float | None) -> str:
    """A ratio as a signed percent change, e.g. 1.071 -> '+7.1%'."""
    return "—" if x is None or not math.isfinite(x) else f"{(x - 1) * 100:+.1f}%"


def ratio_interval(lo: float | None, hi: float | None) -> str:
    return "—" if lo is None or hi is None else f"[{ratio_pct(lo)}, {ratio_pct(hi)}]"


def _cell_label(c: ABCell) -> str:
    params = ",".join(f"{k}={v}" for k, v in sorted(c.params.items()))
    return f"{c.model} · {c.precision} · {c.scenario}" + (f"[{params}]" if params else "")


def _rows(ab: ABResult) -> list[tuple[ABCell, ABMetric]]:
    rows = [(c, m) for c in ab.cells for m in c.metrics]
    return sorted(rows, key=lambda r: (r[0].model, ["fp16", "int8", "int4"].index(r[0].precision)
                                       if r[0].precision in ("fp16", "int8", "int4") else 9, r[0].scenario,
                                       r[1].metric))


def _median(m: ABMetric, v: float) -> str:
    return f"{v:.4g} {m.unit}"


def _levels(m: ABMetric) -> str:
    if m.within_sd is None or m.between_sd is None:
        return "–"
    return f"{100 * m.within_sd:.1f}% / {100 * m.between_sd:.1f}%"


def render_ab_md(ab: ABResult) -> str:
    """The release comparison: per model × precision × scenario and metric, both medians, the ratio with
    its 95% interval and always-valid sequence, the minimum effect, the rounds and the verdict."""
    n = ab.counts()
    lines = [f"# A/B {md_code(ab.ab_id)} — suite {md_code(ab.suite_name)}", "",
             f"- base: {md_text(ab.base.label())} (run {md_code(ab.base_run)})",
             f"- candidate: {md_text(ab.candidate.label())} (run {md_code(ab.candidate_run)})"]
    for side, versions in ab.environments.items():
        shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        lines.append(f"- {md_text(side)} imports: {md_text(shown)}")
    lines += [f"- {len(ab.cells)} cells, wall time {ab.wall_s / 60:.1f} min, stopped: {md_text(ab.stop_reason)}",
              f"- alpha {ab.settings.alpha} over the whole comparison (Bonferroni over cells and metrics), "
              f"budget {ab.settings.budget_s / 60:g} min, at least {ab.settings.min_rounds} rounds", "",
              f"**{n['regression']} regressions**, {n['improvement']} improvements, {n['unchanged']} unchanged, "
              f"{n['inconclusive']} inconclusive (cells).", ""]
    failed = [c for c in ab.cells if c.error]
    if failed:
        lines += ["Cells not compared:"] + [f"- {md_code(c.key)}: {md_text(c.error or '')}" for c in failed] + [""]
    otherwise = [c for c in ab.cells if c.pairing_note]
    if otherwise:
        lines += [f"Cells not paired as asked ({ab.settings.pairing}):"] + [
            f"- {md_code(c.key)}: {md_text(c.pairing_note or '')}" for c in otherwise] + [""]
    lines += ["| model | precision | scenario | metric | base median | candidate median | ratio | 95% CI | "
              "sequence | min effect | rounds | pairs | sd call / process | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c, m in _rows(ab):
        params = ",".join(f"{k}={v}" for k, v in sorted(c.params.items()))
        scen = c.scenario + (f"[{params}]" if params else "")
        settled = f"{m.rounds}" + (f" (settled at {m.settled_at})" if m.settled_at else "")
        verdict = m.verdict.upper() if m.verdict == "regression" else m.verdict
        lines.append(f"| {md_text(c.model)} | {md_text(c.precision)} | {md_text(scen)} | {md_text(m.metric)} "
                     f"| {md_text(_median(m, m.base_median))} | {md_text(_median(m, m.candidate_median))} | {ratio_pct(m.ratio)} | {ratio_interval(m.ci_low, m.ci_high)} "
                     f"| {ratio_interval(m.cs_low, m.cs_high)} | {m.threshold * 100:.0f}% | {settled} "
                     f"| {m.pairs} {_paired_by(c, m)} | {_levels(m)} | {verdict} |")
    lines += ["", "ratio: geometric mean of the per-round paired ratios candidate / base (paired by calls: a round's "
              "ratio is the geometric mean of its call pairs'; sliced calls ran at once, one side at a time, each "
              "timed on its active clock); 95% CI: Student-t on the rounds' log ratios at the last "
              "round; sequence: the always-valid confidence sequence that decided the verdict; sd call / process: the "
              "sd of one call pair's log ratio and of a process pair's own offset (docs/ab.md)."]
    return "\n".join(lines) + "\n"


def _paired_by(c: ABCell, m: ABMetric) -> str:
    if m.paired_by == "process":
        return "processes"
    return "sliced calls" if c.pairing == "slices" else "calls"


def ab_table(ab: ABResult) -> Table:
    table = Table("cell", "metric", "base", "candidate", "ratio [95% CI]", "rounds", "verdict",
                  title=f"A/B {ab.ab_id}: {ab.base.label()} → {ab.candidate.label()}")
    for c, m in sorted(_rows(ab), key=lambda r: _ORDER[r[1].verdict]):
        style = {"regression": "bold red", "improvement": "green", "inconclusive": "yellow"}.get(m.verdict, "")
        table.add_row(c.key, m.metric, _median(m, m.base_median), _median(m, m.candidate_median),
                      f"{ratio_pct(m.ratio)} {ratio_interval(m.ci_low, m.ci_high)}", str(m.rounds), Text(m.verdict, style=style))
    return table


def _forest(ab: ABResult) -> str:
    """SVG: one row per cell and metric, the ratio as a dot, the 95% CI as a thick bar, the sequence as a thin
    one, the minimum effect as a shaded band around 1."""
    rows = [(c, m) for c, m in _rows(ab) if math.isfinite(m.ratio)]
    if not rows:
        return "<p>No paired rounds.</p>"
    ends = [x for _, m in rows for x in (m.ratio, m.ci_low, m.ci_high, m.cs_low, m.cs_high, 1 + m.threshold,
                                          1 / (1 + m.threshold)) if x is not None and math.isfinite(x)]
    lo, hi = math.log(min(ends)), math.log(max(ends))
    pad = (hi - lo) * 0.05 or 0.01
    lo, hi = lo - pad, hi + pad
    labels = [f"{_cell_label(c)} · {m.metric}" for c, m in rows]
    left, width, row_h = 20 + 7 * max(len(x) for x in labels), 520, 22  # ~7 px a character at 12 px
    height = 30 + row_h * len(rows)

    def x(v: float) -> float:
        return left + (math.log(v) - lo) / (hi - lo) * width

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 180}" height="{height + 20}" '
           'font-family="sans-serif" font-size="12" role="img" aria-label="ratios candidate/base with intervals">']
    out.append(f'<line x1="{x(1):.1f}" y1="10" x2="{x(1):.1f}" y2="{height}" stroke="#333" stroke-dasharray="3,3"/>')
    for i, (c, m) in enumerate(rows):
        y = 25 + i * row_h
        band = (x(1 / (1 + m.threshold)), x(1 + m.threshold))
        out.append(f'<rect x="{band[0]:.1f}" y="{y - 8}" width="{band[1] - band[0]:.1f}" height="16" fill="#eee"/>')
        label = html_text(f"{_cell_label(c)} · {m.metric}")
        out.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{label}</text>')
        colour = _COLOUR[m.verdict]
        if m.cs_low is not None and m.cs_high is not None:
            out.append(f'<line x1="{x(m.cs_low):.1f}" y1="{y}" x2="{x(m.cs_high):.1f}" y2="{y}" stroke="{colour}" '
                       'stroke-width="1.5"/>')
        if m.ci_low is not None and m.ci_high is not None:
            out.append(f'<line x1="{x(m.ci_low):.1f}" y1="{y}" x2="{x(m.ci_high):.1f}" y2="{y}" stroke="{colour}" '
                       'stroke-width="5" stroke-opacity="0.6"/>')
        out.append(f'<circle cx="{x(m.ratio):.1f}" cy="{y}" r="4" fill="{colour}"><title>{html_text(ratio_pct(m.ratio))} '
                   f'{html_text(ratio_interval(m.ci_low, m.ci_high))} {m.verdict}</title></circle>')
        out.append(f'<text x="{left + width + 8}" y="{y + 4}" fill="{colour}">{ratio_pct(m.ratio)} {m.verdict}</text>')
    for v in (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25):
        if lo <= math.log(v) <= hi:
            out.append(f'<text x="{x(v):.1f}" y="{height + 14}" text-anchor="middle">{(v - 1) * 100:+.0f}%</text>')
    out.append("</svg>")
    return "".join(out)


def render_ab_html(ab: ABResult) -> str:
    md_rows = "".join(
        f"<tr><td>{html_text(c.model)}</td><td>{html_text(c.precision)}</td><td>{html_text(c.scenario)}</td>"
        f"<td>{html_text(m.metric)}</td><td>{html_text(_median(m, m.base_median))}</td>"
        f"<td>{html_text(_median(m, m.candidate_median))}</td><td>{ratio_pct(m.ratio)}</td>"
        f"<td>{html_text(ratio_interval(m.ci_low, m.ci_high))}</td><td>{html_text(ratio_interval(m.cs_low, m.cs_high))}</td>"
        f"<td>{m.threshold * 100:.0f}%</td><td>{m.rounds}</td>"
        f"<td style=\"color:{_COLOUR[m.verdict]}\">{m.verdict}</td></tr>" for c, m in _rows(ab))
    n = ab.counts()
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A/B {html_text(ab.ab_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 6px}}</style>
</head><body><h1>A/B {html_text(ab.ab_id)} — suite {html_text(ab.suite_name)}</h1>
<p>base: {html_text(ab.base.label())} · candidate: {html_text(ab.candidate.label())}<br>
{n['regression']} regressions, {n['improvement']} improvements, {n['unchanged']} unchanged, {n['inconclusive']} inconclusive;
wall time {ab.wall_s / 60:.1f} min; stopped: {html_text(ab.stop_reason)}</p>
<h2>Ratio candidate / base</h2><p>dot: geometric mean of paired ratios; thick bar: 95% CI; thin bar: the always-valid
sequence that decided the verdict; grey band: the minimum effect.</p>
{_forest(ab)}
<h2>Table</h2><table><tr><th>model</th><th>precision</th><th>scenario</th><th>metric</th><th>base median</th>
<th>candidate median</th><th>ratio</th><th>95% CI</th><th>sequence</th><th>min effect</th><th>rounds</th><th>verdict</th></tr>
{md_rows}</table></body></html>
"""
