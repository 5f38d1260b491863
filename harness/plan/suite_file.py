"""Reading a suite file: a path or a shipped suite's name, parsed and validated with errors that name the key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_SUITE_BYTES, decode, parse_yaml, read_bytes
from harness.plan.suite_model import Suite

# harness/suites links to the checkout's suites/ and is a folder of its own in a wheel (package data)
SUITES_DIR = (Path(__file__).resolve().parents[1] / "suites").resolve()


def format_loc(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the key path a suite spells: scenarios[0].generation."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def load_suite(path: str | Path) -> tuple[Suite, str]:
    """Parse and validate a suite file; returns the suite and the file's sha256."""
    p = Path(path)
    raw = read_bytes(p, "suite file", MAX_SUITE_BYTES)
    data = parse_yaml(decode(raw, str(p), "suite file"), str(p), "suite file")
    if not isinstance(data, dict):
        raise HarnessInputError(str(p), None, type(data).__name__, "a suite must be a YAML mapping")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, dict | list):
            value = _value_at(data, loc)
            value = value if not isinstance(value, dict | list) else None
        more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        raise HarnessInputError(str(p), format_loc(loc) or None, value, msg + more) from None
    return suite, hashlib.sha256(raw).hexdigest()


def resolve_suite_path(name: str | None) -> Path:
    """A suite argument: a path, or the name of a shipped suite ('smoke' -> suites/smoke.yaml)."""
    if name is None:
        return SUITES_DIR / "default.yaml"
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    return SUITES_DIR / f"{name}.yaml"
