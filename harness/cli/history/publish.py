"""`harness history publish`: the history as a static site (overview, series pages, regressions and their feed,
A/B and bisect records), written again only where it changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import err_console
from harness.cli.history.common import DbOpt, open_store, parse_since
from harness.core.errors import HarnessInputError


def publish(
    out: Annotated[Path, typer.Option("--out", help="the site's folder (created; a later publish updates it)")],
    db: DbOpt = None,
    limit: Annotated[int, typer.Option(min=2, max=1_000_000, help="newest runs per series (as history changes)")] = 500,
    since: Annotated[str | None, typer.Option(help="only runs started at or after this date, e.g. 2026-11-01")] = None,
    base_url: Annotated[str, typer.Option(help="where the site will be served, for the feed's links (default: "
                                          "links relative to the feed)")] = "",
    full: Annotated[bool, typer.Option("--full", help="draw and write every page again")] = False,
) -> None:
    """Publish the history database as a static site in --out: open it as OUT/index.html or serve the folder
    from any static host; regressions.json, changes.json and regressions.atom are for machines."""
    from reports.site.publish import STATE_DIR
    from reports.site.publish import publish as publish_site

    if out.exists() and not out.is_dir():
        raise HarnessInputError("command line", "--out", str(out), "is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / STATE_DIR).is_dir():
        raise HarnessInputError("command line", "--out", str(out), "is a folder that holds other files; publish "
                                "into an empty or new folder (or one an earlier publish wrote)")
    since_iso = parse_since(since) if since is not None else None
    with open_store(db) as store:
        try:
            summary = publish_site(store, out, limit=limit, since=since_iso, base_url=base_url, full=full)
        except OSError as e:  # a full disk or a folder it may not write: the site as far as it got stays
            raise HarnessInputError("command line", "--out", str(out), f"cannot be written: "
                                    f"{e.strerror or e} ({e.filename or out})") from None
    err_console.print(
        f"published {out / 'index.html'}: {summary.series} series ({summary.searched} searched again"
        f"{', all' if summary.full else ''}), {summary.changes} change points, {summary.open_regressions} open "
        f"regressions; wrote {summary.written} files, {summary.unchanged} unchanged, removed {summary.removed}; "
        f"site {summary.bytes / 1e6:.1f} MB (+ {summary.state_bytes / 1e6:.1f} MB in .publish/); {summary.seconds:.1f} s", highlight=False)
