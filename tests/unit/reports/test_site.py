"""`harness history publish` and `harness history triage`: the site against `history changes`, incremental
publishing, triage marks and the gate, hostile names, and the pages driven in headless Chromium."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.synthetic_history import generate
from harness.analyze.history import HistoryStore
from reports.site.publish import publish
from tests.conftest import run_cli
from tests.factories import result, run, sample, spec

HOSTILE = 'evil<script>alert(1)</script>/"q"&\x07/CPU/generate'


def _history(path: Path, runs: int = 48) -> str:
    url = f"sqlite:///{path}"
    generate(url, runs=runs, cells=8, metrics=4, seed=3)
    return url


def _hostile_runs(url: str, n: int = 12) -> None:
    """A suite whose cell key is hostile, with a clear step after run 6."""
    with HistoryStore(url) as store:
        for i in range(n):
            cell = result(spec(key=HOSTILE), [sample(k, e2e_ms=100.0 * (1.3 if i >= 6 else 1.0) + (k % 3))
                                              for k in range(6)])
            res = run([cell])
            res.metadata.run_id = f"hostile-{i:02d}"
            res.metadata.suite_name = "odd <suite>"
            res.metadata.started_at = f"2026-01-{i + 1:02d}T00:00:00+00:00"
            store.record_run(res, None)


def _records(url: str) -> None:
    """An A/B comparison and a bisect that followed the hostile suite's step."""
    from harness.core.schema import SideSpec
    from harness.experiment.ab import ABResult, ABSettings
    from harness.experiment.bisect import BisectRecord, Candidate

    with HistoryStore(url) as store:
        base, cand = store.load("hostile-05"), store.load("hostile-06")
        base.metadata.run_id, cand.metadata.run_id = "ab-base", "ab-cand"
        ab = ABResult(ab_id="ab-<1>", suite_name="odd <suite>", base=SideSpec(), candidate=SideSpec(env="r2"),
                      base_run="ab-base", candidate_run="ab-cand", settings=ABSettings(),
                      started_at="2026-01-20T00:00:00+00:00")
        store.record_ab(ab, base, cand, None)
        store.save_bisect(BisectRecord(
            bisect_id="bisect-1", suite_name="odd <suite>", suite_file="s.yaml", cell_key=HOSTILE, metric="e2e_ms",
            candidates=[Candidate(name=n, side=SideSpec(env=n)) for n in ("r1", "r2")], out_dir="/x",
            started_at="2026-01-21T00:00:00+00:00", status="running"))


def _changes_json(url: str) -> list[dict]:
    proc = run_cli("history", "changes", "--db", url, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["changes"]


def test_every_change_point_of_history_changes_is_on_the_site_with_the_same_figures(tmp_path: Path) -> None:
    url = _history(tmp_path / "h.sqlite")
    _hostile_runs(url)
    proc = run_cli("history", "publish", "--db", url, "--out", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stderr
    expected = _changes_json(url)
    assert len(expected) >= 3  # the generated shifts and the hostile suite's step
    site = json.loads((tmp_path / "site" / "changes.json").read_text())["changes"]
    assert sorted(expected, key=lambda c: c["id"]) == sorted(site, key=lambda c: c["id"])
    regressions = json.loads((tmp_path / "site" / "regressions.json").read_text())
    assert {r["change"]["id"] for r in regressions["regressions"]} == {c["id"] for c in expected
                                                                       if c["direction"] == "regression"}
    for r in regressions["regressions"]:  # each on its series page, with its figures as the table prints them
        page = (tmp_path / "site" / r["page"]).read_text()
        assert f'id="{r["change"]["id"]}"' in page
        assert f'{r["change"]["change"] * 100:+.1f}%' in page
    feed = ET.parse(tmp_path / "site" / "regressions.atom").getroot()
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == len(regressions["regressions"])
    overview = (tmp_path / "site" / "index.html").read_text()
    assert "<script>alert" not in overview and "evil&lt;script&gt;" in overview and "\x07" not in overview
    assert "odd &lt;suite&gt;" in overview


def test_publish_again_after_one_run_redraws_only_that_runs_series(tmp_path: Path) -> None:
    url = _history(tmp_path / "h.sqlite", runs=40)
    out = tmp_path / "site"
    with HistoryStore(url) as store:
        first = publish(store, out)
        again = publish(store, out)
    assert first.full and first.written > first.series
    assert not again.full and again.searched == 0 and again.written == 0  # nothing recorded in between
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    _hostile_runs(other, n=3)
    with HistoryStore(other) as store:  # another database into the same folder: all of it anew, the rest removed
        switched = publish(store, out)
    assert switched.full and switched.removed == first.series  # every page of the other history
    assert len(list((out / "s").glob("*.html"))) == switched.series
    assert {v["key"]["suite"] for v in first_views(out)} == {"odd <suite>"}
    with HistoryStore(url) as store:
        assert publish(store, out).full
    pages = sorted((out / "s").glob("*.html"))
    before = {p: p.stat().st_mtime_ns for p in pages}
    generate(url, runs=40, cells=8, metrics=4, seed=3, first=40, count=1)  # run 40: on lab-a
    with HistoryStore(url) as store:
        after = publish(store, out)
        lab_a = [v for v in first_views(out) if v["key"]["host"] == "lab-a"]
    assert after.searched == 8 * 4 == len(lab_a)
    changed = [p for p in pages if p.stat().st_mtime_ns != before[p]]
    assert len(changed) == len(lab_a)  # the other host's pages untouched
    # + the overview, runs.js, changes.json, regressions.json / .html / .atom where their figures moved
    assert len(lab_a) + 2 <= after.written <= len(lab_a) + 6
    assert after.unchanged > 0 and after.removed == 0
    # the merged points give the figures a search over the database gives
    site = json.loads((out / "changes.json").read_text())["changes"]
    assert sorted(_changes_json(url), key=lambda c: c["id"]) == sorted(site, key=lambda c: c["id"])


def first_views(out: Path) -> list[dict]:
    return list(json.loads((out / ".publish" / "state.json").read_text())["views"].values())


def test_a_re_recorded_run_is_searched_again_and_records_get_pages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    _hostile_runs(url)
    out = tmp_path / "site"
    with HistoryStore(url) as store:
        publish(store, out)
        res = store.load("hostile-11")
        res.cells[0].summaries["e2e_ms"] = res.cells[0].summaries["e2e_ms"].model_copy(update={"median": 999.0})
        run_dir = tmp_path / "results" / "hostile-11"  # its folder is known now, with its report
        run_dir.mkdir(parents=True)
        (run_dir / "report.html").write_text("<!DOCTYPE html><title>run</title>")
        store.record_run(res, str(run_dir))
        again = publish(store, out)
    runs_js = (out / "runs.js").read_text()
    assert '"../results/hostile-11/report.html"' in runs_js and runs_js.count("report.html") == 1
    assert again.searched >= 1 and not again.full
    page = next(v for v in first_views(out) if v["key"]["metric"] == "e2e_ms")
    assert page["last_value"] == 999.0
    _records(url)
    with HistoryStore(url) as store:
        third = publish(store, out)
    assert not third.full and third.written >= 4  # the two record pages and their lists
    regressions = json.loads((out / "regressions.json").read_text())["regressions"]
    e2e = next(r for r in regressions if r["change"]["metric"] == "e2e_ms")
    assert e2e["followed_by"] == {"ab": ["ab-<1>"], "bisect": ["bisect-1"]}
    assert "ab-&lt;1&gt;" in (out / "ab" / "index.html").read_text()
    listed = (out / "regressions.html").read_text()
    assert "A/B ab-&lt;1&gt;" in listed and "bisect bisect-1" in listed
    with HistoryStore(url) as store:  # a record this harness cannot read is named on its page, not a crash
        from sqlalchemy import update

        from harness.analyze.history_tables import bisects
        with store.engine.begin() as conn:
            conn.execute(update(bisects).values(record_json='{"bisect_id": 7}'))
        publish(store, out)
    (bisect_page,) = (out / "bisect").glob("[!i]*.html")
    assert "could not be read" in bisect_page.read_text()


def test_triage_marks_reach_the_site_and_the_gate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    _hostile_runs(url, n=12)
    out = tmp_path / "site"
    gate = run_cli("history", "changes", "--db", url, "--metric", "e2e_ms", "--recent", "6")
    assert gate.returncode == 1, gate.stderr
    (change,) = [c for c in _changes_json(url) if c["metric"] == "e2e_ms"]
    bad = run_cli("history", "triage", change["id"], "--state", "wontfix", "--db", url)
    assert bad.returncode == 2 and "--state" in bad.stderr and bad.stderr.count("\n") == 1
    unknown = run_cli("history", "triage", "cp-0000000000", "--state", "expected", "--db", url)
    assert unknown.returncode == 2 and "cp-0000000000" in unknown.stderr
    with HistoryStore(url) as store:
        publish(store, out)
    mark = run_cli("history", "triage", change["id"], "--state", "expected", "--note", "new <b>allocator</b>",
                   "--author", "qa", "--db", url)
    assert mark.returncode == 0, mark.stderr
    gate = run_cli("history", "changes", "--db", url, "--metric", "e2e_ms", "--recent", "6")
    assert gate.returncode == 0 and "triaged, so not failing the gate" in gate.stderr
    (marked,) = [c for c in _changes_json(url) if c["metric"] == "e2e_ms"]
    assert marked["triage"]["state"] == "expected" and marked["triage"]["note"] == "new <b>allocator</b>"
    with HistoryStore(url) as store:
        again = publish(store, out)
    assert again.written >= 1 and again.searched == 0
    regressions = json.loads((out / "regressions.json").read_text())
    (e2e,) = [r for r in regressions["regressions"] if r["change"]["id"] == change["id"]]
    assert e2e["change"]["triage"]["state"] == "expected"
    assert regressions["open"] == sum(r["change"]["triage"] is None for r in regressions["regressions"])
    page = (out / e2e["page"]).read_text()
    assert "new &lt;b&gt;allocator&lt;/b&gt;" in page and "expected" in page
    assert run_cli("history", "triage", change["id"], "--clear", "--db", url).returncode == 0
    assert run_cli("history", "changes", "--db", url, "--metric", "e2e_ms", "--recent", "6").returncode == 1


def test_triage_follows_a_change_point_that_moved_by_one_run() -> None:
    from harness.analyze.changes import ChangePoint, TriageMark
    from harness.analyze.triage import StoredMark, with_triage

    c = ChangePoint(suite="s", host="h", cell_key="k", metric="tpot_ms", unit="ms", direction="regression",
                    before_run="r5", after_run="r6", before_started="t5", after_started="t6", before_versions="",
                    after_versions="", before_value=1, after_value=1.1, change=0.1, ci_low=0.05, ci_high=0.15,
                    pvalue=1e-4, before_runs=6, after_runs=4, runs_since=4)
    mark = TriageMark(state="acknowledged", note="", marked_at="t", marked_run="r5")
    moved = StoredMark(series=("s", "h", "k", "tpot_ms", ""), before_run="r4", after_run="r5", direction="regression",
                       mark=mark)
    far = StoredMark(series=("s", "h", "k", "tpot_ms", ""), before_run="r2", after_run="r3", direction="regression",
                     mark=mark)
    other_way = StoredMark(series=("s", "h", "k", "tpot_ms", ""), before_run="r4", after_run="r5",
                           direction="improvement", mark=mark)
    other_series = StoredMark(series=("s", "h", "k", "ttft_ms", ""), before_run="r5", after_run="r6",
                              direction="regression", mark=mark)
    assert with_triage([c], [moved])[0].triage == mark
    for stale in (far, other_way, other_series):
        assert with_triage([c], [stale])[0].triage is None


def test_publish_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    _hostile_runs(url, n=3)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.txt").write_text("mine")
    proc = run_cli("history", "publish", "--db", url, "--out", str(tmp_path / "docs"))
    assert proc.returncode == 2 and "--out" in proc.stderr and (tmp_path / "docs" / "keep.txt").exists()


# ---------------------------------------------------------------- in headless Chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    url = _history(folder / "h.sqlite", runs=60)
    _hostile_runs(url)
    _records(url)
    with HistoryStore(url) as store:
        publish(store, folder / "out")
    return folder / "out"


def test_overview_filters_and_keyboard_in_chromium(browser, site: Path) -> None:
    page, problems = browser.page()
    page.goto((site / "index.html").as_uri(), wait_until="load")
    groups = page.locator("section.group")
    assert groups.count() == 3  # two hosts of the nightly suite and the hostile suite
    page.select_option("select[name=host]", "lab-b")
    assert page.locator("section.group:not(.hidden)").count() == 1
    page.select_option("select[name=host]", "")
    page.check("input[name=changed]")
    shown = int(page.locator("#shown").inner_text())
    assert 0 < shown < page.locator("tr[data-cell]").count()
    page.uncheck("input[name=changed]")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.type("int4")
    assert all("int4" in c for c in page.locator("tr[data-cell]:not(.hidden)").evaluate_all(
        "rows => rows.map(r => r.dataset.cell)"))
    page.fill("input[name=q]", "")
    first = page.locator("a.sp").first
    first.focus()
    page.keyboard.press("ArrowRight")
    second = page.evaluate("document.activeElement.getAttribute('href')")
    assert second and second != first.get_attribute("href")
    page.keyboard.press("ArrowDown")
    below = page.evaluate("document.activeElement.getAttribute('href')")
    assert below and below not in (second, first.get_attribute("href"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(below)
    assert problems == [], problems
    page.close()


def test_series_page_with_a_change_point_in_chromium(browser, site: Path, tmp_path: Path) -> None:
    regressions = json.loads((site / "regressions.json").read_text())["regressions"]
    target = regressions[0]
    page, problems = browser.page()
    page.goto((site / target["page"]).as_uri(), wait_until="load")
    assert page.locator("svg.series line.cp.regression").count() >= 1
    assert page.locator(f"tr#{target['change']['id']}").count() == 1
    page.focus("#chart")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    detail = page.locator("#point").inner_text()
    assert "run " in detail and "of" in detail and target["change"]["unit"].split()[0] in detail
    stacks = page.locator("#stack option").all_inner_texts()
    page.select_option("#stack", stacks[-1])
    assert page.locator("#marks circle").count() > 0
    page.screenshot(path=str(tmp_path / "series.png"))
    page.goto((site / "regressions.html").as_uri(), wait_until="load")
    assert page.locator("tr.open").count() == json.loads((site / "regressions.json").read_text())["open"]
    page.goto((site / "ab" / "index.html").as_uri(), wait_until="load")
    assert page.locator("table a").count() == 1
    # the browser's own XML parser on the feed (a file:// .atom has no MIME type to make it parse it as XML)
    parsed = page.evaluate("""text => { const d = new DOMParser().parseFromString(text, 'application/xml');
        return {error: d.getElementsByTagName('parsererror').length, ns: d.documentElement.namespaceURI,
                entries: d.getElementsByTagNameNS('http://www.w3.org/2005/Atom', 'entry').length}; }""",
                           (site / "regressions.atom").read_text())
    assert parsed == {"error": 0, "ns": "http://www.w3.org/2005/Atom", "entries": len(regressions)}
    assert problems == [], problems
    page.close()


def test_overview_of_a_thousand_series_loads_quickly_in_chromium(browser, tmp_path: Path) -> None:
    """Not a timing test (the benchmark times it): the page of ~1000 sparklines must finish loading at all and
    draw every one."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    generate(url, runs=24, cells=50, metrics=20, seed=5)
    with HistoryStore(url) as store:
        publish(store, tmp_path / "site")
    page, problems = browser.page()
    page.goto((tmp_path / "site" / "index.html").as_uri(), wait_until="load")
    assert page.locator("svg.spark").count() == 2 * 50 * 20
    assert problems == []
    page.close()


@pytest.mark.skipif(not os.environ.get("HARNESS_SITE_SHOTS"), reason="screenshots for the closing note on request")
def test_screenshots(browser, site: Path) -> None:
    out = Path(os.environ["HARNESS_SITE_SHOTS"])
    out.mkdir(parents=True, exist_ok=True)
    page, _ = browser.page()
    for name, rel in (("overview", "index.html"), ("regressions", "regressions.html"),
                      ("series", json.loads((site / "regressions.json").read_text())["regressions"][0]["page"])):
        page.goto((site / rel).as_uri(), wait_until="load")
        page.screenshot(path=str(out / f"{name}.png"), full_page=name != "overview")
    page.close()


def test_publish_and_triage_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """A lab's central history: the same site and marks from PostgreSQL."""
    generate(pg_url, runs=30, cells=4, metrics=3, seed=3)
    _hostile_runs(pg_url)
    proc = run_cli("history", "publish", "--db", pg_url, "--out", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    expected = _changes_json(pg_url)
    site = json.loads((tmp_path / "site" / "changes.json").read_text())["changes"]
    assert sorted(expected, key=lambda c: c["id"]) == sorted(site, key=lambda c: c["id"]) and expected
    (change,) = [c for c in expected if c["metric"] == "e2e_ms" and c["suite"] == "odd <suite>"]
    for state in ("acknowledged", "fixed"):  # the second replaces the first
        assert run_cli("history", "triage", change["id"], "--state", state, "--db", pg_url).returncode == 0
    listed = run_cli("history", "triage", "--db", pg_url)
    assert listed.returncode == 0 and "fixed" in listed.stdout and "acknowledged" not in listed.stdout
    again = run_cli("history", "publish", "--db", pg_url, "--out", str(tmp_path / "site"))
    assert again.returncode == 0 and "searched again" in again.stderr
    regressions = json.loads((tmp_path / "site" / "regressions.json").read_text())["regressions"]
    assert [r["change"]["triage"]["state"] for r in regressions if r["change"]["id"] == change["id"]] == ["fixed"]


def test_ratio_series_to_a_reference_side_through_incremental_publishes(tmp_path: Path) -> None:
    """A suite measured beside a reference side: its ratio series, published run by run, as `history changes`
    finds them (the ratio settings: a 5% step three runs after it)."""
    from tests.unit.analyze.test_history import _nightly_with_reference

    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    with HistoryStore(whole) as store:
        _nightly_with_reference(store, n=30, step_at=27)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    out = tmp_path / "site"
    with HistoryStore(whole) as source, HistoryStore(url) as store:
        for i, run_id in enumerate(reversed(source.run_ids_newest_first())):
            store.record_run(source.load(run_id), None)
            if i >= 24:  # the last runs one publish each, as a nightly would
                summary = publish(store, out)
                assert summary.full == (i == 24)
    expected = _changes_json(url)
    assert any(c["reference"] == "r2026.3" and c["direction"] == "regression" for c in expected)
    site = json.loads((out / "changes.json").read_text())["changes"]
    assert sorted(expected, key=lambda c: c["id"]) == sorted(site, key=lambda c: c["id"])
    overview = (out / "index.html").read_text()
    assert "e2e_ms ÷ r2026.3" in overview
    ratio = next(c for c in site if c["reference"] == "r2026.3")
    page = next(v["page"] for v in first_views(out) if v["key"]["reference"] == "r2026.3"
                and v["key"]["metric"] == ratio["metric"])
    assert f'id="{ratio["id"]}"' in (out / page).read_text()


def test_a_second_publish_into_the_same_folder_at_once_is_one_line(tmp_path: Path) -> None:
    from harness.records.store import lock_run_dir

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    _hostile_runs(url, n=3)
    (tmp_path / "site" / ".publish").mkdir(parents=True)
    held = lock_run_dir(tmp_path / "site" / ".publish")
    try:
        proc = run_cli("history", "publish", "--db", url, "--out", str(tmp_path / "site"))
    finally:
        held.close()
    assert proc.returncode == 2 and "in use" in proc.stderr and proc.stderr.count("\n") == 1
    assert run_cli("history", "publish", "--db", url, "--out", str(tmp_path / "site")).returncode == 0
