"""What `harness tune` searches and how it judges a setting: one cell's space (its kind's default knobs, or the
suite's `tune.space`), the objectives (`output_tps`, `ttft_ms p90`) and the SLO (`ttft_ms p90 < 500`), read from
the command line or the suite, each refused in one line naming the field and the value."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from pydantic import BaseModel, Field

from harness.core.schema import CellResult, CellSpec, Gate, PropertyValue, SideSpec
from harness.kinds.base import Knob
from harness.plan.sides import BadSideItem, apply_side, params_refusal, side_item

Stat = Literal["median", "mean", "p90", "p99", "min", "max"]
STATS: tuple[str, ...] = get_args(Stat)
_EXPRESSION = re.compile(r"^\s*([A-Za-z0-9_]+)(?:\s+([a-z0-9]+))?\s*(?:(<=|>=|<|>)\s*(\S+))?\s*$")


@dataclass(frozen=True)
class Objective:
    """A figure to optimise: one statistic of one metric of the tuned cell, in the metric's own direction."""

    metric: str
    stat: Stat = "median"

    @property
    def higher_is_better(self) -> bool:
        from harness.core.metrics import METRICS

        return METRICS[self.metric].higher_is_better

    def label(self) -> str:
        return self.metric if self.stat == "median" else f"{self.metric} {self.stat}"

    def value(self, result: CellResult) -> float | None:
        found = result.summaries.get(self.metric)
        return None if found is None else float(getattr(found, self.stat))


def _parts(text: str, what: str) -> tuple[str, Stat, str | None, float | None]:
    from harness.core.metrics import METRICS

    m = _EXPRESSION.match(text)
    if m is None:
        raise ValueError(f"expected {what}")
    metric, stat, op, limit = m.groups()
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; `harness metrics` lists them")
    if stat is not None and stat not in STATS:
        raise ValueError(f"unknown statistic {stat!r}; use one of {', '.join(STATS)}")
    number = None
    if limit is not None:
        try:
            number = float(limit)
        except ValueError:
            raise ValueError(f"the limit {limit!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"the limit {limit!r} is not a finite number")
    return metric, cast(Stat, stat or "median"), op, number


def objective_of(text: str) -> Objective:
    """`output_tps` or `ttft_ms p90`; ValueError saying what is wrong."""
    metric, stat, op, _ = _parts(text, "METRIC [STAT], e.g. output_tps or ttft_ms p90")
    if op is not None:
        raise ValueError("an objective has no limit (a limit is an SLO: --slo)")
    return Objective(metric, stat)


def slo_of(text: str) -> Gate:
    """`ttft_ms p90 < 500` as the gate it is (a limit on one statistic of one metric); ValueError saying what is
    wrong. `<` and `<=` read alike: a measured figure is never exactly on its limit."""
    metric, stat, op, limit = _parts(text, "METRIC [STAT] < LIMIT, e.g. 'ttft_ms p90 < 500'")
    if op is None or limit is None:
        raise ValueError("an SLO needs a limit, e.g. 'ttft_ms p90 < 500'")
    return Gate(metric=metric, stat=stat, max=limit) if op.startswith("<") else Gate(metric=metric, stat=stat, min=limit)


class SloReading(BaseModel):
    """One SLO limit on one measured setting (a tuning trial keeps its own)."""

    slo: str
    value: float | None = Field(description="the measured statistic (None: the cell did not measure it)")
    met: bool
    excess: float = Field(description="how far past its limit, relative to it (<= 0: met): the search's constraint")


def slo_readings(gates: Sequence[Gate], result: CellResult) -> list[SloReading]:
    out = []
    for g in gates:
        s = result.summaries.get(g.metric)
        if s is None:
            out.append(SloReading(slo=g.describe(), value=None, met=False, excess=1.0))
            continue
        v = float(getattr(s, g.stat))
        limit = g.max if g.max is not None else g.min
        assert limit is not None
        excess = (v - limit if g.max is not None else limit - v) / (abs(limit) or 1.0)
        out.append(SloReading(slo=g.describe(), value=v, met=excess <= 0, excess=excess))
    return out


@dataclass(frozen=True)
class Dimension:
    """A knob as one cell searches it: its side-item name and the values tried (None: the suite's own)."""

    name: str
    choices: tuple[PropertyValue | None, ...]


def thread_counts(cpus: int) -> tuple[int, ...]:
    """1, the powers of two below the host's logical CPUs, and their count."""
    out = {1, cpus}
    p = 2
    while p < cpus:
        out.add(p)
        p *= 2
    return tuple(sorted(out))


def knob_dimension(knob: Knob, cpus: int) -> Dimension:
    choices = (None, *thread_counts(cpus)) if knob.upto_cpus else knob.choices
    return Dimension(knob.name, tuple(dict.fromkeys(choices)))


def default_space(cell: CellSpec, cpus: int) -> list[Dimension]:
    """The cell's kind's knobs that apply to its device (a CPU property on a CPU cell only: AUTO and HETERO choose
    their devices themselves) and to where it runs (a remote server's cells: only what the client sets)."""
    from harness.kinds import kind_spec

    return [knob_dimension(k, cpus) for k in kind_spec(cell.scenario.kind).tune_space
            if (not k.devices or cell.device in k.devices) and (k.remote or not cell.remote)
            and (k.applies is None or k.applies(cell))]


def declared_space(cell: CellSpec, space: Mapping[str, Sequence[PropertyValue | None]]) -> list[Dimension]:
    """A space as a suite declares it (`properties.NAME: [values]`, `params.NAME: [values]`), each value checked
    against the cell's kind; ValueError naming the knob and the value."""
    out = []
    for name, values in space.items():
        check_knob(name, values)
        for v in values:
            if v is None:
                continue
            why = params_refusal(cell, setting_side({name: v}))
            if why:
                raise ValueError(f"{name}={v}: {why}")
        out.append(Dimension(name, tuple(dict.fromkeys(values))))
    return out


def check_knob(name: str, values: Sequence[PropertyValue | None]) -> None:
    """ValueError unless the knob is named as a side item that sets a property or a parameter, with values."""
    try:
        key, _ = side_item(f"{name}=x")
    except BadSideItem as e:
        raise ValueError(f"{name}: {e.message}") from None
    if not key.startswith(("properties.", "params.")):
        raise ValueError(f"{name}: a tuned knob is properties.NAME or params.NAME")
    if not values:
        raise ValueError(f"{name}: give the values to try")


def setting_side(setting: Mapping[str, PropertyValue | None]) -> SideSpec:
    """A setting ({knob name: value}, None: the suite's own) as the side that runs it."""
    side = SideSpec()
    for name, value in setting.items():
        if value is None:
            continue
        mapped, _, key = name.partition(".")
        getattr(side, mapped)[key] = value
    return side


def tuned_cell(cell: CellSpec, setting: Mapping[str, PropertyValue | None]) -> CellSpec:
    return apply_side(cell, setting_side(setting))


def space_size(space: Sequence[Dimension]) -> int:
    n = 1
    for d in space:
        n *= len(d.choices)
    return n


def suite_snippet(cell: CellSpec, setting: Mapping[str, PropertyValue | None]) -> str:
    """The suite lines that run the setting: the properties block and the scenario with its parameters."""
    import yaml

    side = setting_side(setting)
    doc: dict[str, object] = {}
    if side.properties:
        doc["properties"] = {**cell.properties, **side.properties}
    if side.params:
        doc["scenarios"] = [{"name": cell.scenario.name, "kind": cell.scenario.kind,
                             **cell.scenario.params, **side.params}]
    if not doc:
        return "# the suite as it is: the defaults were the best measured setting\n"
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
