"""The HTML reports: escaping and content, and a real render in headless Chromium.

The browser is Debian's chromium (scripts/install-test-browser.sh), driven by Playwright (its
maintained client, pointed at that binary: Playwright's own browser downloads are not reachable here). The
browser test loads the page from a file, fails on any console error, uncaught exception or
network request, checks every SVG chart has a size and marks, and saves a full-page screenshot.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from harness.analyze.aggregate import summaries
from harness.analyze.compare import compare_runs
from harness.core.schema import CheckResult, RunResults
from reports import render
from reports.html import Trend, TrendMark, render_comparison_html, render_html, render_trend_svg
from tests.factories import result, run, sample, spec

ROOT = Path(__file__).resolve().parents[3]
HOSTILE = "<script>alert(1)</script>"
HOSTILE_KEY = "m/fp16/CPU/generate/<img src=x onerror=alert(1)>"
SCREENSHOT_COPY = Path("/tmp/html-report.png")
COMPARISON_COPY = Path("/tmp/html-comparison.png")


# ---------------------------------------------------------------- fake runs


def _cell(kind: str, precision: str, scale: float, rng, *, n: int = 6, key: str | None = None, text: str = "abc",
          accept: float | None = None):
    samples = [sample(0, warmup=True, chunks=(90.0, 95.0, 99.0, 104.0), e2e_ms=105.0)]  # slow warm-up: not shown
    for i in range(1, n + 1):
        f = scale * float(np.exp(rng.normal(0, 0.06)))
        chunks = (10.0, 12.0, 14.0, 16.0) if kind == "generate" else (10.0, 13.0, 16.0)  # 4 tokens either way
        s = sample(i, text=text, chunks=tuple(x * f for x in chunks), e2e_ms=17.0 * f,
                   tokens=None if kind == "generate" else (1, 2, 1))
        if accept is not None:
            s.genai["acceptance_rate_pct"] = accept + float(rng.normal(0, 4))
        samples.append(s)
    r = result(spec(kind, precision=precision, key=key), samples)
    r.cell_values["model_memory_mb"] = {"fp16": 300.0, "int8": 180.0, "int4": 120.0}[precision]
    r.cell_values["peak_rss_mb"] = r.cell_values["model_memory_mb"] + 250.0
    r.summaries = summaries(r.samples, r.cell_values)
    return r


def demo_run(run_id: str = "r1", seed: int = 0, slow: float = 1.0) -> RunResults:
    """Three precisions × three scenario kinds, one hostile output and key, a failed and a skipped cell,
    a failed check. `slow` scales the int8 plain-generation cell (for a regression)."""
    rng = np.random.default_rng(seed)
    cells = []
    for precision, speed in (("fp16", 1.0), ("int8", 0.7), ("int4", 0.55)):
        cells.append(_cell("generate", precision, speed * (slow if precision == "int8" else 1.0), rng,
                           text=HOSTILE if precision == "fp16" else "The quick brown fox"))
        cells.append(_cell("speculative", precision, speed * 0.8, rng, accept=62.0))
        cells.append(_cell("prompt_lookup", precision, speed * 0.9, rng))
    cells.append(_cell("generate", "fp16", 1.1, rng, key=HOSTILE_KEY))
    cells[1].checks.append(CheckResult(name="matches_greedy", status="fail", detail="differs at char 3: <b>x</b>"))
    cells.append(result(spec(precision="int4", key="m/int4/GPU/generate/in8-out4"), [], status="skipped",
                        error="device GPU not available"))
    cells.append(result(spec("speculative", precision="int4", key="m/int4/CPU/speculative/in8-out999"), [],
                        status="failed", error="RuntimeError: <boom> & more"))
    res = run(cells)
    res.metadata.run_id = run_id
    return res


TRENDS = {f"m/fp16/CPU/generate/in8-out4 {tag}": Trend(
    [(f"2026-01-{d:02d}", v + (d % 3) * 0.4) for d, v in zip(range(1, 9), np.linspace(base, base * 1.1, 8), strict=True)],
    [TrendMark(5, "+7.0% [+5.0%, +9.0%] regression, p=1e-06", True)])
    for tag, base in (("tpot_ms", 2.0), ("output_tps", 230.0))}

CHART_TITLES = (
    "output tok/s per request (tokens/s) by precision and device",
    "TTFT (ms) by precision and device",
    "TPOT (ms) by precision and device",
    "TTFT distribution (ms)",
    "TPOT distribution (ms)",
    "Memory per cell (MiB)",
    "Speculative acceptance rate (%)",
)


def _svg_titles(html: str) -> list[str]:
    return re.findall(r'<svg class="chart[^"]*"[^>]*><title>([^<]*)</title>', html)


# ---------------------------------------------------------------- unit tests


def test_model_text_keys_and_errors_are_escaped():
    html = render_html(demo_run())
    assert "<script" not in html and "<img" not in html  # the page has no script at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "RuntimeError: &lt;boom&gt; &amp; more" in html
    assert "differs at char 3: &lt;b&gt;x&lt;/b&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_every_chart_is_present_with_a_title():
    html = render_html(demo_run(), trends=TRENDS)
    titles = _svg_titles(html)
    for t in CHART_TITLES:
        assert t in titles, t
    assert sum(t.startswith("m/fp16/CPU/generate/in8-out4 ") for t in titles) == 2  # one trend chart per entry
    assert html.count('<svg class="chart') == len(titles) == len(CHART_TITLES) + 2


def test_summary_tables_and_outputs_mirror_the_markdown_report():
    res = demo_run()
    html = render_html(res)
    for text in ("cpu", "2 logical", "1.0 GiB", "Linux", "openvino"):
        assert text in html
    assert re.search(r'<div class="n">10/12</div><div class="l">cells ok</div>', html)
    assert re.search(r'<div class="n">1</div><div class="l">cells skipped</div>', html)
    assert re.search(r'<div class="n">1</div><div class="l">checks failed</div>', html)
    for title in ("Plain generation", "Speculative decoding", "Prompt lookup decoding"):
        assert f"<h3>{title} " in html
    md = render(res, "md")
    ttft = re.search(r"\| m \| fp16 \| CPU \| generate \| — \| 8/4 \| ([^|]+) \|", md).group(1).strip()
    assert f'<td class="num">{ttft}</td>' in html  # same figures as the Markdown table
    assert "device GPU not available" in html
    assert "The quick brown fox" in html
    assert render(res, "html") == html  # registered renderer


def test_warmup_samples_are_not_in_the_distributions():
    html = render_html(demo_run())
    box = html[html.index("<title>TTFT distribution (ms)</title>"):]
    box = box[:box.index("</svg>")]
    assert "n=6" in box and "n=7" not in box  # 6 measured iterations, the warm-up left out
    assert "90" not in re.findall(r"median ([\d.]+)", box)


def test_long_outputs_are_cut():
    res = run([_cell("generate", "fp16", 1.0, np.random.default_rng(0), text="x" * 5000)])
    html = render_html(res)
    assert "x" * 399 + "…" in html and "x" * 401 not in html


def test_trend_svg_handles_zero_one_and_many_points():
    for pts in ([], [("a", 1.0)], [(f"r{i}", float(i)) for i in range(30)]):
        svg = render_trend_svg(pts, "tpot <trend>", "ms")
        assert svg.startswith('<svg class="chart trend"') and "<title>tpot &lt;trend&gt;</title>" in svg


def test_trend_marks_change_points_between_runs():
    pts = [(f"r{i}", 10.0 if i < 6 else 12.0) for i in range(10)]
    marks = [TrendMark(6, "+20.0% [+19%, +21%] regression, p=<1e-12", True), TrendMark(0, "ignored", False),
             TrendMark(10, "out of range", False)]
    svg = render_trend_svg(pts, "tpot", "ms", marks)
    assert svg.count('class="change regression"') == 1 and "change point before r6: +20.0%" in svg
    assert "ignored" not in svg and "out of range" not in svg
    html = render_html(demo_run(), trends=TRENDS)
    assert html.count("change point before 2026-01-06") == 2


def test_runs_without_measurements_still_render():
    empty = render_html(run([]))
    assert "0/0" in empty and "No cell was measured." in empty and '<svg class="chart' not in empty
    failed = render_html(run([result(spec(), [], status="crashed", error="worker died <signal 9>")]))
    assert "worker died &lt;signal 9&gt;" in failed and "b-crashed" in failed


def test_comparison_page_without_the_runs():
    comp, _, _ = _comparison()
    html = render_comparison_html(comp)
    assert "<h3>base</h3>" not in html and len(_svg_titles(html)) == 2


def _comparison():
    base, cand = demo_run("base", seed=1), demo_run("cand", seed=2, slow=1.4)
    cand.metadata.versions["openvino"] = "y"
    return compare_runs(base, cand), base, cand


def test_comparison_page_highlights_a_regression():
    comp, base, cand = _comparison()
    reg = [(k, m.metric) for k, m in comp.regressions()]
    assert ("m/int8/CPU/generate/in8-out4", "tpot_ms") in reg
    html = render_comparison_html(comp, base, cand)
    row = re.search(r'<tr class="v-regression"><td class="key">m/int8/CPU/generate/in8-out4</td>'
                    r'<td>tpot_ms</td>', html)
    assert row, "regression row not highlighted"
    assert re.search(r'<td class="num v-regression" title="regression: ', html)  # matrix entry
    assert f'<div class="n">{len(reg)}</div><div class="l">regressions</div>' in html
    titles = _svg_titles(html)
    assert titles == ["TPOT: change candidate vs base (%)", "output tok/s per request: change candidate vs base (%)"]
    tpot_chart = html[html.index(titles[0]):html.index(titles[1])]
    assert 'fill="#d62728"' in tpot_chart  # the regressed bar is red
    assert "version openvino" in html and "<script" not in html and "&lt;img src=x" in html


# ---------------------------------------------------------------- headless Chromium through Playwright


def test_browser_catches_console_errors_and_network(browser, tmp_path):
    """The checks below are not vacuous: a page with a console error and a remote image trips both."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><link rel="icon" href="data:,"><img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("boom")</script><svg class="chart"><title>t</title></svg>')
    seen = browser.open(page.as_uri())
    assert any("boom" in p for p in seen["problems"]), seen
    assert "http://127.0.0.1:9/x.png" in seen["requests"]


def _check_page(browser, path: Path, titles) -> dict:
    seen = browser.open(path.as_uri())
    assert seen["problems"] == [], seen["problems"]
    assert seen["requests"] == [], f"the page fetched something: {seen['requests']}"
    assert [c["title"] for c in seen["charts"]] == list(titles)
    for c in seen["charts"]:
        assert c["width"] > 200 and c["height"] > 60 and c["marks"] > 0, c
    return seen


def test_run_report_renders_in_chromium(browser, tmp_path):
    html = render_html(demo_run(), trends=TRENDS)
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    seen = _check_page(browser, page, _svg_titles(html))
    assert len(seen["charts"]) == len(CHART_TITLES) + 2
    width, height = browser.screenshot(page.as_uri(), tmp_path / "report.png")
    assert width == 1360 and height > 1500
    shutil.copyfile(tmp_path / "report.png", SCREENSHOT_COPY)


def test_comparison_page_renders_in_chromium(browser, tmp_path):
    comp, base, cand = _comparison()
    html = render_comparison_html(comp, base, cand)
    page = tmp_path / "comparison.html"
    page.write_text(html, encoding="utf-8")
    _check_page(browser, page, _svg_titles(html))
    width, height = browser.screenshot(page.as_uri(), tmp_path / "comparison.png")
    assert width == 1360 and height > 600
    shutil.copyfile(tmp_path / "comparison.png", COMPARISON_COPY)
