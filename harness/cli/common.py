"""What the commands share: the console for messages, the cache option, checks of options several commands
take, and the console for wide tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.core.console import PlainConsole
from harness.core.errors import HarnessInputError

err_console = PlainConsole(stderr=True)

CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", envvar="HARNESS_CACHE_DIR", show_default=False,
                                               help="built models and IR cache [default: ~/.cache/ov-genai-harness]")]


def write_out(out: Path, text: str) -> None:
    """An `--out` file, written whole through the one run-file writer: a symbolic link at the name is refused,
    not written through (it could point anywhere, a run directory's files included)."""
    from harness.records.run_files import write_whole

    write_whole(out.parent, out.name, text)


def wide_console() -> Console:
    """Standard output at least 160 columns wide: run ids and cell keys are long, and a pipe or CI log is not
    80 columns wide."""
    console = PlainConsole()
    console.width = max(console.width, 160)
    return console


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:  # nan fails this too
        raise HarnessInputError("command line", "--alpha", alpha, "a significance level is between 0 and 1")


def check_rounds(min_rounds: int, max_rounds: int) -> None:
    if max_rounds < min_rounds:
        raise HarnessInputError("command line", "--max-rounds", max_rounds, f"is below --min-rounds ({min_rounds})")


def check_metrics(tags: Iterable[str]) -> None:
    from harness.core.metrics import METRICS

    for m in tags:
        if m not in METRICS:
            raise HarnessInputError("command line", "--metric", m, f"unknown metric; known: {', '.join(METRICS)}")


def check_format(format: str, choices: Sequence[str]) -> None:
    if format not in choices:
        raise HarnessInputError("command line", "--format", format, f"choose from {', '.join(choices)}")
