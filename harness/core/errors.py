"""Errors the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations

# Exit codes every command keeps (README, "Exit codes"): 0 judged and fine, 1 judged and failed or regressed, 2 bad
# input, 3 when nothing could be judged (every cell failed, no cell on both sides, an unreadable history database,
# a full disk), so a gate never passes on an empty comparison; 130 interrupted.
EXIT_NOT_JUDGED = 3


SHOWN_CHARS = 200


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
        if shown is not None and len(shown) > SHOWN_CHARS:  # one line stays one readable line
            shown = f"{shown[:SHOWN_CHARS]}… ({len(shown)} characters)"
        head = f"{where}: " if where else ""
        tail = f" (got {shown})" if shown is not None else ""
        return f"{head}{self.message}{tail}"


class HistoryUnreadable(HarnessInputError):
    """The history database cannot be opened or read (a file that is not a database, a server that cannot be
    reached): nothing recorded there could be judged, so the command exits EXIT_NOT_JUDGED, not 2."""


class ModelPreparationError(Exception):
    """A model could not be found, downloaded, exported or verified."""


class ServerError(Exception):
    """A server under load cannot be reached or started, or refuses or fails every request."""


def error_line(e: BaseException) -> str:
    """One informative line for an exception. OpenVINO messages start with source locations
    ("Exception from src/...", "Check '...' failed at ...") before saying what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    text = (useful or lines or [""])[0]
    return f"{type(e).__name__}: {text[:400]}".rstrip(": ")
