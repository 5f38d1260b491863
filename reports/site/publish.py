"""`harness history publish`: the history database as a static site, written again only where it changed.

The site's folder keeps `.publish/state.json`: what the last publish read (each run's recorded_at, the A/B
sides), every series' view (its change points and sparkline) and a digest of every file written. A publish
searches again only the series a new or re-recorded run touched, draws again only their pages (and those whose
triage marks changed), and writes a file only when its bytes differ; files of series that are gone are removed."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from harness.analyze.changes import ChangePoint, SeriesKey
from harness.analyze.dashboard import (
    PointCache,
    RecordEntry,
    RunEntry,
    SeriesView,
    Snapshot,
    ab_entries,
    bisect_entries,
    facets_of,
    fetch_series,
    merged_points,
    page_of,
    run_entries,
    touched_series,
    touched_since,
    view_of,
)
from harness.analyze.history import HistoryStore
from harness.analyze.history_changes import recorded_rules
from harness.analyze.triage import with_triage
from harness.core.digest import digest
from harness.core.escaping import json_of
from reports.site.feeds import ChangesFile, Regression, RegressionsFile, atom, follow_ups, is_open
from reports.site.pages import (
    SiteContext,
    ab_rows,
    bisect_rows,
    render_bisect,
    render_overview,
    render_record_list,
    render_regressions,
    render_series,
    script_json,
)

STATE_DIR = ".publish"
STATE = f"{STATE_DIR}/state.json"
POINTS = f"{STATE_DIR}/points.npz"
STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parents[1] / "templates" / "site"


class PublishState(BaseModel):
    """What the previous publish read and wrote (see the module docstring)."""

    generator: str
    snapshot: Snapshot
    run_numbers: dict[str, int] = Field(description="a run's index in runs.js: kept for good, so pages not drawn "
                                        "again still point at the right run")
    views: dict[str, SeriesView] = Field(description="by page")
    triage: dict[str, str] = Field(default_factory=dict, description="page -> digest of its change points' marks")
    records: dict[str, str] = Field(default_factory=dict, description="A/B or bisect page -> its record's digest")
    files: dict[str, str] = Field(default_factory=dict, description="file -> sha256 of what was written")


class PublishSummary(BaseModel):
    out: str
    series: int
    searched: int = Field(description="series whose change points were searched again")
    changes: int
    open_regressions: int
    written: int
    unchanged: int
    removed: int
    bytes: int = Field(description="the site's size on disk (what is served: without .publish/)")
    state_bytes: int = Field(description="the size of .publish/, what the next publish reads")
    seconds: float
    full: bool


def _generator_digest(url: str, limit: int, since: str | None, base_url: str) -> str:
    """The database, code, templates and options that shape every page: when any changes, everything is drawn
    again (the folder's state says nothing of another database's runs)."""
    h = hashlib.sha256(f"{url}|{limit}|{since}|{base_url}".encode("utf-8", "surrogatepass"))
    for folder in (Path(__file__).parent, STATIC, TEMPLATES, Path(__file__).parents[1] / "html"):
        for f in sorted(folder.glob("*")):
            if f.is_file() and f.suffix in (".py", ".j2", ".css", ".js"):
                h.update(f.name.encode() + f.read_bytes())
    from harness.analyze import changes, dashboard

    for module in (changes, dashboard):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:20]


def _read_state(out: Path) -> PublishState | None:
    try:
        return PublishState.model_validate_json((out / STATE).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def _report_links(run_list: Sequence[RunEntry], out: Path) -> dict[str, str]:
    """run id -> its report.html relative to the site's root, where its folder is known and holds one."""
    links = {}
    base = out.resolve()
    for r in run_list:
        if r.run_dir and (Path(r.run_dir) / "report.html").is_file():
            links[r.run_id] = Path(os.path.relpath(Path(r.run_dir).resolve() / "report.html", base)).as_posix()
    return links


def _record_page(kind: str, record_id: str) -> str:
    return f"{kind}/{digest(record_id, 12)}.html"


def _triage_digest(changes: Sequence[ChangePoint]) -> str:
    return digest([c.triage.model_dump() if c.triage else None for c in changes])


def _others(view: SeriesView, peers: dict[tuple, list[SeriesView]]) -> list[tuple[str, str]]:
    """The same cell and metric on other hosts, its ratio (or value) series, and its other precisions/devices
    (`peers`: `_peer_index`)."""
    k, out = view.key, []
    for other in peers.get(("cell", k.suite, k.metric, k.cell_key), []):
        o = other.key
        if other.page == view.page:
            continue
        if o.reference == k.reference and o.host != k.host:
            out.append((f"on {o.host or '?'}", other.page))
        elif o.host == k.host and o.reference != k.reference:
            out.append((f"÷ {o.reference}" if o.reference else "the values", other.page))
    for other in peers.get(_sibling_key(view), []) if view.facets else []:
        f = other.facets
        if f is not None and (f.precision, f.device) != (view.facets.precision, view.facets.device):  # type: ignore[union-attr]
            out.append((f"{f.precision} · {f.device}", other.page))
    return sorted(out)[:24]


def _sibling_key(v: SeriesView) -> tuple:
    f = v.facets
    return ("model", v.key.suite, v.key.metric, v.key.host, v.key.reference,
            *((f.model, f.scenario, f.runtime, f.environment) if f else ()))


def _peer_index(views: Iterable[SeriesView]) -> dict[tuple, list[SeriesView]]:
    """Series by cell (for its other hosts and ratio series) and by model and scenario (for its precisions)."""
    index: dict[tuple, list[SeriesView]] = {}
    for v in views:
        index.setdefault(("cell", v.key.suite, v.key.metric, v.key.cell_key), []).append(v)
        if v.facets:
            index.setdefault(_sibling_key(v), []).append(v)
    return index


class _Writer:
    """Writes a file only when its bytes differ from what the last publish wrote (and it is still there)."""

    def __init__(self, out: Path, before: dict[str, str]):
        self.out, self.before = out, before
        self.files: dict[str, str] = {}  # what this publish wrote or kept, by its digest
        self.written = self.unchanged = 0

    def put(self, rel: str, text: str | bytes) -> None:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        digest = hashlib.sha256(data).hexdigest()
        self.files[rel] = digest
        path = self.out / rel
        if self.before.get(rel) == digest and path.is_file():
            self.unchanged += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self.written += 1

    def keep(self, rel: str) -> None:
        """A file this publish did not draw again: it stays as it was."""
        if rel in self.before:
            self.files[rel] = self.before[rel]


def publish(store: HistoryStore, out: Path, *, limit: int = 500, since: str | None = None, base_url: str = "",
            full: bool = False) -> PublishSummary:
    """Publish the history at `store` into the folder `out` (see the module docstring); a second publish into the
    same folder at once gets one clear line."""
    from harness.records.store import lock_run_dir

    t0 = time.perf_counter()
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(out / STATE_DIR)  # noqa: F841 - held until this function returns
    generator = _generator_digest(store.url, limit, since, base_url)
    previous = _read_state(out)  # its file list, to remove what this publish no longer writes
    usable = previous if previous is not None and previous.generator == generator and not full else None
    run_list = run_entries(store)
    abs_, bisects_ = ab_entries(store), bisect_entries(store)
    snapshot = Snapshot(runs={r.run_id: r.recorded_at for r in run_list},
                        ab_runs=sorted({x for a in abs_ for x in (a.base_run or "", a.candidate_run or "") if x}))
    touched = touched_since(usable.snapshot if usable else None, snapshot)
    state = usable if touched is not None else None  # what this publish builds on; None: everything anew
    rebuild = state is None
    run_numbers = dict(state.run_numbers) if state is not None else {}
    for r in run_list:
        run_numbers.setdefault(r.run_id, len(run_numbers))
    by_number: list[RunEntry | None] = [None] * len(run_numbers)
    for r in run_list:
        by_number[run_numbers[r.run_id]] = r
    cache = PointCache() if rebuild else PointCache.load(out / POINTS)
    rules = recorded_rules(store)
    if state is None or touched is None:
        points = fetch_series(store, None, since, limit)
        keys: set[SeriesKey] = set(points)
    else:
        keys = touched_series(store, [*touched.runs, *touched.ab_runs])
        points = merged_points(store, cache, touched, keys, by_number, since, limit)
    run_stack = {r.run_id: r.stack() for r in run_list}
    views: dict[str, SeriesView] = {} if state is None else dict(state.views)
    for key in keys:  # a touched series with no points now (its runs became A/B sides) is gone
        if not points.get(key):
            views.pop(page_of(key), None)
            cache.series.pop(page_of(key), None)
    facets = facets_of(store, [k for k in points if rebuild or page_of(k) not in views], run_list)
    for key, pts in points.items():
        if not pts:
            continue
        old = views.get(page_of(key))
        known = old.facets if old is not None else None
        views[page_of(key)] = view_of(key, pts, rules.of(key), facets.get((key.suite, key.cell_key), known), run_stack)
        cache.put(page_of(key), pts, run_numbers)
    marks = store.triage_marks()
    triaged = {page: with_triage(v.changes, marks) for page, v in views.items()}
    triage_digests = {page: _triage_digest(cs) for page, cs in triaged.items()}
    # the pages to draw: searched again, or their marks changed (their points from the cache)
    redraw = {page_of(k) for k in points if points[k]} | {p for p in views if state is None
                                                          or state.triage.get(p) != triage_digests[p]}
    searched = len(points)
    for page in redraw:
        key = views[page].key
        if key not in points:
            cached = cache.points(page, by_number)
            points[key] = cached if cached is not None else fetch_series(store, {key}, since, limit).get(key, [])

    reports = _report_links(run_list, out)
    as_of = max((r.started_at for r in run_list), default="")
    ctx = SiteContext(database=store.url, limit=limit)
    writer = _Writer(out, {} if state is None else state.files)
    peers = _peer_index(views.values())
    for page in sorted(views):
        if page not in redraw:
            writer.keep(page)
            continue
        view = views[page]
        writer.put(page, render_series(ctx, view, points[view.key], triaged[page], run_numbers, run_stack, reports.get,
                                       _others(view, peers), rules.of(view.key)))
    # by run number; a number whose run is gone keeps its place (an empty entry) until a full publish
    rows = [[r.run_id, r.started_at, r.stack(), reports.get(r.run_id)] if r else ["", "", "", None] for r in by_number]
    writer.put("runs.js", f"window.HARNESS_RUNS={script_json(rows)};\n")
    for name in ("site.css", "site.js"):
        writer.put(name, (STATIC / name).read_bytes())

    ab_pages = {a.record_id: _record_page("ab", a.record_id) for a in abs_}
    bisect_pages = {b.record_id: _record_page("bisect", b.record_id) for b in bisects_}
    records = _write_records(store, ctx, writer, abs_, bisects_, ab_pages, bisect_pages,
                             {} if state is None else state.records)
    all_changes = [c for cs in triaged.values() for c in cs]
    regressions = sorted((Regression(change=c, page=page, followed_by=follow_ups(c, abs_, bisects_))
                          for page, cs in triaged.items() for c in cs if c.direction == "regression"),
                         key=lambda r: (r.change.after_started, r.change.id), reverse=True)
    n_open = sum(is_open(r.change) for r in regressions)
    writer.put("regressions.json", json_of(RegressionsFile(as_of=as_of, database=store.url, open=n_open,
                                                           regressions=regressions), indent=1))
    writer.put("changes.json", json_of(ChangesFile(as_of=as_of, database=store.url, series=len(views), changes=sorted(
        all_changes, key=lambda c: (c.after_started, c.id))), indent=1))
    writer.put("regressions.atom", atom(regressions, as_of, base_url, store.url))
    writer.put("regressions.html", render_regressions(ctx, regressions, reports.get,
                                                      ab_pages, bisect_pages))
    writer.put("index.html", render_overview(ctx, [(v, triaged[page]) for page, v in views.items()], len(run_list),
                                             as_of, len(abs_), len(bisects_)))
    removed = 0
    before = {} if previous is None else previous.files
    for rel in set(before) - set(writer.files):
        path = out / rel
        if path.is_file():
            path.unlink()
            removed += 1
    new_state = PublishState(generator=generator, snapshot=snapshot, run_numbers=run_numbers, views=views,
                             triage=triage_digests, records=records, files=writer.files)
    cache.series = {page: cache.series[page] for page in views if page in cache.series}
    cache.save(out / POINTS)
    tmp = out / (STATE + ".tmp")
    tmp.write_text(new_state.model_dump_json(), encoding="utf-8")
    tmp.replace(out / STATE)
    sizes = [(f.relative_to(out).parts[0] == STATE_DIR, f.stat().st_size) for f in out.rglob("*") if f.is_file()]
    return PublishSummary(out=str(out), series=len(views), searched=searched, changes=len(all_changes),
                          open_regressions=n_open, written=writer.written, unchanged=writer.unchanged, removed=removed,
                          bytes=sum(n for state_file, n in sizes if not state_file),
                          state_bytes=sum(n for state_file, n in sizes if state_file), seconds=round(time.perf_counter() - t0, 2), full=rebuild)


def _write_records(store: HistoryStore, ctx: SiteContext, writer: _Writer, abs_: Sequence[RecordEntry],
                   bisects_: Sequence[RecordEntry], ab_pages: dict[str, str], bisect_pages: dict[str, str],
                   before: dict[str, str]) -> dict[str, str]:
    """A/B and bisect pages (drawn again when their record changed) and their lists."""
    from harness.experiment.ab import ABResult
    from harness.experiment.bisect import BisectRecord
    from reports.ab_report import render_ab_html

    def ab_page(record_id: str) -> str:
        return render_ab_html(ABResult.model_validate_json(store.ab_json(record_id) or ""))

    def bisect_page(record_id: str) -> str:
        return render_bisect(ctx, BisectRecord.model_validate_json(store.bisect_json(record_id) or ""))

    digests = {}
    for entries, pages, section, render in ((abs_, ab_pages, "ab", ab_page), (bisects_, bisect_pages, "bisect",
                                                                              bisect_page)):
        for e in entries:
            page = pages[e.record_id]
            digests[page] = e.digest
            if before.get(page) == e.digest:
                writer.keep(page)
                continue
            try:
                writer.put(page, render(e.record_id))
            except ValidationError as err:  # a record an older or newer harness wrote: named, not drawn
                writer.put(page, render_record_list(ctx, section, f"{e.record_id} could not be read", str(
                    err.errors()[0]["msg"]), [], []))
    writer.put("ab/index.html", render_record_list(
        ctx, "ab", "A/B comparisons", "Interleaved A/B comparisons recorded by `harness ab` (and by bisect steps), "
        "newest first.", ["id", "started", "suite", "base → candidate run", "regressions", "cells"],
        ab_rows(abs_, ab_pages)))
    writer.put("bisect/index.html", render_record_list(
        ctx, "bisect", "Bisects", "Bisects over stack versions recorded by `harness bisect`, newest first.",
        ["id", "started", "suite", "cell", "metric", "status"], bisect_rows(bisects_, bisect_pages)))
    return digests
