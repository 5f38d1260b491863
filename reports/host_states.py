"""The quiet-host check in the reports: cells measured on a busy host, flagged, and the run's host state."""

from __future__ import annotations

from harness.core.escaping import md_code, md_text
from harness.core.host_state import summary
from harness.core.schema import CellResult, RunResults

BUSY_MARK = "†"
BUSY_NOTE = "measured on a busy host: other work ran beside its measuring processes, so its figures are slower and noisier"


def busy_warnings(cell: CellResult) -> list[str]:
    """What made the host busy while the cell measured (empty: quiet, or not recorded)."""
    state = cell.host_state
    return [w.message for w in state.warnings if w.busy] if state is not None else []


def busy_cells(cells: list[CellResult]) -> list[tuple[CellResult, list[str]]]:
    return [(c, found) for c in cells if (found := busy_warnings(c))]


def markdown_lines(res: RunResults) -> list[str]:
    """The run's host state before its first cell with its warnings, and the cells measured on a busy host."""
    before, busy = res.metadata.host_state_before, busy_cells(res.cells)
    if before is None and not busy:
        return []
    lines = ["", "### Host state", ""]
    if before is not None:
        lines.append(f"- before the first cell: {md_text(summary(before))}"
                     + ("" if before.warnings else "; nothing found that makes measurements move"))
        lines += [f"  - warning ({w.kind}): {md_text(w.message)}" for w in before.warnings]
    if busy:
        lines.append(f"- {BUSY_MARK} {BUSY_NOTE}:")
        lines += [f"  - {md_code(c.key)}: {md_text('; '.join(found))}" for c, found in busy]
    return lines
