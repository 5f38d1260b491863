"""`harness host`: is this host quiet enough to measure on (after pyperf's `system show`)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.core.console import PlainConsole, styled


def host(
    json_: Annotated[bool, typer.Option("--json", help="print the host state as JSON (the HostState model)")] = False,
    window: Annotated[float, typer.Option(min=0.1, max=60.0, help="seconds other processes' CPU is measured over")
                      ] = 1.0,
) -> None:
    """Show what makes measurements move on this host: other processes' CPU, load, frequency governor and turbo,
    SMT, thermal throttling, memory pressure; and the warnings `harness run` would print. Exit code 0."""
    from harness.core.escaping import json_of
    from harness.core.host_state import describe, read_host_state

    state = read_host_state(window_s=window)
    if json_:
        typer.echo(json_of(state, indent=1, ascii_only=True))
        return
    console = PlainConsole()
    width = max(len(what) for what, _ in describe(state))
    for what, reading in describe(state):
        console.print(f"{what:<{width}}  {reading}")
    for w in state.warnings:
        console.print(styled("yellow", "warning:", f"{w.message} [{w.kind}]"))
    if not state.warnings:
        console.print("nothing found that makes measurements move")
