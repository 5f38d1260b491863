"""The measurement charts of a run page: medians by precision · device, latency distributions, memory,
speculative acceptance and quality against weight size."""

from __future__ import annotations

from dataclasses import dataclass, replace

from markupsafe import Markup

from harness.core.metrics import (
    METRICS,
    TPOT,
    TTFT,
    AcceptanceRate,
    KLDMean,
    ModelMemory,
    OutputThroughput,
    PeakRSS,
)
from harness.core.schema import CellResult, Summary
from reports.html.charts import Bar, bar_chart, box_chart
from reports.html.labels import short_labels
from reports.html.scatter import scatter_chart
from reports.html.svg import num, palette, unique
from reports.quality_table import quality_groups


def _measured(cell: CellResult, tag: str) -> list[float]:
    """Raw per-iteration values of one metric, warm-up excluded."""
    return [x for s in cell.samples if not s.warmup for x in s.values.get(tag, [])]


def _summary_bar(s: Summary) -> Bar:
    return Bar(s.median, s.min, s.max, tip=f"median {num(s.median)}, min {num(s.min)}, max {num(s.max)}, n={s.n}")


@dataclass(frozen=True)
class Series:
    """Measured cells as chart series: grouped by precision · device, named by the rest of the key,
    one colour per name on every chart of the page."""

    group: dict[str, str]
    name: dict[str, str]
    color: dict[str, str]

    @classmethod
    def of(cls, cells: list[CellResult]) -> Series:
        group = {c.key: f"{c.spec.precision} · {c.spec.device}" for c in cells}
        name = short_labels([c.key for c in cells], {c.key: {c.spec.precision, c.spec.device} for c in cells}, group)
        return cls(group, name, palette(name.values()))


def _metric_bars(cells: list[CellResult], tag: str, series: Series, subtitle: str) -> Markup | None:
    """Medians of one metric grouped by precision · device, one bar per series."""
    cells = [c for c in cells if tag in c.summaries]
    if not cells:
        return None
    bars = {(series.group[c.key], series.name[c.key]): _summary_bar(c.summaries[tag]) for c in cells}
    m = METRICS[tag]
    better = "higher" if m.higher_is_better else "lower"
    return bar_chart(f"{m.title} ({m.unit}) by precision and device", m.unit, unique(g for g, _ in bars),
                     unique(n for _, n in bars), bars, subtitle=f"{subtitle}; {better} is better",
                     colors=series.color)


def performance_charts(cells: list[CellResult], series: Series) -> list[Markup]:
    sub = "median per cell; whiskers min–max of the measured iterations"
    charts = [_metric_bars(cells, tag, series, sub) for tag in (OutputThroughput.tag, TTFT.tag, TPOT.tag)]
    return [c for c in charts if c is not None]


def latency_boxes(cells: list[CellResult], labels: dict[str, str], series: Series) -> list[Markup]:
    out = []
    for tag in (TTFT.tag, TPOT.tag):
        rows = [(labels[c.key], _measured(c, tag)) for c in cells]
        if any(v for _, v in rows):
            m = METRICS[tag]
            out.append(box_chart(f"{m.title} distribution ({m.unit})", m.unit, rows,
                                 subtitle="every measured iteration (warm-up excluded); box q1–q3, whiskers 1.5 IQR",
                                 colors=[series.color[series.name[c.key]] for c in cells]))
    return out


def memory_chart(cells: list[CellResult], labels: dict[str, str]) -> Markup | None:
    series = {PeakRSS.tag: "peak RSS", ModelMemory.tag: "model memory (RSS added by loading)"}
    bars = {(labels[c.key], name): Bar(c.cell_values[tag]) for c in cells for tag, name in series.items()
            if tag in c.cell_values}
    if not bars:
        return None
    return bar_chart("Memory per cell (MiB)", "MiB", [labels[c.key] for c in cells], list(series.values()), bars,
                     subtitle="one measurement per cell; lower is better")


def acceptance_chart(cells: list[CellResult], labels: dict[str, str]) -> Markup | None:
    tag = AcceptanceRate.tag
    summaries = {labels[c.key]: c.summaries[tag] for c in cells if tag in c.summaries}
    if not summaries:
        return None
    bars = {(g, "acceptance"): replace(_summary_bar(s), label=f"{s.median:.1f}%") for g, s in summaries.items()}
    return bar_chart("Speculative acceptance rate (%)", "%", [g for g, _ in bars], ["acceptance"], bars,
                     subtitle="share of proposed draft tokens accepted; median, whiskers min–max", include=(100,))


def pareto_charts(cells: list[CellResult]) -> list[Markup]:
    """Per quality group (reports/quality_table.py), KLD mean (log scale) against weight size, the front joined."""
    out = []
    for g in quality_groups(cells):
        drawn = [(r.label, r.size_mib, kld, r.pareto) for r in g.rows
                 if r.size_mib is not None and (kld := r.figures.get(KLDMean.tag)) is not None]
        if len(drawn) >= 2:
            out.append(scatter_chart("KLD vs weight size", "weights MiB", "KLD mean, nats", drawn,
                                     subtitle=f"{g.title}; lower left is better; ★ the Pareto front"))
    return out
