"""Which node may run which cell: a node runs a cell only when it has the cell's device (and, for --each-node
cells, is the cell's host). Pure functions over node identities, so the rules are tested without a cluster."""

from __future__ import annotations

from collections.abc import Iterable

from harness.core.host import fingerprint
from harness.core.schema import CellSpec, NodeIdentity
from harness.plan.cell_keys import pinned_to
from harness.plan.devices import missing_devices


def device_names(node: NodeIdentity) -> list[str]:
    return [d.name for d in node.devices]


def can_run(node: NodeIdentity, cell: CellSpec) -> bool:
    return (cell.host is None or cell.host == node.name) and (cell.remote or not missing_devices(cell.device, device_names(node)))


def capable(cell: CellSpec, nodes: Iterable[NodeIdentity]) -> list[NodeIdentity]:
    return [n for n in nodes if can_run(n, cell)]


def no_node_reason(cell: CellSpec, nodes: list[NodeIdentity]) -> str:
    """The one line a cell gets when no node of the cluster can run it."""
    listing = "; ".join(f"{n.name}: {', '.join(device_names(n)) or 'no device'}" for n in nodes) or "none"
    if cell.host is not None and not any(n.name == cell.host for n in nodes):
        return f"node {cell.host} is not in the cluster (nodes: {listing})"
    return f"no node in the cluster has device {cell.device} (nodes: {listing})"


def each_node(cells: list[CellSpec], nodes: list[NodeIdentity]) -> list[CellSpec]:
    """--each-node: every cell once per node that can run it, the node's name an axis of its key. A cell no
    node can run stays once, unpinned, so the run records why it did not run."""
    out: list[CellSpec] = []
    for cell in cells:
        able = capable(cell, nodes)
        out += [pinned_to(cell, n.name) for n in able] if able else [cell]
    return out


def pick(cell: CellSpec, free: list[NodeIdentity], avoid: set[str], warm: dict[str, set[str]],
         ran: dict[str, int] | None = None) -> NodeIdentity | None:
    """A free node for the cell, not one it already failed on; one that already prepared the cell's model
    (`warm`: node id -> model keys) first, so a node-local cache is reused rather than filled again, then the
    node given the fewest cells (`ran`), so work spreads over equal nodes."""
    able = [n for n in capable(cell, free) if n.node_id not in avoid]
    model, ran = model_key(cell), ran or {}
    able.sort(key=lambda n: (model not in warm.get(n.node_id, set()), ran.get(n.node_id, 0)))
    return able[0] if able else None


def machine(node: NodeIdentity) -> str:
    """The physical machine behind a Ray node: several nodes started on one machine share its cores and memory,
    so they count as one for keeping measurements apart."""
    return fingerprint(node.host)


def model_key(cell: CellSpec) -> str:
    return f"{cell.model.source}|{cell.model.draft}|{cell.model.draft_precision}|{cell.precision}"
