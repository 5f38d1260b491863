"""The text sets a quality pass reads and data-aware compression calibrates on, each fixed and named.

- `python-docs` (shipped here, `python-docs.txt`): English prose, the docstrings of 60-odd CPython standard-library
  modules (PSF licence), extracted once and kept as a file so every machine and Python reads the same text.
- `stdlib-heldout`: the built-in models' held-out text, the last 3.5% of every standard-library file they train on
  (training holds out the last 4% by tokens, so no trained-on token is in it). It varies with the Python version;
  the saved fp16 baseline is keyed by the windows' token ids, so another text gets a baseline of its own.
- `stdlib-calibration` (data-aware int4 compression only): the first half of those files, which no quality pass
  reads.
Any other name is a text file's path (the suite makes it absolute, harness/plan)."""

from __future__ import annotations

from pathlib import Path

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_PROMPT_FILE_BYTES, read_text

SHIPPED = {"python-docs": Path(__file__).with_name("python-docs.txt")}
HELDOUT = "stdlib-heldout"
CALIBRATION = "stdlib-calibration"
NAMES = (*SHIPPED, HELDOUT)
HELDOUT_SHARE = 0.035


def _built_in_corpus() -> list[str]:
    from harness.models.synthetic import TOKENIZER
    from harness.models.synthetic.tokenizer import corpus_paths

    return [p.read_text(encoding="utf-8") for p in corpus_paths(TOKENIZER)]


def text_of(name: str) -> str:
    """The text a text set's name (or a file's path) stands for; HarnessInputError when a file is missing or unreadable."""
    if name in SHIPPED:
        return SHIPPED[name].read_text(encoding="utf-8")
    if name == HELDOUT:
        return "\n".join(t[int(len(t) * (1 - HELDOUT_SHARE)):] for t in _built_in_corpus())
    if name == CALIBRATION:
        return "\n".join(t[:len(t) // 2] for t in _built_in_corpus())
    path = Path(name)
    if not path.is_file():
        raise HarnessInputError(name, "text", name, f"no such text file, and not a text set ({', '.join(NAMES)})")
    return read_text(path, "text file", MAX_PROMPT_FILE_BYTES)
