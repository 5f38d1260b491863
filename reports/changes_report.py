"""Renderers of the change points `harness history changes` found: a terminal table, Markdown and JSON."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field
from rich.table import Table
from rich.text import Text

from harness.analyze.changes import ChangePoint
from harness.core.escaping import md_code, md_text
from harness.core.schema import ChangeSettings, RatioChangeSettings

_COLOUR = {"regression": "red", "improvement": "green", "change": "yellow"}
# which series `harness history changes --on` looks at: run medians, ratios to a reference side, or both
SeriesOn = Literal["value", "ratio", "both"]


class ChangesReport(BaseModel):
    """What `harness history changes --format json` writes."""

    database: str
    on: SeriesOn = "both"
    settings: ChangeSettings
    ratio_settings: RatioChangeSettings = Field(default_factory=RatioChangeSettings, description="the settings of "
                                                "ratio series (candidate / reference side)")
    series: int = Field(description="series analysed")
    ratio_series: int = Field(0, description="of them, series of ratios to a reference side")
    too_short: int = Field(description="series with fewer runs than two segments need (not analysed)")
    recent: int | None = Field(None, description="--recent: the gate's window in runs")
    recent_regressions: int = Field(0, description="untriaged regressions among the newest `recent` runs (the gate)")
    recent_triaged: int = Field(0, description="triaged regressions among them (not failing the gate)")
    suite_settings: dict[str, ChangeSettings] = Field(default_factory=dict, description="suites searched with their "
                                                      "own `changes:` settings (from their files) instead of `settings`")
    changes: list[ChangePoint]


def pct(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x * 100:+.1f}%"


def magnitude(c: ChangePoint) -> str:
    if c.change is None:
        return f"{c.before_value:.4g} → {c.after_value:.4g} {c.unit}"
    return f"{pct(c.change)} [{pct(c.ci_low)}, {pct(c.ci_high)}]"


def pvalue(p: float) -> str:
    return "<1e-12" if p < 1e-12 else f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def versions(c: ChangePoint) -> str:
    return c.after_versions if c.before_versions == c.after_versions else f"{c.before_versions} → {c.after_versions}"


def triage_text(c: ChangePoint) -> str:
    return c.id + (f" · {c.triage.state}: {c.triage.note}" if c.triage else "")


def changes_table(report: ChangesReport) -> Table:
    table = Table("series", "change [95% CI]", "p", "", "last old run → first new run", "stack", "runs before/after",
                  "runs since", "id · triage", title=f"change points in {report.database} ({report.series} series)")
    for c in report.changes:
        table.add_row(c.label(), magnitude(c), pvalue(c.pvalue), Text(c.direction, style=_COLOUR[c.direction]),
                      f"{c.before_run} → {c.after_run}", versions(c), f"{c.before_runs}/{c.after_runs}",
                      str(c.runs_since), triage_text(c))
    return table


def render_changes_md(report: ChangesReport) -> str:
    s, r = report.settings, report.ratio_settings
    lines = [f"# Change points in {md_text(report.database)}", "",
             f"{report.series} series analysed ({report.too_short} too short), {len(report.changes)} change points. "
             f"PELT on log medians, trimmed Welch p < {s.max_pvalue:g}, |change| ≥ {s.min_magnitude:.0%}, "
             f"≥ {s.min_segment} runs per side.", ""]
    for name, own in report.suite_settings.items():
        lines += [f"Suite {md_text(name)} with its own settings: p < {own.max_pvalue:g}, |change| ≥ "
                  f"{own.min_magnitude:.0%}, ≥ {own.min_segment} runs per side.", ""]
    if report.ratio_series:
        lines += [f"{report.ratio_series} of the series are ratios candidate / reference side (marked ÷ REFERENCE): "
                  f"PELT on log ratios, trimmed means against the series' noise p < {r.max_pvalue:g}, |change| ≥ "
                  f"{r.min_magnitude:.1%}, ≥ {r.min_segment} runs per side.", ""]
    if report.recent is not None:
        lines += [f"Untriaged regressions whose first run is among the last {report.recent}: "
                  f"**{report.recent_regressions}** ({report.recent_triaged} triaged)", ""]
    if not report.changes:
        return "\n".join([*lines, "No change points."]) + "\n"
    lines += ["| series | change [95% CI] | p | direction | last old run → first new run | stack | runs before/after "
              "| runs since | id · triage |", "|---|---|---|---|---|---|---|---|---|"]
    for c in report.changes:
        lines.append(f"| {md_text(c.label())} | {magnitude(c)} | {pvalue(c.pvalue)} | {c.direction} | "
                     f"{md_code(c.before_run)} → {md_code(c.after_run)} | {md_text(versions(c))} | "
                     f"{c.before_runs}/{c.after_runs} | {c.runs_since} | {md_text(triage_text(c))} |")
    return "\n".join(lines) + "\n"
