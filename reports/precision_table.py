"""Per model: fp16 / int8 / int4 side by side — the scenario's speed figures, memory, size on disk,
accuracy against fp16, and the speed-up and compression ratio against fp16 — for each otherwise
identical group of cells."""

from __future__ import annotations

from dataclasses import dataclass

from harness.metrics import METRICS
from harness.schema import CellResult
from reports.rows import Column

ORDER = {"fp16": 0, "int8": 1, "int4": 2}

_TEXT = (Column("TTFT ms", "ttft_ms", "median"), Column("TPOT ms", "tpot_ms", "median", 2),
         Column("tok/s", "output_tps", "median"))
# Per scenario kind: the speed columns, the metric the speed-up is taken on, and the accuracy columns.
SPEED_COLUMNS: dict[str, tuple[Column, ...]] = {
    "continuous_batching": (Column("TTFT p90 ms", "ttft_ms", "p90"), Column("TPOT ms", "tpot_ms", "median", 2),
                            Column("total tok/s", "batch_output_tps", "median")),
    "embeddings": (Column("docs/s", "documents_per_s", "median"), Column("latency ms", "e2e_ms", "median", 2)),
    "rerank": (Column("docs/s", "documents_per_s", "median"), Column("latency ms", "e2e_ms", "median", 2)),
    "speech": (Column("RTF", "rtf", "median", 3), Column("latency ms", "e2e_ms", "median"),
               Column("TPOT ms", "tpot_ms", "median", 2)),
    "text2image": (Column("s/image", "image_s", "median", 3), Column("step ms", "step_ms", "median", 2)),
}
SPEEDUP_METRIC = {"continuous_batching": "batch_output_tps", "embeddings": "documents_per_s",
                  "rerank": "documents_per_s", "speech": "e2e_ms", "text2image": "image_s"}
ACCURACY_COLUMNS: dict[str, tuple[Column, ...]] = {
    "embeddings": (Column("cosine vs fp16", "embedding_cosine", "max", 4),),
    "rerank": (Column("rank corr. vs fp16", "rerank_spearman", "max", 3),),
    "text2image": (Column("pixel sim. %", "image_similarity_pct", "max", 1),),
}
_TEXT_ACCURACY = (Column("token match %", "token_match_pct", "max", 1),
                  Column("similarity %", "output_similarity_pct", "max", 1))


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


def _group_key(c: CellResult) -> tuple:
    s = c.spec
    return (s.model.name, s.device, s.scenario.name, tuple(sorted(s.scenario.params.items())),
            s.prompts.model_dump_json(), s.generation.model_dump_json(), tuple(sorted(s.properties.items())),
            s.environment)


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
        if c.status == "ok" and c.spec.scenario.kind != "tokenizer":
            groups.setdefault(_group_key(c), []).append(c)
    out = []
    for members in groups.values():
        if len({c.spec.precision for c in members}) < 2:
            continue
        members.sort(key=lambda c: ORDER.get(c.spec.precision, 9))
        kind = members[0].spec.scenario.kind
        cols = (*SPEED_COLUMNS.get(kind, _TEXT), Column("peak MiB", "peak_rss_mb", "max", 0),
                Column("size MiB", "model_size_mb", "max", 1), *ACCURACY_COLUMNS.get(kind, _TEXT_ACCURACY))
        speed_tag = SPEEDUP_METRIC.get(kind, "tpot_ms")
        ref = next((c for c in members if c.spec.precision == "fp16"), None)
        rows = []
        for c in members:
            size, ref_size = c.cell_values.get("model_size_mb"), ref.cell_values.get("model_size_mb") if ref else None
            rows.append(PrecisionRow(
                precision=c.spec.precision, key=c.key, cells=[col.text(c.summaries) for col in cols],
                speedup=_speedup(ref, c, speed_tag),
                compression=ref_size / size if ref_size and size else None))
        m = members[0].spec
        params = ",".join(f"{k}={v}" for k, v in sorted(m.scenario.params.items()))
        title = f"{m.model.name} · {m.device} · {m.scenario.name}" + (f"[{params}]" if params else "") + (
            f" · env {m.environment}" if m.environment else "")
        out.append(PrecisionGroup(title=title, headers=[col.header for col in cols], rows=rows))
    return out
