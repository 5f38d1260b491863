"""Hostile text in every free-text field, through every renderer: each output format keeps its invariants.

Hypothesis draws hostile strings and spreads them over every text slot (every `str` field that is not a Literal, every string in a
list, every dict key and string value) of a run's results, an A/B record, a bisect record and a change-point
report, and checks the Markdown, CSV, JSON, HTML and terminal output of each renderer:
- Markdown: every table row has its header's cell count (GFM's splitting); no raw tag; no control character.
- CSV: every row has the header's length; no text cell starts a formula; no control character but newline/tab.
- JSON: parses; no raw control character.
- HTML: no tag name or `on*` attribute the plain render does not have; no control character.
- terminal (rich tables through PlainConsole): no control character but newline.
All outputs must encode as UTF-8 (lone surrogates included in the draws).
"""

from __future__ import annotations

import csv
import io
import json
import re
import typing
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from rich.table import Table

from harness.analyze.changes import ChangePoint
from harness.analyze.compare import compare_runs
from harness.core.console import PlainConsole
from harness.core.escaping import FORMULA_START
from harness.core.schema import (
    BandwidthReading,
    BusyProcess,
    ChangeSettings,
    CheckOutputs,
    CheckResult,
    ClusterRecord,
    DeviceInfo,
    DroppedGate,
    EnvironmentRecord,
    Gate,
    HostState,
    HostWarning,
    MemoryBandwidth,
    NodeIdentity,
    RatioFigure,
    ReferenceRatios,
    ReferenceSide,
    RunResults,
    ServerInfo,
)
from harness.experiment.ab import ABCell, ABMetric, ABResult, ABSettings, SideSpec
from harness.experiment.bisect import BisectRecord, Candidate, Evidence, Step
from reports import render
from reports.ab_report import ab_table, render_ab_html, render_ab_md
from reports.bisect_report import render_bisect_md, summary_lines
from reports.changes_report import ChangesReport, changes_table, render_changes_md
from reports.comparison import comparison_table, render_comparison_json, render_comparison_md
from reports.html.comparison_page import render_comparison_html
from reports.verdicts import render_qualification, render_release
from tests.factories import result, run, sample, serving_cell, spec

# ---------------------------------------------------------------- hostile text

NASTY = ["|", "\\", "\\|", "`", "``", "<marquee>x</marquee>", "<img src=x onerror=alert(1)>", "</td></tr>",
         "<!--", "=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\t=1", "\x1b]0;owned\x07", "\x1b[2J", "\r\n", "\n|",
         "\ud800", "\udfff", "\u202e", "\x00", "\x9b", "[x](javascript:alert(1))", "![i](http://t/x.png)", "&lt;",
         "&", "**b**", "# h", "---", "\"'", "{{ x }}", "${x}", "%s%n"]
hostile = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=24),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=3)), min_size=1, max_size=6).map("".join),
    st.sampled_from(NASTY).map(lambda s: s * 300),
)

# ---------------------------------------------------------------- text slots of a record


def _literal(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Literal:
        return True
    return any(_literal(a) for a in typing.get_args(annotation))


Slot = Callable[[str], None]


def _set(obj: BaseModel, name: str) -> Slot:
    return lambda text: obj.__dict__.__setitem__(name, text)  # frozen models too


def _set_item(container: Any, key: Any) -> Slot:
    return lambda text: container.__setitem__(key, text)


def _rename(d: dict, key: str) -> Slot:
    def do(text: str) -> None:
        if text not in d:
            d[text] = d.pop(key)
    return do


def text_slots(obj: Any, skip: frozenset[tuple[str, str]], path: str = "") -> Iterator[tuple[str, Slot]]:
    """Every place in `obj` that holds free text: (its path, a setter)."""
    if isinstance(obj, BaseModel):
        for name, field in type(obj).model_fields.items():
            if (type(obj).__name__, name) in skip or _literal(field.annotation):
                continue
            value = getattr(obj, name)
            if isinstance(value, str):
                yield f"{path}.{name}", _set(obj, name)
            else:
                yield from text_slots(value, skip, f"{path}.{name}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, str):
                yield f"{path}[{i}]", _set_item(obj, i)
            else:
                yield from text_slots(v, skip, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k in list(obj):
            v = obj[k]
            if isinstance(v, str):
                yield f"{path}[{k!r}]", _set_item(obj, k)
            else:
                yield from text_slots(v, skip, f"{path}[{k!r}]")
        for k in [k for k in obj if isinstance(k, str)]:
            yield f"{path} key {k!r}", _rename(obj, k)


# kinds, metric tags and summaries' keys are refused by the loaders when unknown; a key must stay unique
RESULT_SKIP = frozenset({("ScenarioSpec", "kind"), ("CellResult", "summaries"), ("CellResult", "cell_values"),
                         ("ReferenceRatios", "summaries"),
                         ("Sample", "genai"), ("Sample", "values"), ("BatchRecord", "values"),
                         ("CheckOutputs", "f32_ids")})


# ---------------------------------------------------------------- records with every section filled


def _run() -> RunResults:
    ok = spec(key="m/fp16/CPU/generate/in8-out4")
    spec_dec = spec(kind="speculative", precision="int4", key="m/int4/CPU/speculative/in8-out4")
    failed = spec(precision="int8", key="m/int8/CPU/generate/in8-out4")
    cells = [result(ok, [sample(i, warmup=i == 0) for i in range(4)]),
             result(spec_dec, [sample(i, warmup=i == 0) for i in range(4)]),
             result(failed, [], status="failed", error="worker crashed: details"),
             serving_cell(requests=40, rate=10, slow_after_s=2, key="m/fp16/CPU/load", window_s=1)]
    first = cells[0]
    first.checks = [CheckResult(name="matches greedy", status="pass", detail="3/3 equal"),
                    CheckResult(name="gate: tpot_ms median <= 100", status="fail", detail="110 > 100",
                                gate=Gate(metric="tpot_ms", max=100))]
    first.notes = ["a note"]
    first.preparation = ["read model.gguf"]
    first.runtime_versions = {"openvino": "2026.4", "openvino-genai": "2026.4"}
    first.model_dir = "/models/m"
    first.server = ServerInfo(endpoint="http://h:8000", served_model="m", models=["m", "n"], server_header="ovms",
                              name="OpenVINO Model Server", version="2026.0", model_versions=["1 AVAILABLE"],
                              tokenizer="model")
    cells[1].check_outputs = CheckOutputs()
    first.spec.reference_side = ReferenceSide(label="r2026.3", side=SideSpec(env="old", properties={"K": "v"}))
    first.vs_reference = ReferenceRatios(
        label="r2026.3", description="env=old properties.K=v", runtime_versions={"openvino": "1"},
        ratios=[RatioFigure(metric="tpot_ms", ratio=1.02, ci_low=1.01, ci_high=1.03, call_pairs=8, process_pairs=2,
                            higher_is_better=False)], summaries={"tpot_ms": first.summaries["tpot_ms"]})
    first.host_state = HostState(measured_at="2026-01-01T00:00:00", window_s=1.0, own_work=True, other_cpu_pct=40,
                                 busy_processes=[BusyProcess(name="stress", pid=7, cpu_pct=80)], cpu_governor="ondemand",
                                 smt="on", warnings=[HostWarning(kind="other_cpu", message="other processes used 40%")])
    res = run(cells)
    res.metadata.host_state_before = first.host_state.model_copy(update={"own_work": False})
    m = res.metadata
    m.host.cpu_model = "Intel Xeon"
    m.suite_file = "suites/s.yaml"
    m.command = ["harness", "run", "suites/s.yaml"]
    m.overrides = ["--device CPU"]
    reading = BandwidthReading(kind="full", triad_gbs=10, triad_median_gbs=9, copy_gbs=8, seconds=2,
                               measured_at="2026-01-01T00:00:00")
    m.host.memory_bandwidth = MemoryBandwidth(triad_gbs=10, copy_gbs=8, triad_median_gbs=9, array_mb=512, threads=2,
                                              seconds=2, measured_at="2026-01-01T00:00:00", fingerprint="fp",
                                              method="STREAM triad", this_run=reading)
    m.devices = [DeviceInfo(name="CPU", full_name="Intel Xeon", properties={"OPTIMIZATION_CAPABILITIES": "FP32"})]
    m.environments = [EnvironmentRecord(name="today", python="/usr/bin/python3", requested=["openvino==1"],
                                        resolved=["openvino==1"], versions={"openvino": "1"})]
    m.dropped_gates = [DroppedGate(index=0, gate=Gate(metric="tpot_ms", max=1), where={"device": "GPU"},
                                   overrides=["--device CPU"])]
    node = NodeIdentity(name="node-a", node_id="abc", address="10.0.0.1", labels={"host": "a"}, cpus=2,
                        host=m.host.model_copy(), cache="shared /c")
    m.cluster = ClusterRecord(address="ray://h:10001", mode="spread", node_filter={"pool": "x"}, nodes=[node],
                              left_out={"node-b": "no CPU"})
    cells[1].node = node
    res.run_checks = [CheckResult(name="run check", status="pass", detail="ok")]
    return res


def _ab() -> ABResult:
    metric = ABMetric(metric="tpot_ms", unit="ms", higher_is_better=False, rounds=5, base_median=10,
                      candidate_median=11, ratio=1.1, ci_low=1.05, ci_high=1.15, cs_low=1.01, cs_high=1.2,
                      threshold=0.02, verdict="regression", settled_at=5, base_values=[10] * 5,
                      candidate_values=[11] * 5)
    cells = [ABCell(key="m/fp16/CPU/generate", model="m", precision="fp16", device="CPU", scenario="generate",
                    params={"p": "v"}, rounds=5, settled=True, order=["base", "candidate"], metrics=[metric]),
             ABCell(key="m/int4/CPU/generate", model="m", precision="int4", device="CPU", scenario="generate",
                    candidate_status="failed", error="candidate, round 1: crashed")]
    return ABResult(ab_id="ab-1", suite_name="s", suite_file="s.yaml", base=SideSpec(env="good"),
                    candidate=SideSpec(env="bad", model="/m", device="CPU", properties={"K": "v"}), base_run="b",
                    candidate_run="c", settings=ABSettings(metrics=["tpot_ms"]), started_at="2026-01-01",
                    finished_at="2026-01-01", wall_s=60, stop_reason="every cell settled",
                    environments={"good": {"openvino": "1"}, "bad": {"openvino": "2"}}, cells=cells)


def _consistent_bisect(record: BisectRecord) -> None:
    """Steps and the verdict name candidates: they follow the candidates' (hostile) names."""
    for step in record.steps:
        step.__dict__["candidate"] = record.candidates[step.index].name
    record.first_bad = record.candidates[2].name


def _bisect() -> BisectRecord:
    cands = [Candidate(name=f"c{i}", side=SideSpec(env=f"e{i}")) for i in range(3)]
    evidence = Evidence(ab_id="ab", ab_dir="/out/ab", verdict="regression", ratio=1.1, ci_low=1.0, ci_high=1.2,
                        good_median=10, candidate_median=11, unit="ms", rounds=5)
    steps = [Step(step=1, index=1, candidate="c1", mark="good", reason="unchanged", minutes=1, finished_at="t"),
             Step(step=2, index=2, candidate="c2", mark="bad", reason="slower", evidence=evidence, minutes=1,
                  finished_at="t")]
    return BisectRecord(bisect_id="b1", suite_name="s", suite_file="s.yaml", cell_key="k", metric="tpot_ms",
                        candidates=cands, out_dir="/out", started_at="t", status="found", first_bad="c2",
                        steps=steps)


def _changes() -> ChangesReport:
    change = ChangePoint(suite="s", host="h", cell_key="k", metric="tpot_ms", unit="ms", direction="regression",
                         before_run="r1", after_run="r2", before_started="t1", after_started="t2",
                         before_versions="genai 1 / ov 1", after_versions="genai 2 / ov 2", before_value=10,
                         after_value=11, change=0.1, ci_low=0.05, ci_high=0.15, pvalue=0.0001, before_runs=3,
                         after_runs=3, runs_since=3)
    ratio = change.model_copy(update={"reference": "r2026.3", "unit": "× reference"})
    return ChangesReport(database="/h.db", settings=ChangeSettings(), series=2, ratio_series=1, too_short=0, recent=3,
                         recent_regressions=2, changes=[change, ratio])


# ---------------------------------------------------------------- each format's invariants

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _no_control(text: str, where: str) -> None:
    found = _CONTROL.search(text)
    assert found is None, f"{where}: control character {found.group()!r} at {found.start()}"
    text.encode("utf-8")


def gfm_cells(row: str) -> int:
    """Cells of a GFM table row: pipes split it unless backslash-escaped (code spans included)."""
    row = row.strip()
    count, i, content = 1, 0, row[1:-1] if row.endswith("|") and not row.endswith("\\|") else row[1:]
    while i < len(content):
        if content[i] == "\\":
            i += 2
            continue
        if content[i] == "|":
            count += 1
        i += 1
    return count


def check_markdown(text: str, where: str) -> None:
    _no_control(text, where)
    assert not re.search(r"<[A-Za-z!/?]", text), f"{where}: raw tag {re.search(r'<[A-Za-z!/?].{0,20}', text)}"
    header: int | None = None
    for line in text.split("\n"):
        if not line.startswith("|"):
            header = None
            continue
        cells = gfm_cells(line)
        if header is None:
            header = cells
        assert cells == header, f"{where}: row has {cells} cells, header {header}: {line[:200]!r}"


def check_csv(text: str, where: str) -> None:
    text.encode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows[1:]:
        assert len(row) == len(rows[0]), f"{where}: row of {len(row)} cells, header {len(rows[0])}"
        for cell in row:
            assert not _CONTROL.search(re.sub(r"[\r\n\t]", "", cell)), f"{where}: control in {cell!r}"
            if cell.startswith(FORMULA_START):
                float(cell)  # only a number may start with - or +


def check_json(text: str, where: str) -> None:
    _no_control(text, where)
    json.loads(text)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.handlers |= {a for a, _ in attrs if a.startswith("on")}


def _tags(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    return p


def html_checker(plain_render: str) -> Callable[[str, str], None]:
    plain = _tags(plain_render)

    def check(text: str, where: str) -> None:
        _no_control(text, where)
        found = _tags(text)
        assert found.tags <= plain.tags, f"{where}: new tags {found.tags - plain.tags}"
        assert found.handlers <= plain.handlers, f"{where}: new handlers {found.handlers - plain.handlers}"
    return check


def terminal_text(*shown: Table | str) -> str:
    """What the commands print (through PlainConsole, as harness.cli does)."""
    out = io.StringIO()
    console = PlainConsole(file=out, width=160, color_system=None, force_terminal=False)
    for item in shown:
        console.print(item)
    return out.getvalue()


def check_terminal(text: str, where: str) -> None:
    _no_control(text, where)


# ---------------------------------------------------------------- renderers per record

def run_renderers(res: RunResults) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    base = _run()
    comp = compare_runs(base, res)
    return {"report.md": (render(res, "md"), check_markdown), "report.csv": (render(res, "csv"), check_csv),
            "report.json": (render(res, "json"), check_json), "report.html": (render(res, "html"), None),
            "qualification.md": (render_qualification(res), check_markdown),
            "release.md": (render_release(res), check_markdown),
            "compare.md": (render_comparison_md(comp), check_markdown),
            "compare.json": (render_comparison_json(comp), check_json),
            "compare.html": (render_comparison_html(comp, base, res), None),
            "compare terminal": (terminal_text(comparison_table(comp)), check_terminal)}


def history_renderers(res: RunResults) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    """The run recorded twice in a history database, then what `harness history` prints (runs, a trend) and the
    HTML report with its trend charts."""
    import tempfile

    from harness.analyze.history import HistoryStore
    from harness.cli.history import runs
    from harness.cli.history.recording import history_trends
    from reports.html import render_html

    out = io.StringIO()
    console = PlainConsole(file=out, width=160, color_system=None, force_terminal=False)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/history.sqlite"
        second = res.model_copy(deep=True)
        second.metadata.run_id += "-2"
        with HistoryStore(url) as store:
            store.record_run(res, "/runs/1")
            store.record_run(second, "/runs/2")
            shown, runs.wide_console = runs.wide_console, lambda: console  # type: ignore[assignment]
            try:
                runs._print_runs(store, 20, None)
                runs._print_trend(store, res.cells[0].key, "tpot_ms", 50, None)
            finally:
                runs.wide_console = shown
        html = render_html(second, trends=history_trends(second, url))
    return {"history terminal": (out.getvalue(), check_terminal), "report with trends.html": (html, None)}


def ab_renderers(ab: ABResult) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    return {"ab.md": (render_ab_md(ab), check_markdown), "ab.html": (render_ab_html(ab), None),
            "ab terminal": (terminal_text(ab_table(ab)), check_terminal)}


def bisect_renderers(record: BisectRecord) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    return {"bisect.md": (render_bisect_md(record), check_markdown),
            "bisect terminal": (terminal_text(*summary_lines(record)), check_terminal)}


def changes_renderers(report: ChangesReport) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    return {"changes.md": (render_changes_md(report), check_markdown),
            "changes terminal": (terminal_text(changes_table(report)), check_terminal), **site_renderers(report)}


def _check_atom(text: str, where: str) -> None:
    import xml.etree.ElementTree as ET

    _no_control(text, where)
    root = ET.fromstring(text)  # an XML parser refuses what a feed reader would
    assert len(root.findall("{http://www.w3.org/2005/Atom}entry")) == 2, where


def site_renderers(report: ChangesReport) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    """`history publish`'s pages of these change points: the regressions page, a series page, the feed."""
    from harness.analyze.changes import SeriesKey, SeriesPoint
    from harness.analyze.dashboard import SeriesView
    from reports.site.feeds import FollowUps, Regression, atom
    from reports.site.pages import SiteContext, render_regressions, render_series

    ctx = SiteContext(database=report.database, limit=500)
    regressions = [Regression(change=c, page="s/x.html", followed_by=FollowUps()) for c in report.changes]
    c = report.changes[0]
    key = SeriesKey(suite=c.suite, host=c.host, cell_key=c.cell_key, metric=c.metric, reference=c.reference)
    points = [SeriesPoint(f"r{i}", f"2026-01-0{i + 1}", 10.0 + i % 2, c.before_versions, c.after_versions, 9.5, 11.5)
              for i in range(6)]
    view = SeriesView(key=key, page="s/x.html", unit=c.unit, higher_is_better=False, facets=None, runs=6,
                      first_started="2026-01-01", last_started="2026-01-06", last_run="r5", last_value=11.0,
                      last_stack=c.after_versions, spark=[p.median for p in points], changes=[c])
    series = render_series(ctx, view, points, [c], {p.run_id: i for i, p in enumerate(points)}, {}, lambda r: None,
                           [(c.cell_key, "s/y.html")], report.settings)
    return {"regressions.html": (render_regressions(ctx, regressions, lambda r: None, {}, {}), None),
            "series.html": (series, None), "regressions.atom": (atom(regressions, "2026-01-01T00:00:00", "", c.suite), _check_atom)}


def _tune() -> Any:
    from tests.unit.reports.test_tune_report import _result

    return _result(["output_tps", "peak_rss_mb"])


def tune_renderers(result: Any) -> dict[str, tuple[str, Callable[[str, str], None] | None]]:
    from reports.tune_report import render_tune_html, render_tune_md, tune_table

    return {"tune.md": (render_tune_md(result), check_markdown), "tune.html": (render_tune_html(result), None),
            "tune terminal": (terminal_text(tune_table(result)), check_terminal)}


def _as_is(record: Any) -> None:
    pass


def _unique_keys(res: RunResults) -> None:
    """A run's cell keys are unique (the history keys its rows by them): hostile, but each its own."""
    seen: set[str] = set()
    for i, c in enumerate(res.cells):
        if c.key in seen:
            c.key = f"{c.key}#{i}"
        seen.add(c.key)


CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], dict], frozenset, Callable[[Any], None]]] = {
    "results": (_run, run_renderers, RESULT_SKIP, _as_is),
    "history": (_run, history_renderers, RESULT_SKIP | {("RunMetadata", "run_id")}, _unique_keys),
    "ab": (_ab, ab_renderers, frozenset({("ABCell", "base_status"), ("ABCell", "candidate_status"),
                                         ("ABCell", "order"), ("ABMetric", "metric"), ("ABSettings", "metrics"),
                                         ("ABSettings", "thresholds")}), _as_is),
    "bisect": (_bisect, bisect_renderers, frozenset({("Step", "candidate"), ("BisectRecord", "first_bad"),
                                                     ("BisectRecord", "range"), ("Evidence", "verdict")}),
               _consistent_bisect),
    "changes": (_changes, changes_renderers, frozenset({("ChangePoint", "metric")}), _as_is),
    "tune": (_tune, tune_renderers, frozenset({("TuneResult", "objectives"), ("Gate", "metric"),
                                               ("ProofMetric", "metric")}), _as_is),
}


def slot_count(case: str) -> int:
    make, _, skip, _ = CASES[case]
    return len(list(text_slots(make(), skip)))


@pytest.mark.parametrize("case", list(CASES))
def test_every_renderer_keeps_its_format_with_hostile_text(case: str) -> None:
    make, renderers, skip, fix_up = CASES[case]
    plain = renderers(make())
    html_checks = {name: html_checker(text) for name, (text, check) in plain.items() if check is None
                   and name.endswith(".html")}
    n_slots = slot_count(case)
    assert n_slots >= 8, f"{case}: only {n_slots} text slots found"

    # a pool of hostile strings spread over every slot: drawing one string per slot (hundreds) is slow
    @settings(max_examples={"results": 120, "history": 25}.get(case, 60), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile, min_size=1, max_size=16), st.integers(1, 97), st.integers(0, 96))
    def fuzz(pool: list[str], stride: int, offset: int) -> None:
        record = make()
        slots = list(text_slots(record, skip))
        texts = [pool[(i * stride + offset) % len(pool)] for i in range(len(slots))]
        for (_, slot), text in zip(slots, texts, strict=True):
            slot(text)
        fix_up(record)
        given_text = {path: text for (path, _), text in zip(slots, texts, strict=True) if text}
        for name, (text, check) in renderers(record).items():
            try:
                if name in html_checks:
                    html_checks[name](text, name)
                elif check is not None:
                    check(text, name)
                else:
                    _no_control(text, name)
            except AssertionError as e:
                raise AssertionError(f"{e}\nwith {str(given_text)[:3000]}") from None

    fuzz()
