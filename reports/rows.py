"""Flat per-cell rows shared by the renderers: one place that picks what a report shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.metrics import InputTokens, OutputTokens
from harness.core.schema import CellResult, Summary
from harness.kinds import Column


def column_text(col: Column, summaries: dict[str, Summary]) -> str:
    """A column's figure for one cell: median ± sd ("spread") or one Summary field."""
    s = summaries.get(col.metric)
    if col.stat == "spread":
        return fmt_spread(s, col.digits)
    return "—" if s is None else fmt_value(getattr(s, col.stat), col.digits)


def by_kind(cells: list[CellResult]) -> dict[str, list[CellResult]]:
    """Cells grouped by scenario kind, in order of first appearance."""
    out: dict[str, list[CellResult]] = {}
    for c in cells:
        out.setdefault(c.spec.scenario.kind, []).append(c)
    return out


@dataclass
class CellRow:
    key: str
    model: str
    precision: str
    device: str
    scenario: str
    params: str
    status: str
    error: str | None
    input_tokens: float | None
    output_tokens: float | None
    summaries: dict[str, Summary]
    checks: dict[str, str] = field(default_factory=dict)


def _params(r: CellResult) -> str:
    spec = r.spec
    parts = [f"{k}={v}" for k, v in sorted(spec.scenario.params.items())]
    parts += [f"{k}={v}" for k, v in sorted(spec.properties.items())]
    g = spec.generation
    if g.mode != "greedy":
        parts.append(f"mode={g.mode}")
    if spec.environment:
        parts.append(f"env={spec.environment}")
    if spec.host:
        parts.append(f"host={spec.host}")
    return " ".join(parts)


def cell_row(r: CellResult) -> CellRow:
    s = r.summaries
    return CellRow(
        key=r.key, model=r.spec.model.name, precision=r.spec.precision_label(), device=r.spec.device,
        scenario=r.spec.scenario.name, params=_params(r), status=r.status, error=r.error,
        input_tokens=s[InputTokens.tag].median if InputTokens.tag in s else None,
        output_tokens=s[OutputTokens.tag].median if OutputTokens.tag in s else None,
        summaries=s, checks={c.name: c.status for c in r.checks},
    )


@dataclass(frozen=True)
class ServerRow:
    """What a serving cell's server said about itself, as report text ("—" where it said nothing)."""

    key: str
    endpoint: str
    served_model: str
    server: str
    header: str
    model_versions: str
    tokenizer: str


def server_rows(cells: list[CellResult]) -> list[ServerRow]:
    out = []
    for c in cells:
        if c.server is None:
            continue
        s = c.server
        named = " ".join(x for x in (s.name, s.version) if x)
        out.append(ServerRow(key=c.key, endpoint=s.endpoint, served_model=s.served_model, server=named or "—",
                             header=s.server_header or "—", model_versions=", ".join(s.model_versions) or "—",
                             tokenizer=s.tokenizer))
    return out


def runs_locally(c: CellResult) -> bool:
    """Whether load time, memory and model size can apply: not to a remote server's cell."""
    return not c.spec.remote


def fmt_value(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def fmt_spread(s: Summary | None, digits: int = 1) -> str:
    """'median ± sample sd' (sd omitted for a single value); '—' when not measured."""
    if s is None:
        return "—"
    if s.stdev is None or s.n < 2:
        return fmt_value(s.median, digits)
    return f"{s.median:.{digits}f} ± {s.stdev:.{digits}f}"
