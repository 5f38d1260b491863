"""The jinja2 environment of the report pages (templates in reports/templates/)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.core.escaping import html_text


def _text(value: object) -> object:
    """Every `{{ }}` value that is text goes through the one HTML escaping (autoescape would keep control
    characters)."""
    return Markup(html_text(value)) if isinstance(value, str) and not isinstance(value, Markup) else value


env = Environment(loader=FileSystemLoader(Path(__file__).parents[1] / "templates"), autoescape=True,
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_text)
