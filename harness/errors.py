"""Errors the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations


class HarnessInputError(Exception):
    """Bad user input: names the file, the field and the offending value."""

    def __init__(self, file: str | None, field: str | None, value: object, message: str):
        self.file = file
        self.field = field
        self.value = value
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        where = ": ".join(parts)
        shown = repr(self.value) if self.value is not None else None
        head = f"{where}: " if where else ""
        tail = f" (got {shown})" if shown is not None else ""
        return f"{head}{self.message}{tail}"


class ModelPreparationError(Exception):
    """A model could not be found, downloaded, exported or verified."""
