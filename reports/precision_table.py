"""Per model: fp16 / int8 / int4 side by side — speed, memory, size on disk, accuracy, and the speed-up
and compression ratio against fp16 — for each otherwise identical group of cells."""

from __future__ import annotations

from dataclasses import dataclass

from harness.schema import CellResult

ORDER = {"fp16": 0, "int8": 1, "int4": 2}


@dataclass
class PrecisionRow:
    precision: str
    key: str
    ttft_ms: float | None
    tpot_ms: float | None
    output_tps: float | None
    peak_rss_mb: float | None
    size_mb: float | None
    token_match_pct: float | None
    similarity_pct: float | None
    speedup: float | None  # fp16 TPOT / this TPOT (decode speed relative to fp16)
    compression: float | None  # fp16 size on disk / this size


@dataclass
class PrecisionGroup:
    title: str  # model · device · scenario · the rest of the cell key
    rows: list[PrecisionRow]


def _group_key(c: CellResult) -> tuple:
    s = c.spec
    return (s.model.name, s.device, s.scenario.name, tuple(sorted(s.scenario.params.items())),
            s.prompts.model_dump_json(), s.generation.model_dump_json(), tuple(sorted(s.properties.items())))


def _median(c: CellResult, tag: str) -> float | None:
    s = c.summaries.get(tag)
    return None if s is None else s.median


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def precision_groups(cells: list[CellResult]) -> list[PrecisionGroup]:
    """Groups of ok cells that differ only in precision (two or more precisions present)."""
    groups: dict[tuple, list[CellResult]] = {}
    for c in cells:
        if c.status == "ok":
            groups.setdefault(_group_key(c), []).append(c)
    out = []
    for members in groups.values():
        if len({c.spec.precision for c in members}) < 2:
            continue
        members.sort(key=lambda c: ORDER.get(c.spec.precision, 9))
        ref = next((c for c in members if c.spec.precision == "fp16"), None)
        rows = []
        for c in members:
            tpot, size = _median(c, "tpot_ms"), c.cell_values.get("model_size_mb")
            rows.append(PrecisionRow(
                precision=c.spec.precision, key=c.key, ttft_ms=_median(c, "ttft_ms"), tpot_ms=tpot,
                output_tps=_median(c, "output_tps"), peak_rss_mb=c.cell_values.get("peak_rss_mb"), size_mb=size,
                token_match_pct=c.cell_values.get("token_match_pct"),
                similarity_pct=c.cell_values.get("output_similarity_pct"),
                speedup=_ratio(_median(ref, "tpot_ms"), tpot) if ref else None,
                compression=_ratio(ref.cell_values.get("model_size_mb"), size) if ref else None,
            ))
        m = members[0].spec
        params = ",".join(f"{k}={v}" for k, v in sorted(m.scenario.params.items()))
        title = f"{m.model.name} · {m.device} · {m.scenario.name}" + (f"[{params}]" if params else "")
        out.append(PrecisionGroup(title=title, rows=rows))
    return out
