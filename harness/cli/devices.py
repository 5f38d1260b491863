"""`harness devices`: the OpenVINO devices of this machine."""

from __future__ import annotations

from harness.core.console import PlainConsole


def devices() -> None:
    """List OpenVINO devices and their key properties."""
    from rich.table import Table

    from harness.plan.devices import list_devices

    table = Table("device", "full name", "properties")
    for d in list_devices():
        table.add_row(d.name, d.full_name or "?", "\n".join(f"{k}: {v}" for k, v in d.properties.items()))
    PlainConsole().print(table)
