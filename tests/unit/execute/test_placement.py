"""Cluster placement rules on hand-made nodes: a cell runs only where its device is, --each-node pins one copy per
capable node, a cell never goes back to a node it died on, and a node that prepared its model is preferred."""

from __future__ import annotations

from harness.core.schema import DeviceInfo, HostInfo, NodeIdentity
from harness.execute.cluster.nodes import RayNode, matches, node_names
from harness.execute.cluster.placement import can_run, each_node, machine, model_key, no_node_reason, pick
from tests.factories import spec

HOST = HostInfo(hostname="h", os="Linux", python="3.11", cpu_model="cpu", cpu_flags=[], physical_cores=2,
                logical_cores=2, memory_total_mb=1024)


def node(name: str, *devices: str) -> NodeIdentity:
    return NodeIdentity(name=name, node_id=f"id-{name}", address="10.0.0.1", cpus=2, host=HOST,
                        devices=[DeviceInfo(name=d) for d in devices], cache="node-local /c")


def on(device: str, precision: str = "fp16"):
    s = spec(precision=precision)
    return s.model_copy(update={"device": device, "key": s.key.replace("/CPU/", f"/{device}/")})


def test_a_cell_runs_only_where_its_device_is() -> None:
    cpu, gpu, npu = node("a", "CPU"), node("b", "CPU", "GPU.0", "GPU.1"), node("c", "CPU", "NPU")
    assert [n.name for n in (cpu, gpu, npu) if can_run(n, on("GPU"))] == ["b"]
    assert [n.name for n in (cpu, gpu, npu) if can_run(n, on("GPU.1"))] == ["b"]
    assert [n.name for n in (cpu, gpu, npu) if can_run(n, on("NPU"))] == ["c"]
    assert [n.name for n in (cpu, gpu, npu) if can_run(n, on("HETERO:GPU,CPU"))] == ["b"]
    # AUTO runs wherever one of its candidates is; AUTO alone wherever there is any device
    assert [n.name for n in (cpu, gpu, npu) if can_run(n, on("AUTO:NPU,GPU"))] == ["b", "c"]
    assert all(can_run(n, on("AUTO")) for n in (cpu, gpu, npu))
    assert not can_run(node("d"), on("AUTO"))


def test_each_node_pins_a_copy_per_capable_node_and_keeps_what_none_can_run() -> None:
    nodes = [node("a", "CPU"), node("b", "CPU", "GPU")]
    cells = each_node([on("CPU"), on("GPU"), on("NPU")], nodes)
    assert [c.key for c in cells] == ["m/fp16/CPU/generate/in8-out4/host=a", "m/fp16/CPU/generate/in8-out4/host=b",
                                     "m/fp16/GPU/generate/in8-out4/host=b", "m/fp16/NPU/generate/in8-out4"]
    assert [c.host for c in cells] == ["a", "b", "b", None]
    assert cells[0].axes()["host"] == "a"
    # a pinned cell runs on its node only, even where another node has the device
    assert [n.name for n in nodes if can_run(n, cells[1])] == ["b"]
    assert no_node_reason(cells[3], nodes) == "no node in the cluster has device NPU (nodes: a: CPU; b: CPU, GPU)"
    assert no_node_reason(cells[0], [nodes[1]]) == "node a is not in the cluster (nodes: b: CPU, GPU)"


def test_pick_avoids_the_node_a_cell_died_on_and_prefers_a_warm_cache() -> None:
    a, b, c = node("a", "CPU"), node("b", "CPU"), node("c", "GPU")
    cell = on("CPU")
    assert pick(cell, [a, b, c], avoid=set(), warm={}) == a
    assert pick(cell, [a, b, c], avoid={"id-a"}, warm={}) == b
    assert pick(cell, [a, c], avoid={"id-a"}, warm={}) is None
    warm = {"id-b": {model_key(cell)}}
    assert pick(cell, [a, b], avoid=set(), warm=warm) == b
    assert pick(on("CPU", "int8"), [a, b], avoid=set(), warm=warm) == a  # another precision is another model
    assert pick(cell, [a, b], avoid=set(), warm={}, ran={"id-a": 2, "id-b": 1}) == b  # the less used node


def test_nodes_on_one_machine_are_one_machine() -> None:
    a, b = node("a", "CPU"), node("b", "CPU")
    other = b.model_copy(update={"host": HOST.model_copy(update={"hostname": "h2"})})
    assert machine(a) == machine(b) != machine(other)


def test_node_names_are_unique_and_labels_select_nodes() -> None:
    nodes = [RayNode("n1aaaaaa", "10.0.0.1", {"host": "lab-a", "rack": "1"}, 4),
             RayNode("n2bbbbbb", "10.0.0.2", {}, 4), RayNode("n3cccccc", "10.0.0.2", {}, 4)]
    names = node_names(nodes, {"n1aaaaaa": "x", "n2bbbbbb": "box", "n3cccccc": "box"})
    assert names == {"n1aaaaaa": "lab-a", "n2bbbbbb": "box-n2bbbb", "n3cccccc": "box-n3cccc"}
    assert matches(nodes[0], {"rack": "1"}) and not matches(nodes[1], {"rack": "1"}) and matches(nodes[1], {})
