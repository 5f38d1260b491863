"""Changes a command makes to a suite as written: `--model`, `--device`, `--precision`, `--env` and the general
`--set KEY=VALUE` (whose environment form is `HARNESS_SET`), applied to the parsed suite (HARNESS_SET first, the
command line's --set last: `run_overrides`) and validated again. A gate whose cells an override removed is dropped and recorded with the override that removed
them (`RunMetadata.dropped_gates`); a gate that selects no cell of the suite as written stays an error."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.errors import HarnessInputError
from harness.core.input_files import parse_yaml
from harness.core.schema import CellSpec, DroppedGate, Gate
from harness.kinds import KINDS
from harness.plan.cells import expand, gate_selects
from harness.plan.environments import EnvironmentSpec
from harness.plan.sides import side_of
from harness.plan.suite_file import format_loc
from harness.plan.suite_model import Suite, SuiteGate

SET_ENV = "HARNESS_SET"
SetOrigin = Literal["--set", "HARNESS_SET"]
_KEY = re.compile(r"[A-Za-z0-9_.*-]+")


class SuiteOverride(BaseModel):
    """One change to the parsed suite; `option` is how it was given (recorded in the run's metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: str  # where an error about it points: "command line", "--set" or "HARNESS_SET"
    option: str  # e.g. "--model /models/x", "HARNESS_SET iterations=1"

    def apply(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class ModelOverride(SuiteOverride):
    """`--model SOURCE`: the suite's models replaced by this one (no draft, so speculative scenarios go)."""

    source: str

    def apply(self, data: dict[str, Any]) -> None:
        # a model name is a path's last part (a file's without its suffix), a package's name, or the source itself,
        # in the characters a suite's model name allows
        name = self.source.removeprefix("pypi:").split("==")[0]
        path = Path(name.rstrip("/"))
        name = (path.stem if path.suffix.lower() == ".gguf" else path.name) or name
        data["models"] = [{"name": re.sub(r"[^A-Za-z0-9_.-]+", "_", name), "source": self.source, "draft": None}]
        data["scenarios"] = [s for s in data["scenarios"] if not _uses_draft(s)] or data["scenarios"]


def _uses_draft(scenario: Any) -> bool:
    kind = KINDS.get(str(scenario.get("kind"))) if isinstance(scenario, dict) else None
    return kind is not None and kind.uses_draft


class AxisOverride(SuiteOverride):
    """`--device` / `--precision`: the suite's axis replaced."""

    axis: Literal["devices", "precisions"]
    values: list[str]

    def apply(self, data: dict[str, Any]) -> None:
        data[self.axis] = list(self.values)


class EnvironmentsOverride(SuiteOverride):
    """`harness run --env NAME=SPEC`: the suite's environments replaced."""

    environments: list[EnvironmentSpec]

    def apply(self, data: dict[str, Any]) -> None:
        names = {e.name for e in self.environments}
        # the reference side's environment is no axis that --env replaces: it stays, unless --env redefines it
        reference = data.get("reference_side")
        env = side_of(reference["side"]).env if reference else None
        kept = [e for e in data.get("environments") or [] if e["name"] == env and env not in names]
        data["environments"] = kept + [e.model_dump() for e in self.environments]
        # the suite's excludes of environments it no longer has would exclude nothing: they go with them
        data["exclude"] = [r for r in data.get("exclude") or [] if not isinstance(r, dict) or "env" not in r
                           or set(r["env"] if isinstance(r["env"], list) else [r["env"]]) & names]


class SetOverride(SuiteOverride):
    """`--set KEY=VALUE`: one suite field set to a YAML value. KEY is a dotted path; in a list of named items
    (models, scenarios, environments) a part picks the item by its name or every item with `*`, in any
    other list by its index."""

    key: str
    value: Any

    def apply(self, data: dict[str, Any]) -> None:
        _assign(data, self.key.split("."), self.value, self)


def parse_set(item: str, origin: SetOrigin) -> SetOverride:
    """`KEY=VALUE` -> a SetOverride (the value read as YAML: 1, true, [8], {a: 1}, synthetic:tiny)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key) or "" in key.split("."):
        raise HarnessInputError(origin, None, item, "expected KEY=VALUE, KEY a suite field such as iterations or a "
                                "dotted path such as generation.max_new_tokens or models.*.source")
    value = parse_yaml(text, origin, f"{origin} value", field=key, value=text[:80])
    shown = "--set " if origin == "--set" else f"{SET_ENV} "
    return SetOverride(origin=origin, option=f"{shown}{key}={text}", key=key, value=value)


def set_overrides(items: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> list[SetOverride]:
    """The `HARNESS_SET` items (shell-quoted, separated by spaces), then the command line's `--set` items."""
    env = (os.environ if environ is None else environ).get(SET_ENV, "")
    try:
        from_env = shlex.split(env)
    except ValueError as e:
        raise HarnessInputError(SET_ENV, None, env, f"cannot split into KEY=VALUE items: {e}") from None
    return [parse_set(i, "HARNESS_SET") for i in from_env] + [parse_set(i, "--set") for i in items]


def run_overrides(sets: Sequence[SetOverride], model: str | None, devices: Sequence[str] | None,
                  precisions: Sequence[str] | None, environments: Sequence[EnvironmentSpec] | None
                  ) -> list[SuiteOverride]:
    """`harness run`'s overrides in the order they apply: HARNESS_SET, --model, --device, --precision, --env, --set
    (the environment's defaults first, the command line's general --set last)."""
    out: list[SuiteOverride] = [s for s in sets if s.origin == "HARNESS_SET"]
    if model:
        out.append(ModelOverride(origin="command line", option=f"--model {model}", source=model))
    if devices:
        out.append(AxisOverride(origin="command line", option=" ".join(f"--device {d}" for d in devices),
                                axis="devices", values=list(devices)))
    if precisions:
        out.append(AxisOverride(origin="command line", option=" ".join(f"--precision {p}" for p in precisions),
                                axis="precisions", values=list(precisions)))
    if environments:
        out.append(EnvironmentsOverride(origin="command line", option=" ".join(
            f"--env {e.name}={e.python or ' '.join(e.packages)}" for e in environments),
            environments=list(environments)))
    out += [s for s in sets if s.origin == "--set"]
    return out


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in items)


def _assign(node: Any, path: list[str], value: Any, o: SetOverride, done: str = "") -> None:
    head, rest = path[0], path[1:]
    here = f"{done}.{head}" if done else head
    if isinstance(node, list):
        if head == "*":
            picked = list(range(len(node)))
        elif _named(node):
            picked = [i for i, x in enumerate(node) if x["name"] == head]
            if not picked:
                names = ", ".join(x["name"] for x in node)
                raise HarnessInputError(o.origin, o.key, o.value, f"{done} has no item named {head!r} (it has: {names})")
        elif head.isdigit() and int(head) < len(node):
            picked = [int(head)]
        else:
            raise HarnessInputError(o.origin, o.key, o.value, f"{done} has {len(node)} items; pick one by its index "
                                    "(0, 1, ...) or every one with *")
        for i in picked:
            if rest:
                _assign(node[i], rest, value, o, here)
            else:
                node[i] = value
        return
    if not isinstance(node, dict):
        raise HarnessInputError(o.origin, o.key, o.value, f"{done} is a single value ({node!r}), it has no field {head!r}")
    if head == "*":
        raise HarnessInputError(o.origin, o.key, o.value, f"* picks list items; {done or 'the suite'} is a mapping")
    if not rest:
        node[head] = value
        return
    if node.get(head) is None:  # a block the suite leaves out (e.g. ab:) starts empty
        node[head] = {}
    _assign(node[head], rest, value, o, here)


def apply_overrides(suite: Suite, overrides: Sequence[SuiteOverride]) -> Suite:
    """The suite with the overrides applied, validated after each one (so an error names the one at fault)."""
    if not overrides:
        return suite
    data = suite.model_dump()
    for o in overrides:
        o.apply(data)
        try:
            Suite.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            value = err.get("input") if err["type"] != "missing" else None
            if isinstance(value, dict | list):
                value = None
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            raise HarnessInputError(o.origin, format_loc(tuple(err["loc"])) or None, value, msg) from None
    return Suite.model_validate(data)


@dataclass(frozen=True)
class OverriddenSuite:
    """A suite after a command's overrides: what runs, and what the overrides took away."""

    suite: Suite  # the overrides applied, the dropped gates removed
    cells: list[CellSpec]
    overrides: list[str] = field(default_factory=list)  # as given, in the order applied
    dropped_gates: list[DroppedGate] = field(default_factory=list)


def _cells_alone(written: Suite, o: SuiteOverride, suite_file: Path) -> list[CellSpec] | None:
    try:
        return expand(apply_overrides(written, [o]), suite_file, require_gate_cells=False)
    except HarnessInputError:
        return None


def _dropped(index: int, gate: SuiteGate, written: Suite, overrides: Sequence[SuiteOverride],
             suite_file: Path) -> DroppedGate:
    """The gate's record, naming the overrides that each alone leave it no cell (else all of them, together)."""
    alone = [o for o in overrides if (cells := _cells_alone(written, o, suite_file)) is not None
             and not gate_selects(gate.where, cells)]
    return DroppedGate(index=index, gate=Gate(metric=gate.metric, stat=gate.stat, min=gate.min, max=gate.max),
                       where=dict(gate.where), overrides=[o.option for o in alone or overrides],
                       together=not alone and len(overrides) > 1)


def expand_overridden(written: Suite, overrides: Sequence[SuiteOverride], suite_file: str | Path) -> OverriddenSuite:
    """Expand the suite as written (a gate selecting none of its cells is an error there), then with the overrides;
    a gate of the suite that the overrides leave without a cell is dropped and described."""
    suite_file = Path(suite_file)
    cells = expand(written, suite_file)
    if not overrides:
        return OverriddenSuite(written, cells)
    suite = apply_overrides(written, overrides)
    cells = expand(suite, suite_file, require_gate_cells=False)
    kept: list[SuiteGate] = []
    dropped: list[DroppedGate] = []
    for i, gate in enumerate(suite.gates):
        if not gate.where or gate_selects(gate.where, cells):
            kept.append(gate)
        elif gate in written.gates:
            dropped.append(_dropped(written.gates.index(gate), gate, written, overrides, suite_file))
        else:  # a gate an override wrote selects nothing: as wrong as one in the file
            where = ", ".join(f"{k}={v}" for k, v in gate.where.items())
            origin = next((o.origin for o in reversed(overrides) if isinstance(o, SetOverride)), "command line")
            raise HarnessInputError(origin, f"gates[{i}].where", where, "selects no cell of the suite")
    return OverriddenSuite(suite.model_copy(update={"gates": kept}), cells, [o.option for o in overrides], dropped)
