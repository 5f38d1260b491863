"""rich progress for a run: which cell, which iteration, elapsed and remaining."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.core.escaping import terminal
from harness.core.events import Event, Loaded, Log, Phase, SampleEvent
from harness.core.schema import CellResult, CellSpec
from harness.execute.preparation import Preparation, PrepareKey
from harness.execute.worker_process import ProgressSink

_STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red", "timeout": "red", "crashed": "red"}


class RichProgress(ProgressSink):
    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.task = self.progress.add_task("cells", total=total, detail="")

    def __enter__(self) -> RichProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def cell_started(self, index: int, total: int, cell: CellSpec) -> None:
        self.progress.update(self.task, detail=escape(terminal(f"{cell.key} · starting")))

    def cell_placed(self, cell: CellSpec, node: str) -> None:
        # cluster runs: cells run side by side, so each start is a line of its own rather than the bar's detail
        self.console.print(f"started {escape(cell.key)} on node {escape(node)}", highlight=False, markup=True)

    def cell_event(self, cell: CellSpec, event: Event) -> None:
        match event:
            case SampleEvent(sample=s, of=of):
                what = "warm-up" if s.warmup else "measured"
                detail = f"iteration {s.iteration + 1}{f'/{of}' if of else ''} ({what})"
            case Phase(phase=phase):
                detail = {"prepare": "preparing model", "run": "loading pipeline"}.get(phase, phase)
            case Log(message=message):
                detail = message
            case Loaded():
                detail = "pipeline loaded"
            case _:
                return
        self.progress.update(self.task, detail=escape(terminal(f"{cell.key} · {detail}")))

    def preparation_started(self, key: PrepareKey) -> None:
        self.progress.update(self.task, detail=escape(terminal(f"preparing {key.describe()}")))

    def preparation_event(self, key: PrepareKey, event: Event) -> None:
        if isinstance(event, Log):  # training and export progress: the build is what the run waits for
            self.progress.update(self.task, detail=escape(terminal(f"preparing {key.describe()} · {event.message}")))

    def preparation_finished(self, preparation: Preparation) -> None:
        # a line of its own: the time went into no cell, and its outcome applies to every cell needing the model
        what = preparation.key.describe()
        if preparation.status == "ok":
            # what preparing decided (the int4 group size that fits, how it was built) beside what was asked
            made = preparation.prepared()
            notes = f" — {'; '.join(made.notes)}" if made is not None and made.notes else ""
            line = f"[green]prepared[/] {escape(what)} ({preparation.wall_s:.1f} s){escape(notes)}"
        else:
            line = (f"[red]{preparation.status}[/] preparing {escape(what)} ({preparation.wall_s:.1f} s) — "
                    f"{escape(preparation.error or '')}; every cell that needs it fails with this error")
        self.console.print(line, highlight=False, markup=True)

    def cell_finished(self, result: CellResult) -> None:
        style = _STATUS_STYLE.get(result.status, "white")
        tail = f" — {result.error}" if result.error else ""
        self.console.print(f"[{style}]{result.status:>7}[/] {escape(result.key)} ({result.wall_s or 0:.1f} s)"
                           f"{escape(tail)}",
                           highlight=False, markup=True)
        self.progress.advance(self.task)
