"""Chart labels of cell keys, short but unique; shared by the run and the comparison page."""

from __future__ import annotations

from collections.abc import Sequence


def short_labels(keys: Sequence[str], drop: dict[str, set[str]] | None = None,
                 groups: dict[str, str] | None = None) -> dict[str, str]:
    """Cell keys shortened for chart labels: '/'-separated parts every key shares (and each key's
    `drop` parts) left out, '[params]' removed while labels stay unique (within each key's group,
    when `groups` is given); the full keys when they would not be unique."""
    drop, groups = drop or {}, groups or {}
    parts = {k: [p for p in k.split("/") if p not in drop.get(k, set())] for k in keys}
    common = set.intersection(*(set(p) for p in parts.values())) if len(keys) > 1 else set()
    for strip in (True, False):
        labels = {k: " · ".join(p.split("[")[0] if strip else p for p in ps if p not in common) or k.split("/")[-1]
                  for k, ps in parts.items()}
        if len({(groups.get(k), label) for k, label in labels.items()}) == len(labels):
            return labels
    return {k: k for k in keys}
