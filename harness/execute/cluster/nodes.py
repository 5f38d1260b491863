"""The nodes of a Ray cluster as the harness sees them: each describes itself (host, OpenVINO devices, library
versions, model cache) from a probe task pinned to it; a node that cannot is left out with its reason."""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.core.schema import DeviceInfo, HostInfo, NodeIdentity

# what a node's Python must import to prepare and measure cells
REQUIRED_MODULES = ("openvino", "openvino_genai", "openvino_tokenizers", "harness.execute.worker")
PROBE_TIMEOUT_S = 120.0


class NodeProbe(BaseModel):
    """What the probe task reports from a node (crosses from the node to the submitter)."""

    host: HostInfo
    devices: list[DeviceInfo]
    versions: dict[str, str | None]
    harness_commit: str | None
    cache: str
    cache_dir: str
    missing: dict[str, str]  # module -> why it cannot be imported
    notes: list[str] = []  # what the node could not measure about itself (it still runs cells)


@dataclass(frozen=True)
class RayNode:
    """A live node in Ray's own view (before probing)."""

    node_id: str
    address: str
    labels: dict[str, str]
    cpus: float


def probe_node(shared_cache: str | None) -> NodeProbe:
    """Runs on the node: describe it. Never raises for a missing package; says which one instead."""
    from harness.core import host
    from harness.models.cache import default_cache_dir

    missing: dict[str, str] = {}
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure makes the node unable to run cells
            missing[name] = f"{type(e).__name__}: {e}"
    devices: list[DeviceInfo] = []
    if "openvino" not in missing:
        from harness.plan.devices import list_devices

        devices = list_devices()
    cache_dir = Path(shared_cache) if shared_cache else default_cache_dir()
    info = host.host_info()
    notes: list[str] = []
    try:
        from harness.analyze.roofline import host_bandwidth

        # measured once per host fingerprint, then read from the node's cache
        info.memory_bandwidth = host_bandwidth(cache_dir, info)
    except Exception as e:  # noqa: BLE001 - without it the node still runs cells, only the roofline is absent
        notes.append(f"memory bandwidth not measured: {type(e).__name__}: {e}")
    return NodeProbe(host=info, devices=devices, versions=host.package_versions(),
                     harness_commit=host.git_commit(), cache=f"{'shared' if shared_cache else 'node-local'} "
                     f"{cache_dir}", cache_dir=str(cache_dir), missing=missing, notes=notes)


def ray_nodes(ray: Any) -> list[RayNode]:
    """Live nodes from Ray's node table."""
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        labels = {k: str(v) for k, v in (n.get("Labels") or {}).items() if not k.startswith("ray.io/")}
        out.append(RayNode(node_id=n["NodeID"], address=n.get("NodeManagerAddress", "?"), labels=labels,
                           cpus=float(n.get("Resources", {}).get("CPU", 0))))
    return out


def node_names(nodes: list[RayNode], hostnames: dict[str, str]) -> dict[str, str]:
    """node id -> its name: the `host` label, else the hostname; the node id's head is added when two nodes would
    share a name (several nodes on one machine), so names stay unique."""
    base = {n.node_id: n.labels.get("host") or hostnames.get(n.node_id) or n.address for n in nodes}
    count = Counter(base.values())
    return {nid: name if count[name] == 1 else f"{name}-{nid[:6]}" for nid, name in base.items()}


def identity(node: RayNode, name: str, probe: NodeProbe) -> NodeIdentity:
    return NodeIdentity(name=name, node_id=node.node_id, address=node.address, labels=node.labels, cpus=node.cpus,
                        host=probe.host, devices=probe.devices, versions=probe.versions,
                        harness_commit=probe.harness_commit, cache=probe.cache)


def matches(node: RayNode, wanted: dict[str, str]) -> bool:
    """--nodes label=value: every given label has that value on the node."""
    return all(node.labels.get(k) == v for k, v in wanted.items())
