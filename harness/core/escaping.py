"""The one escaping layer: text from outside (suite fields, model and server names, error messages, a remote
server's answers, history values, foreign results) as each output format must carry it. Every renderer
goes through these functions; tests/unit/reports/test_escaping_fuzz.py checks each format's invariants
with hostile strings.

- `valid_text` / `json_of`: any text made encodable (lone surrogates, from a JSON escape or a file name that is
  not UTF-8, would fail every UTF-8 write; pydantic refuses to serialize them).
- `terminal`: no control character reaches a terminal (ESC starts sequences that retitle or rewrite it).
- `md_text` / `md_code`: cannot end or split a table cell, start a link or pass HTML through; `md_block`: a
  fenced block nothing inside can end.
- `csv_cell`: a spreadsheet shows text as text, never runs it as a formula.
- `html_text`: escaped text (jinja's autoescape does the same for templates).
JSON is written by `json_of` (or `json.dumps`), which escapes everything else.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C0 controls other than tab and newline, DEL, C1 controls, and the bidirectional overrides that make a
# terminal or a rendered page show text in another order than it is ("Trojan source")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# a CSV cell keeps its line breaks and tabs (quoted), as the text had them
_CELL_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def valid_text(text: str) -> str:
    """`text` with every lone surrogate shown as U+FFFD."""
    return _SURROGATE.sub(REPLACEMENT, text) if _SURROGATE.search(text) else text


def valid_tree(value: Any) -> Any:
    """`value` with `valid_text` applied to every string inside dicts and lists (keys too)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_tree(k): valid_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_tree(v) for v in value]
    return value


def json_of(model: BaseModel, indent: int | None = None, ascii_only: bool = False) -> str:
    """The model as JSON text; one holding a lone surrogate is written with U+FFFD in its place (checking every
    string up front would make reading large results several times slower). `ascii_only` for JSON meant for a
    terminal or another program's eyes: every character outside printable ASCII escaped, bidirectional
    overrides included."""
    try:
        text = model.model_dump_json(indent=indent, ensure_ascii=ascii_only)
    except (PydanticSerializationError, UnicodeEncodeError):
        clean = type(model).model_validate(valid_tree(model.model_dump()))
        text = clean.model_dump_json(indent=indent, ensure_ascii=ascii_only)
    return text.replace("\x7f", "\\u007f") if ascii_only else text


def ascii_json(value: Any, indent: int | None = None) -> str:
    """Plain data as JSON for a terminal or a report: every character outside printable ASCII escaped."""
    return json.dumps(valid_tree(value), indent=indent, ensure_ascii=True).replace("\x7f", "\\u007f")


def terminal(text: object) -> str:
    """`text` with every control character shown as U+FFFD (newlines and tabs kept)."""
    return _CONTROL.sub(REPLACEMENT, str(text))


# Backslash first in meaning: a trailing backslash would otherwise escape the cell's closing pipe.
_MARKDOWN = str.maketrans({"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " ", "`": "'", "[": "\\[", "]": "\\]",
                           "*": "\\*"})
# In a code span only the table's pipe escape is honoured (GFM splits rows before inline parsing).
_CODE = str.maketrans({"|": "\\|", "\n": " ", "\r": " ", "`": "'"})
# Only a `<` that can open a tag and an `&` that can start an entity are escaped: "<= 100" stays readable.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY_START = re.compile(r"&(?=[A-Za-z#])")


def md_text(text: object) -> str:
    """Text in Markdown, in a table cell or a paragraph: it cannot break a row, start a link or emphasis, or
    pass HTML through."""
    text = _ENTITY_START.sub("&amp;", _CONTROL.sub(REPLACEMENT, str(text)))
    return _TAG_START.sub("&lt;", text).translate(_MARKDOWN)


def md_code(text: object) -> str:
    """Text as a `code span`; text that could open a tag, or holds a backslash, as escaped plain text instead:
    a code span shows entities literally (the tag would stay in the file) and cannot escape a backslash, so one
    before a pipe would let the pipe end the table cell."""
    text = _CONTROL.sub(REPLACEMENT, str(text))
    if "\\" in text or _TAG_START.search(text):
        return md_text(text)
    return "`" + text.translate(_CODE) + "`"


def md_block(text: object, info: str = "") -> str:
    """Text as a fenced code block: fenced by more backticks than any run inside it (nothing inside can end it),
    without control characters. Text that could open a tag is escaped plain text instead, line by line (its
    indentation kept as no-break spaces), as md_code does: a renderer that passes HTML through would run it."""
    text = _CONTROL.sub(REPLACEMENT, str(text)).rstrip("\n")
    if _TAG_START.search(text):
        lines = [md_text(line.lstrip(" ")) for line in text.split("\n")]
        indents = [len(line) - len(line.lstrip(" ")) for line in text.split("\n")]
        return "  \n".join("\u00a0" * n + line for n, line in zip(indents, lines, strict=True))
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: object) -> object:
    """A CSV cell as a spreadsheet must show it: text that would start a formula gets a leading quote (numbers,
    negative ones included, are written as numbers); control characters other than line breaks and tab shown
    as U+FFFD."""
    if value is None:
        return ""
    if isinstance(value, str):
        # a lone CR is a line break to spreadsheets but does not make the csv module quote the cell
        value = _CELL_CONTROL.sub(REPLACEMENT, value.replace("\r\n", "\n").replace("\r", "\n"))
        if value.startswith(FORMULA_START):
            return "'" + value
    return value


def html_text(text: object) -> str:
    """Text in HTML (element content or a quoted attribute). A plain str: workers import this module in
    environments without markupsafe; the report pages wrap it in Markup."""
    return html.escape(_CONTROL.sub(REPLACEMENT, str(text)), quote=True)
