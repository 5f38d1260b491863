"""OpenVINO device discovery, device-string validation and availability of a device string."""

from __future__ import annotations

import re
from typing import Any

from harness.core.schema import DeviceInfo

# Physical device families OpenVINO ships plugins for; virtual devices wrap them.
PHYSICAL = ("CPU", "GPU", "NPU")
VIRTUAL = ("AUTO", "HETERO", "MULTI", "BATCH")
_PHYSICAL_RE = re.compile(r"^(CPU|GPU|NPU)(\.\d+)?$")
KEY_PROPERTIES = (
    "FULL_DEVICE_NAME",
    "OPTIMIZATION_CAPABILITIES",
    "DEVICE_ARCHITECTURE",
    "DEVICE_TYPE",
    "INFERENCE_PRECISION_HINT",
    "PERFORMANCE_HINT",
    "RANGE_FOR_STREAMS",
    "GPU_DEVICE_TOTAL_MEM_SIZE",
    "NPU_DEVICE_TOTAL_MEM_SIZE",
)


def _members(device: str) -> tuple[str, list[str]]:
    """Split 'HETERO:GPU,CPU' into ('HETERO', ['GPU', 'CPU']); 'CPU' into ('CPU', [])."""
    head, _, rest = device.partition(":")
    members = [m.strip() for m in rest.split(",") if m.strip()] if rest else []
    return head, members


def validate_device_string(device: str) -> None:
    """Raise ValueError for a string OpenVINO could never accept (e.g. 'TPU', 'cpu', 'HETERO:')."""
    head, members = _members(device)
    if head in VIRTUAL:
        if head in ("HETERO", "MULTI", "BATCH") and not members:
            raise ValueError(f"{head} needs a device list, e.g. {head}:GPU,CPU; got {device!r}")
        for m in members:
            if not _PHYSICAL_RE.match(m):
                raise ValueError(f"unknown device {m!r} in {device!r}; known: {', '.join(PHYSICAL)}")
        return
    if ":" in device or not _PHYSICAL_RE.match(device):
        raise ValueError(f"unknown device {device!r}; known: {', '.join(PHYSICAL + VIRTUAL)} (e.g. GPU.1, AUTO:GPU,CPU)")


def missing_devices(device: str, available: list[str]) -> list[str]:
    """Physical devices a device string needs that are not available ([] = it can run here).

    AUTO needs at least one of its candidates (any device when none is named);
    HETERO, MULTI and BATCH need every device they list."""
    head, members = _members(device)

    def present(d: str) -> bool:
        return d in available or (d in PHYSICAL and any(a.split(".")[0] == d for a in available))

    if head == "AUTO":
        cands = members or list(available)
        return [] if any(present(m) for m in cands) else (members or ["any device"])
    if head in VIRTUAL:
        return [m for m in members if not present(m)]
    return [] if present(device) else [device]


def _prop_text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(_prop_text(x) for x in v)
    if hasattr(v, "to_string"):  # openvino.Type
        return v.to_string()
    if hasattr(v, "name") and not isinstance(v, str):  # pybind enums
        return str(v.name)
    return str(v)


def list_devices(core: Any | None = None) -> list[DeviceInfo]:
    """Available OpenVINO devices with their key properties."""
    import openvino as ov

    core = core or ov.Core()
    out: list[DeviceInfo] = []
    for name in core.available_devices:
        props: dict[str, str] = {}
        try:
            supported = set(core.get_property(name, "SUPPORTED_PROPERTIES"))
        except Exception:  # noqa: BLE001 - a plugin that cannot list its properties is still a device
            supported = set()
        for p in KEY_PROPERTIES:
            if p in supported:
                try:
                    props[p] = _prop_text(core.get_property(name, p))
                except Exception:  # noqa: BLE001
                    continue
        out.append(DeviceInfo(name=name, full_name=props.pop("FULL_DEVICE_NAME", None), properties=props))
    return out
