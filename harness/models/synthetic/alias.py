"""Another built-in model under a second name."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from harness.models import cache
from harness.models.synthetic.base import MARKER, Built, Family, Job, built_quality


@dataclass(frozen=True)
class AliasSpec:
    """Another built-in model under a second name: `small-draft` is `small-base`, the 7M-parameter model
    `small` was grown from (so the pair agrees more often than real pairs do: see the README)."""

    of: str


def build(spec: AliasSpec, job: Job) -> Built:
    source = job.deps["of"]
    for f in source.iterdir():
        if f.is_file() and f.name != MARKER:
            shutil.copy2(f, job.out / f.name)
    marker = cache.read_json(source / MARKER) or {}
    return Built(int(marker.get("num_parameters", 0)), built_quality(source))


FAMILY = Family(AliasSpec, build, depends_on=lambda spec: {"of": spec.of})
