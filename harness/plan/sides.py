"""Sides: what an A/B side, a bisect candidate or a suite's reference side changes on top of the suite, read from
items such as `env=r2026_3` or `properties.KV_CACHE_PRECISION=u8`, checked, and applied to a cell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessInputError
from harness.core.schema import DEFAULT_RUNTIME, RUNTIMES, CellSpec, PropertyValue, SideSpec
from harness.plan.devices import validate_device_string

if TYPE_CHECKING:
    from harness.plan.environments import EnvironmentSpec

AXES = ("env", "model", "device", "runtime")
ITEM_FORMS = "env=NAME, model=DIR, device=NAME, runtime=NAME, properties.NAME=VALUE or params.NAME=VALUE"
MAPS = ("properties", "params")  # items NAME.KEY=VALUE: OpenVINO properties, scenario parameters


class BadSideItem(ValueError):
    """One item of a side that cannot be read; `item` is the item as given."""

    def __init__(self, item: str, message: str):
        super().__init__(message)
        self.item = item
        self.message = message


def side_item(item: str) -> tuple[str, str]:
    """An item split into (axis or properties.NAME, value); BadSideItem when it is neither."""
    key, sep, value = item.partition("=")
    if not sep or not value:
        raise BadSideItem(item, f"expected {ITEM_FORMS}")
    mapped, dot, name = key.partition(".")
    if key not in AXES and not (mapped in MAPS and dot and name):
        raise BadSideItem(item, f"unknown axis {key!r}; use env, model, device, runtime, properties.NAME or "
                          "params.NAME")
    if key == "runtime" and value not in RUNTIMES:
        raise BadSideItem(item, f"unknown runtime; known: {', '.join(RUNTIMES)}")
    if key == "device":
        try:
            validate_device_string(value)
        except ValueError as e:
            raise BadSideItem(item, str(e)) from None
    return key, value


def side_of(items: Sequence[str]) -> SideSpec:
    """The side the items describe; BadSideItem for the first that cannot be read or repeats an axis."""
    side = SideSpec()
    for item in items:
        key, value = side_item(item)
        if key in AXES:
            if getattr(side, key) is not None:
                raise BadSideItem(item, f"{key} is given twice")
            setattr(side, key, value)
        else:
            mapped, _, name = key.partition(".")
            getattr(side, mapped)[name] = parse_value(value)
    return side


def parse_side(option: str, items: list[str]) -> SideSpec:
    """`--base env=r263 --base properties.KV_CACHE_PRECISION=u8` and the like."""
    try:
        return side_of(items)
    except BadSideItem as e:
        raise HarnessInputError("command line", option, e.item, e.message) from None


def parse_value(text: str) -> PropertyValue:
    """A side item's value: a JSON number, boolean or string, else the text itself."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or nested without end): the text itself
        return text
    return value if isinstance(value, str | int | float | bool) else text


def refused_runtime(runtime: str | None, precision: str, kind: str) -> str | None:
    """Why the runtime cannot run a cell of this precision and kind (None when it can): a peer runtime runs the
    GGUF file as it is, for the kinds whose registry entry names it."""
    from harness.kinds import kind_spec

    if runtime in (None, DEFAULT_RUNTIME):
        return None
    if precision != "gguf":
        return f"runtime {runtime} runs GGUF files (precision gguf), not precision {precision}"
    if not kind_spec(kind).runs_on(runtime):
        return f"a {kind} cell has no {runtime} backend"
    return None


def runtime_refusal(cell: CellSpec, side: SideSpec) -> str | None:
    """Why the side cannot run the cell: its runtime, or scenario parameters the cell's kind does not take (None when
    it can)."""
    return refused_runtime(side.runtime, cell.precision, cell.scenario.kind) or params_refusal(cell, side)


def apply_side(cell: CellSpec, side: SideSpec) -> CellSpec:
    """The cell as one side runs it; the key stays the suite's so both sides' results line up."""
    update: dict[str, Any] = {}
    if side.env:
        update["environment"] = side.env
    if side.model:
        update["model"] = cell.model.model_copy(update={"source": str(Path(side.model).resolve())})
    if side.device:
        update["device"] = side.device
    if side.runtime:
        update["runtime"] = side.runtime
    if side.properties:
        update["properties"] = {**cell.properties, **side.properties}
    if side.params:
        update["scenario"] = cell.scenario.model_copy(update={"params": {**cell.scenario.params, **side.params}})
    return cell.model_copy(update=update)


def params_refusal(cell: CellSpec, side: SideSpec) -> str | None:
    """Why the side's scenario parameters do not fit the cell's kind (None when they do, or it sets none)."""
    from pydantic import ValidationError

    from harness.kinds import kind_spec

    if not side.params:
        return None
    kind = kind_spec(cell.scenario.kind)
    try:
        kind.params.model_validate({**cell.scenario.params, **side.params}, strict=False)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"a {cell.scenario.kind} cell: params.{where}: {first['msg']}"
    return None


def validate_side_model(where: str, field: str, side: SideSpec) -> None:
    """One line (exit 2) when a side's model folder is not an IR."""
    from harness.models.ir import validate_ir_dir

    if side.model:
        try:
            validate_ir_dir(Path(side.model))
        except Exception as e:  # noqa: BLE001 - ModelPreparationError: one line
            raise HarnessInputError(where, field, f"model={side.model}", str(e)) from None


def validate_side(where: str, field: str, side: SideSpec, environments: Mapping[str, EnvironmentSpec]) -> None:
    """One line (exit 2) when a side names an undeclared environment, a folder that is not an IR, or a
    malformed device."""
    if side.env and side.env not in environments:
        raise HarnessInputError(where, field, f"env={side.env}", "unknown environment; declare it in the suite's "
                                f"environments or with --env {side.env}=PINS (known: {', '.join(environments) or 'none'})")
    validate_side_model(where, field, side)
    if side.device:
        try:
            validate_device_string(side.device)
        except ValueError as e:
            raise HarnessInputError(where, field, f"device={side.device}", str(e)) from None
