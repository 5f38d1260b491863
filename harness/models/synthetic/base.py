"""What every family of built-in models shares: the builder's contract (`Family`, `Job`, `Built`) and the
marker a built entry carries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from harness.models import cache
from harness.models.training import Quality

MARKER = "harness-synthetic.json"


@dataclass(frozen=True)
class Built:
    num_parameters: int
    quality: Quality | None = None  # trained models and their drafts


@dataclass(frozen=True)
class Job:
    """One build of a built-in model, beside its spec."""

    name: str
    out: Path
    deps: dict[str, Path]  # the built models it is made from, by the roles `Family.depends_on` gives
    checkpoint: Path  # where training keeps its checkpoint (`train_checkpoint`)
    log: Callable[[str], None]


def _no_dependencies(_spec: object) -> dict[str, str]:
    return {}


S = TypeVar("S")


@dataclass(frozen=True)
class Family(Generic[S]):
    """How the models of one spec type are built; `registry.FAMILIES` holds one per type."""

    spec: type[S]
    build: Callable[[S, Job], Built]
    # the built-in models a model is made from, by role: built first, and part of its cache key
    depends_on: Callable[[S], dict[str, str]] = _no_dependencies
    extra_libs: tuple[str, ...] = ()  # libraries beyond BUILD_LIBS that the build runs (their versions key it)


def built_quality(entry: Path) -> Quality | None:
    """The held-out quality recorded when a trained model was built (None for random-weight models)."""
    found = (cache.read_json(entry / MARKER) or {}).get("quality")
    return Quality(**found) if isinstance(found, dict) else None
