"""Terminal output that prints user text as text: suite, model and cell names, paths and error messages
may hold rich markup (`[/x]`) or terminal control sequences, and neither may act on the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from harness.core.escaping import terminal


class PlainConsole(Console):
    """A rich Console without markup, highlighting or emoji codes, whose strings lose control characters."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("soft_wrap", True)
        super().__init__(markup=False, highlight=False, emoji=False, **kwargs)  # type: ignore[arg-type]

    def render_str(self, text: str, **kwargs: object) -> Text:  # type: ignore[override]
        return super().render_str(terminal(text), **kwargs)  # type: ignore[arg-type]


def styled(style: str, label: str, text: object = "") -> Text:
    """A coloured label followed by user text, e.g. styled("red", "error:", e)."""
    return Text.assemble((label, style), " " if text != "" else "", terminal(text))
