"""Renderers of a tuning study (harness/experiment/tune.py's TuneResult): Markdown, a terminal table and an HTML
page with the trade-off chart (Pareto front), the knobs' importances and the winner as a suite snippet."""

from __future__ import annotations

import math

from markupsafe import Markup
from rich.table import Table

from harness.core.escaping import html_text, md_block, md_code, md_text
from harness.experiment.tune import TuneProof, TuneResult, TuneTrial
from reports.ab_report import ratio_interval, ratio_pct
from reports.html.lines import TrialKind, TrialPoint, trials_chart

_STATUS_COLOUR = {"ok": "#1e8449", "slo_violated": "#b9770e"}


def _setting(t: TuneTrial) -> str:
    shown = [f"{k.partition('.')[2]}={v}" for k, v in t.setting.items() if v is not None]
    return ", ".join(shown) or "defaults"


def _value(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _role(r: TuneResult, t: TuneTrial) -> str:
    marks = []
    if t.number == r.best:
        marks.append("best")
    if t.number == r.knee:
        marks.append("knee")
    if t.number in r.pareto and len(r.objectives) > 1:
        marks.append("front")
    return " ".join(marks)


def _status(t: TuneTrial) -> str:
    if t.repeat_of is not None:
        return f"repeat of {t.repeat_of}"
    return t.status + (f": {t.error}" if t.error else "")


def _snippet_kind(r: TuneResult) -> str:
    if any(p.gain for p in r.proofs):
        return "the proven winner"
    return "the defaults: they held" if r.best is not None and r.trial(r.best).is_defaults else \
        "the best measured setting, not proven"


def _measured(r: TuneResult) -> list[TuneTrial]:
    return [t for t in r.trials if t.repeat_of is None]


def _proof_line(p: TuneProof, first_metric: str) -> str:
    if p.error and not p.metrics:
        return f"{p.role} (trial {p.trial}): not proven: {p.error}"
    parts = [f"{m.metric} {ratio_pct(m.ratio)} {ratio_interval(m.cs_low, m.cs_high)} {m.verdict}"
             + (" ← the gain" if m.metric == first_metric and p.gain else "") for m in p.metrics]
    return f"{p.role} (trial {p.trial}, {p.candidate.label()}): " + "; ".join(parts) + f" ({p.stop_reason})"


def render_tune_md(r: TuneResult) -> str:
    first = r.objectives[0].split()[0]
    measured = _measured(r)
    lines = [f"# Tuning {md_code(r.cell_key)} — suite {md_code(r.suite_name)}", "",
             f"**{md_text(r.conclusion)}**", "",
             f"- objectives: {md_text(', '.join(r.objectives))}; SLO: "
             f"{md_text(', '.join(g.describe() for g in r.slo) or 'none')}",
             f"- space: {len(r.space)} knobs, {r.space_size} settings; {len(measured)} measured "
             f"({sum(t.feasible for t in measured)} within the SLO), {len(r.trials) - len(measured)} repeats; "
             f"search {r.search_s / 60:.1f} min of {max(0.0, r.budget_s - r.proof_budget_s) / 60:.1f}; "
             f"stopped: {md_text(r.stop_reason)}",
             f"- host {md_text(r.host)}; study {md_code(r.study)} in {md_text(r.storage)}", ""]
    if r.proofs:
        lines += ["## Proof against the defaults (interleaved A/B)", "",
                  "Ratio setting / defaults with the always-valid 95% interval that decided the verdict "
                  f"(minimum gain {100 * r.min_gain:g}%).", ""]
        lines += [f"- {md_text(_proof_line(p, first))}" for p in r.proofs] + [""]
    lines += ["## Trials", "", "| # | setting | status | " + " | ".join(md_text(o) for o in r.objectives)
              + (" | SLO" if r.slo else "") + " | s | |",
              "|---|---|---|" + "---|" * len(r.objectives) + ("---|" if r.slo else "") + "---|---|"]
    for t in r.trials:
        slo = (" | " + ", ".join(f"{c.value:.4g}" if c.value is not None else "—" for c in t.slo)) if r.slo else ""
        lines.append(f"| {t.number} | {md_text(_setting(t))} | {md_text(_status(t))} | "
                     + " | ".join(_value(v) for v in t.values) + f"{slo} | {t.wall_s:.0f} | {_role(r, t)} |")
    lines += ["", "## Importance of each knob (fANOVA, first objective)", ""]
    if r.importances:
        lines += [f"- {md_text(k)}: {v:.2f}" for k, v in r.importances.items()]
    else:
        lines.append(f"- {md_text(r.importance_note or 'not computed')}")
    if r.snippet:
        lines += ["", f"## Suite snippet ({_snippet_kind(r)})", "", md_block(r.snippet, "yaml")]
    return "\n".join(lines) + "\n"


def tune_table(r: TuneResult) -> Table:
    """The trials ranked by the first objective (within the SLO first), at most 15 rows."""
    t = Table(title=f"tune {r.cell_key}: {len(_measured(r))} settings measured")
    for col in ("#", "setting", "status", *r.objectives, ""):
        t.add_column(col)
    sign = -1.0 if _higher_first(r) else 1.0
    ranked = sorted(_measured(r), key=lambda x: (not x.feasible, sign * (x.values[0] or 0.0) if x.values and
                                                 x.values[0] is not None else math.inf, x.number))
    for x in ranked[:15]:
        t.add_row(str(x.number), _setting(x), _status(x), *(_value(v) for v in x.values), _role(r, x))
    return t


def _higher_first(r: TuneResult) -> bool:
    from harness.plan.tuning import objective_of

    return objective_of(r.objectives[0]).higher_is_better


def _chart(r: TuneResult) -> Markup:
    """Two objectives or more: the first two against each other, the front joined; one: the objective by trial."""
    from harness.core.metrics import METRICS
    from harness.plan.tuning import objective_of

    objs = [objective_of(o) for o in r.objectives]
    measured = [t for t in _measured(r) if t.status in ("ok", "slo_violated") and all(v is not None for v in t.values)]
    if not measured:
        return Markup("<p>No trial measured the objectives.</p>")
    two = len(objs) >= 2
    front = set(r.pareto) if two else {r.best}

    def point(t: TuneTrial) -> TrialPoint:
        kind: TrialKind = "front" if t.number in front else "within" if t.status == "ok" else "outside"
        tip = f"#{t.number} {_setting(t)}: " + ", ".join(f"{o} {_value(v)}" for o, v in zip(r.objectives, t.values,
                                                                                           strict=True))
        x = float(t.values[0] or 0.0) if two else float(t.number)
        return TrialPoint(tip, x, float(t.values[1 if two else 0] or 0.0), kind)

    points = [point(t) for t in measured]
    if two:
        return trials_chart(f"{r.objectives[1]} against {r.objectives[0]}", "each trial; hover for its setting",
                            METRICS[objs[0].metric].unit, METRICS[objs[1].metric].unit, points)
    return trials_chart(f"{r.objectives[0]} by trial", "each trial; hover for its setting", "trial",
                        METRICS[objs[0].metric].unit, points)


def _importance_bars(r: TuneResult) -> str:
    if not r.importances:
        return f"<p>{html_text(r.importance_note or 'not computed')}</p>"
    rows = "".join(f'<tr><td>{html_text(k)}</td><td><div style="background:#4e79a7;height:10px;width:{300 * v:.0f}px">'
                   f"</div></td><td>{v:.2f}</td></tr>" for k, v in r.importances.items())
    return f"<table>{rows}</table>"


def render_tune_html(r: TuneResult) -> str:
    first = r.objectives[0].split()[0]
    proofs = "".join(f"<li>{html_text(_proof_line(p, first))}</li>" for p in r.proofs)
    heads = "".join(f"<th>{html_text(o)}</th>" for o in r.objectives) + ("<th>SLO</th>" if r.slo else "")
    rows = []
    for t in r.trials:
        slo = ("<td>" + html_text(", ".join(f"{c.value:.4g}" if c.value is not None else "—" for c in t.slo))
               + "</td>") if r.slo else ""
        colour = _STATUS_COLOUR.get(t.status, "#c0392b") if t.repeat_of is None else "#888"
        rows.append(f"<tr><td>{t.number}</td><td>{html_text(_setting(t))}</td>"
                    f"<td style=\"color:{colour}\">{html_text(_status(t))}</td>"
                    + "".join(f"<td>{_value(v)}</td>" for v in t.values) + slo
                    + f"<td>{t.wall_s:.0f}</td><td>{html_text(_role(r, t))}</td></tr>")
    snippet = f"<h2>Suite snippet ({_snippet_kind(r)})</h2><pre>{html_text(r.snippet)}</pre>" if r.snippet else ""
    measured = _measured(r)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tune {html_text(r.cell_key)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px}} pre{{background:#f4f4f4;padding:8px}}
.grid{{stroke:#eee}} .tick,.legend,.unit{{font-size:11px}}</style>
</head><body><h1>Tuning {html_text(r.cell_key)}</h1>
<p><b>{html_text(r.conclusion)}</b></p>
<p>suite {html_text(r.suite_name)} · objectives {html_text(', '.join(r.objectives))} · SLO
{html_text(', '.join(g.describe() for g in r.slo) or 'none')}<br>
{len(r.space)} knobs, {r.space_size} settings; {len(measured)} measured ({sum(t.feasible for t in measured)} within
the SLO); search {r.search_s / 60:.1f} min; stopped: {html_text(r.stop_reason)}<br>
host {html_text(r.host)} · study {html_text(r.study)} in {html_text(r.storage)}</p>
<h2>Proof against the defaults</h2>{'<ul>' + proofs + '</ul>' if proofs else '<p>none run</p>'}
<h2>Trade-off</h2>{_chart(r)}
<h2>Importance of each knob</h2><p>Optuna's fANOVA over the measured settings, first objective.</p>
{_importance_bars(r)}
{snippet}
<h2>Trials</h2><table><tr><th>#</th><th>setting</th><th>status</th>{heads}<th>s</th><th></th></tr>
{''.join(rows)}</table></body></html>
"""
