"""The site's machine-readable files: every change point (changes.json), the regressions with their triage and
what followed them (regressions.json), and an Atom feed of the regressions."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from harness.analyze.changes import ChangePoint
from harness.analyze.dashboard import RecordEntry
from harness.core.escaping import html_text
from reports.changes_report import magnitude, pvalue

FEED_ENTRIES = 100


class FollowUps(BaseModel):
    """The A/B comparisons and bisects that came after a change point, on its suite (and cell)."""

    ab: list[str] = Field(default_factory=list, description="A/B record ids")
    bisect: list[str] = Field(default_factory=list, description="bisect record ids")


class Regression(BaseModel):
    change: ChangePoint
    page: str = Field(description="the series' page, relative to the site")
    followed_by: FollowUps


class RegressionsFile(BaseModel):
    """regressions.json: the regression change points, newest first; `open` are those without a triage mark
    of expected or fixed."""

    as_of: str = Field(description="the newest recorded run's start")
    database: str
    open: int
    regressions: list[Regression]


class ChangesFile(BaseModel):
    """changes.json: every change point on the site, as `harness history changes --format json` lists them."""

    as_of: str
    database: str
    series: int
    changes: list[ChangePoint]


def is_open(c: ChangePoint) -> bool:
    return c.triage is None or c.triage.state == "acknowledged"


def follow_ups(c: ChangePoint, abs_: Sequence[RecordEntry], bisects: Sequence[RecordEntry]) -> FollowUps:
    """A/B records of the suite started at or after the first bad run that compared the cell (or named no
    cells), and bisects of the same cell and metric."""
    return FollowUps(
        ab=[a.record_id for a in abs_ if a.suite == c.suite and a.started_at >= c.after_started
            and (not a.cells or c.cell_key in a.cells)],
        bisect=[b.record_id for b in bisects if b.suite == c.suite and b.cell_key == c.cell_key
                and b.metric == c.metric and b.started_at >= c.after_started])


def atom(regressions: Sequence[Regression], as_of: str, base_url: str, title: str) -> str:
    """An Atom 1.0 feed of the newest regressions (entry updated: its first bad run, or its triage). Its text
    goes through the one HTML escaping, which is XML's too (the five entities; control characters, bidirectional
    overrides and lone surrogates shown as U+FFFD)."""
    base = base_url.rstrip("/") + "/" if base_url else ""
    entries = []
    for r in regressions[:FEED_ENTRIES]:
        c = r.change
        updated = _updated(c)
        state = f" [{c.triage.state}]" if c.triage else ""
        summary = (f"{magnitude(c)} (p {pvalue(c.pvalue)}) from run {c.after_run} ({c.after_started[:16]}); "
                   f"stack {c.before_versions} → {c.after_versions}" + (f"; {c.triage.note}" if c.triage else ""))
        entries.append(
            "<entry>"
            f"<id>urn:ov-genai-harness:change:{html_text(c.id)}</id>"
            f"<title>{html_text(c.label() + ' ' + magnitude(c) + state)}</title>"
            f"<updated>{html_text(_rfc3339(updated))}</updated>"
            f"<link rel=\"alternate\" type=\"text/html\" href=\"{html_text(base + r.page)}\"/>"
            f"<summary>{html_text(summary)}</summary>"
            "</entry>")
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>urn:ov-genai-harness:regressions:{html_text(title)}</id>"
            f"<title>{html_text('Regressions: ' + title)}</title>"
            f"<updated>{html_text(_rfc3339(max([as_of, *(_updated(r.change) for r in regressions)])))}</updated>"
            "<author><name>ov-genai-harness</name></author>"
            f"<link rel=\"self\" href=\"{html_text(base + 'regressions.atom')}\"/>"
            f"<link rel=\"alternate\" type=\"text/html\" href=\"{html_text(base + 'regressions.html')}\"/>"
            + "".join(entries) + "</feed>\n")


def _updated(c: ChangePoint) -> str:
    return max(c.after_started, c.triage.marked_at if c.triage else "")


def _rfc3339(iso: str) -> str:
    """Atom wants a zone: the schema's naive times are UTC."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return "1970-01-01T00:00:00Z"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
