"""Per model: fp16 / int8 / int4 side by side — the scenario's speed figures, memory, size on disk,
accuracy against fp16, and the speed-up and compression ratio against fp16 — for each otherwise
identical group of cells."""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.escaping import json_of
from harness.core.metrics import METRICS, ModelSizeOnDisk, PeakRSS
from harness.core.schema import CellResult
from harness.kinds import Column, kind_spec
from reports.rows import column_text

ORDER = {"fp16": 0, "int8": 1, "int4": 2}

@dataclass
class PrecisionRow:
    precision: str
    key: str
    cells: list[str]  # the group's columns, formatted
    speedup: float | None  # fp16's speed / this one's, on the kind's speed metric (> 1 = faster)
    compression: float | None  # fp16 size on disk / this size


@dataclass
class PrecisionGroup:
    title: str  # model · device · scenario[params]
    headers: list[str]
    rows: list[PrecisionRow]
    speedup_on: str  # title of the metric the speed-up is taken on (the kind's registry entry names it)


def _group_key(c: CellResult) -> tuple:
    s = c.spec
    return (s.model.name, s.device, s.scenario.name, tuple(sorted(s.scenario.params.items())),
            json_of(s.prompts), json_of(s.generation), tuple(sorted(s.properties.items())),
            s.environment, s.host)


def _median(c: CellResult, tag: str) -> float | None:
    s = c.summaries.get(tag)
    return None if s is None else s.median


def _speedup(ref: CellResult | None, c: CellResult, tag: str) -> float | None:
    a, b = (_median(ref, tag) if ref else None), _median(c, tag)
    if a is None or b is None or a == 0 or b == 0:
        return None
    return b / a if METRICS[tag].higher_is_better else a / b


def precision_groups(cells: list[CellResult]) -> list[PrecisionGroup]:
    """Groups of ok cells that differ only in precision (two or more precisions present)."""
    groups: dict[tuple, list[CellResult]] = {}
    for c in cells:
        if c.status == "ok" and kind_spec(c.spec.scenario.kind).precision_axis:
            groups.setdefault(_group_key(c), []).append(c)
    out = []
    for members in groups.values():
        if len({c.spec.precision for c in members}) < 2:
            continue
        members.sort(key=lambda c: ORDER.get(c.spec.precision, 9))
        kind = members[0].spec.scenario.kind
        table = kind_spec(kind).report
        cols = (*table.speed, Column("peak MiB", PeakRSS.tag, "max", 0), Column("size MiB", ModelSizeOnDisk.tag, "max", 1),
                *table.accuracy)
        speed_tag = table.speedup_metric
        ref = next((c for c in members if c.spec.precision == "fp16"), None)
        rows = []
        for c in members:
            size, ref_size = c.cell_values.get(ModelSizeOnDisk.tag), ref.cell_values.get(ModelSizeOnDisk.tag) if ref else None
            rows.append(PrecisionRow(
                precision=c.spec.precision_label(), key=c.key, cells=[column_text(col, c.summaries) for col in cols],
                speedup=_speedup(ref, c, speed_tag),
                compression=ref_size / size if ref_size and size else None))
        m = members[0].spec
        params = ",".join(f"{k}={v}" for k, v in sorted(m.scenario.params.items()))
        title = f"{m.model.name} · {m.device} · {m.scenario.name}" + (f"[{params}]" if params else "") + (
            f" · env {m.environment}" if m.environment else "") + (f" · host {m.host}" if m.host else "")
        out.append(PrecisionGroup(title=title, headers=[col.header for col in cols], rows=rows,
                                  speedup_on=METRICS[speed_tag].title))
    return out
