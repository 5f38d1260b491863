"""YAML read with bounds: aliases that expand too far and keys given twice are refused before the document is
built (suite files and `--set` values)."""

from __future__ import annotations

from typing import Any

import yaml

# Aliases let a few hundred bytes of YAML stand for billions of values ("billion laughs"): bound what a
# suite may expand to before anything walks it.
MAX_SUITE_NODES = 100_000


class YAMLRefused(ValueError):
    """A document refused before it is built."""


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds once every alias is expanded (each shared node counted once per use)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts as one node (it cannot be expanded)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        total = 1
        for child in children:
            total += _expanded_size(child, memo)
            if total > MAX_SUITE_NODES:
                break
        memo[key] = total
    return memo[key]


def _duplicate_key(node: yaml.Node, seen: set[int]) -> str | None:
    """'line N: key K appears twice' for the first mapping that repeats a key (YAML keeps the last silently)."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in keys:
                    return f"line {k.start_mark.line + 1}: key {k.value!r} appears twice in one mapping"
                keys.add(k.value)
    children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else
                node.value if isinstance(node, yaml.SequenceNode) else [])
    for child in children:
        if found := _duplicate_key(child, seen):
            return found
    return None


def bounded_yaml(raw: bytes) -> Any:
    """The document in `raw` (safe tags only); YAMLRefused if it expands too far or repeats a key."""
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_SUITE_NODES:
            raise YAMLRefused(f"expands to more than {MAX_SUITE_NODES} values once its aliases are resolved "
                                "(an alias bomb?)")
        if duplicate := _duplicate_key(node, set()):
            raise YAMLRefused(duplicate)
        return loader.construct_document(node)
    finally:
        loader.dispose()
