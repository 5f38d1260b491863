"""Quality against size and speed: each quality-from-logits cell beside the plain generation cell of the same model,
precision, compression setting, runtime and device, and which of them no other beats on both KLD and weight size
(the Pareto front). The markdown section and the HTML report's scatter chart (reports/html/run_charts.py) read
these rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.escaping import md_text
from harness.core.metrics import (
    KLDP999,
    KLDSE,
    TPOT,
    TTFT,
    KLDMean,
    ModelSizeOnDisk,
    OutputThroughput,
    PeakRSS,
    Perplexity,
    PerplexitySE,
    Top1Agreement,
)
from harness.core.schema import CellResult, CellSpec
from harness.kinds import kind_spec
from reports.rows import fmt_value


@dataclass(frozen=True)
class QualityRow:
    label: str  # the precision as reports name it (compression, runtime)
    key: str
    figures: dict[str, float]  # the quality cell's values
    size_mib: float | None
    decode: CellResult | None  # the plain generation cell of the same weights and runtime, when the run has one
    pareto: bool = False  # no other row has both a KLD and a size at most its own, one of them lower

    def median(self, tag: str) -> float | None:
        s = self.decode.summaries.get(tag) if self.decode is not None else None
        return None if s is None else s.median


@dataclass(frozen=True)
class QualityGroup:
    title: str  # model · device · text set and windows
    rows: list[QualityRow]


def _weights(s: CellSpec) -> tuple:
    """What makes two cells run the same weights the same way (not the scenario)."""
    return (s.model.name, s.model.source, s.precision, s.compression.label(), s.runtime, s.device,
            tuple(sorted(s.properties.items())), s.environment, s.host)


def _front(rows: list[QualityRow]) -> list[QualityRow]:
    scored = [(r, r.figures.get(KLDMean.tag), r.size_mib) for r in rows]

    def beaten(kld: float, size: float) -> bool:
        return any(k is not None and z is not None and k <= kld and z <= size and (k < kld or z < size)
                   for _, k, z in scored)

    return [QualityRow(r.label, r.key, r.figures, r.size_mib, r.decode,
                       pareto=k is not None and z is not None and not beaten(k, z)) for r, k, z in scored]


def quality_groups(cells: list[CellResult]) -> list[QualityGroup]:
    """The ok quality cells (kinds held to a logits baseline), grouped by model, device and text, each row with
    its weights' decode cell."""
    ok = [c for c in cells if c.status == "ok"]
    decode = {_weights(c.spec): c for c in ok if kind_spec(c.spec.scenario.kind).greedy_reference}
    groups: dict[tuple, list[CellResult]] = {}
    for c in ok:
        if kind_spec(c.spec.scenario.kind).logits_baseline:
            s = c.spec
            groups.setdefault((s.model.name, s.device, s.scenario.name, tuple(sorted(s.scenario.params.items())),
                               s.environment, s.host), []).append(c)
    out = []
    for (model, device, scenario, params, _env, _host), members in groups.items():
        rows = [QualityRow(c.spec.precision_label(), c.key, dict(c.cell_values), c.cell_values.get(ModelSizeOnDisk.tag),
                           decode.get(_weights(c.spec))) for c in members]
        rows.sort(key=lambda r: (r.figures.get(KLDMean.tag, math.inf), r.label))
        out.append(QualityGroup(f"{model} · {device} · {scenario}[" + ",".join(f"{k}={v}" for k, v in params) + "]",
                                _front(rows)))
    return out


HEADERS = ("precision", "PPL ± se", "KLD mean ± se", "KLD p99.9", "same top-1 %", "weights MiB", "decode tok/s",
           "TPOT ms", "TTFT ms", "peak MiB", "front")


def row_cells(r: QualityRow) -> list[str]:
    """A row's columns (HEADERS) as text, unescaped."""
    f = r.figures
    return [r.label, f"{fmt_value(f.get(Perplexity.tag), 3)} ± {fmt_value(f.get(PerplexitySE.tag), 3)}",
            f"{fmt_value(f.get(KLDMean.tag), 5)} ± {fmt_value(f.get(KLDSE.tag), 5)}", fmt_value(f.get(KLDP999.tag), 4),
            fmt_value(f.get(Top1Agreement.tag), 2), fmt_value(r.size_mib, 1), fmt_value(r.median(OutputThroughput.tag), 1),
            fmt_value(r.median(TPOT.tag), 2), fmt_value(r.median(TTFT.tag), 1),
            fmt_value(r.decode.cell_values.get(PeakRSS.tag) if r.decode else None, 0), "★" if r.pareto else ""]


def quality_lines(cells: list[CellResult]) -> list[str]:
    """The markdown section: one table per group, lowest KLD first, the Pareto front marked."""
    groups = quality_groups(cells)
    if not groups:
        return []
    lines = ["", "### Quality against size and speed", "",
             "KLD and same top-1 against the fp16 IR (± standard errors over scored tokens); decode figures are the "
             "medians of the plain generation cell with the same weights, runtime and device (— where the run has "
             "none). ★ = on the Pareto front of KLD mean against weight size: no other row is at most as large with "
             "at most its KLD.", ""]
    for g in groups:
        lines += [f"**{md_text(g.title)}**", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(md_text(x) for x in row_cells(r)) + " |" for r in g.rows]
        lines.append("")
    return lines

