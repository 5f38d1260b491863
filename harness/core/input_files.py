"""Reading a user's data files (prompt sets, traces, recorded payloads): one clear HarnessInputError naming
the file and line for a missing file, bytes that are not UTF-8, or a line that is not a JSON object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError


def read_text(path: Path, what: str) -> str:
    """The file's text; `what` names it in errors ("trace file", "payloads file", ...)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HarnessInputError(str(path), None, None, f"{what} not found") from None
    except IsADirectoryError:
        raise HarnessInputError(str(path), None, None, f"{what} is a directory, not a file") from None
    except OSError as e:
        raise HarnessInputError(str(path), None, None, f"{what} not readable: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise HarnessInputError(str(path), f"line {line}", None, f"not valid UTF-8 (byte {e.start})") from None


def json_objects(path: Path, lines: list[str], expected: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; `expected` says what a line should be when one is not
    a JSON object."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise HarnessInputError(str(path), f"line {n}", line[:80], f"expected {expected}")
        yield n, obj
