from __future__ import annotations

import csv
import io
import json

from reports import render
from tests.factories import result, run, sample, spec


def _results():
    ok = result(spec(), [sample(0, warmup=True), sample(1), sample(2, e2e_ms=19.0)])
    bad = result(spec(precision="int4"), [], status="failed", error="RuntimeError: boom")
    return run([ok, bad])


def test_markdown_has_every_parameter_and_failures():
    md = render(_results(), "md")
    row = next(line for line in md.splitlines() if line.startswith("| m | fp16 | CPU | generate |"))
    assert "10.00" in row  # TTFT median
    assert "±" in row
    assert "exact_token_count: pass" in row
    assert "| ok |" in row
    assert "`m/int4/CPU/generate/in8-out4`: **failed** — RuntimeError: boom" in md
    assert "1/2 cells ok" in md


def test_warmup_excluded_from_summaries():
    r = result(spec(), [sample(0, warmup=True, chunks=(100.0, 101.0, 102.0, 103.0), e2e_ms=104),
                        sample(1), sample(2)])
    assert r.summaries["ttft_ms"].n == 2
    assert r.summaries["ttft_ms"].max == 10.0


def test_csv_and_json_rows():
    res = _results()
    rows = list(csv.DictReader(io.StringIO(render(res, "csv"))))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert float(rows[0]["ttft_ms.median"]) == 10.0
    assert rows[1]["ttft_ms.median"] == ""
    data = json.loads(render(res, "json"))
    assert data["cells"][0]["key"] == "m/fp16/CPU/generate/in8-out4"
    assert data["metadata"]["run_id"] == "r1"


def test_a_cells_ratio_to_its_reference_side_is_shown_with_its_interval():
    from harness.analyze.vs_reference import ProcessPairValues, vs_reference
    from harness.core.metrics import TPOT
    from harness.core.schema import ReferenceSide, SideSpec

    res = _results()
    assert "Against the reference side" not in render(res, "md") + render(res, "html")
    ref = ReferenceSide(label="r2026.3 <b>", side=SideSpec(env="r2026_3"))
    res.cells[0].vs_reference = vs_reference(ref, {}, [
        ProcessPairValues(candidate={TPOT.tag: [2.06, 2.04, 2.08]}, reference={TPOT.tag: [2.0, 2.0, 2.0]}),
        ProcessPairValues(candidate={TPOT.tag: [2.02, 2.06, 2.04]}, reference={TPOT.tag: [2.0, 2.0, 2.0]})])
    fig = res.cells[0].vs_reference.figure(TPOT.tag)
    md = render(res, "md")
    row = next(line for line in md.splitlines() if line.startswith("| `m/fp16/CPU/generate/in8-out4` | r2026.3"))
    assert f"{fig.ratio:.3f} [{fig.ci_low:.3f}, {fig.ci_high:.3f}]" in row and "| lower | 6 / 2 | 2.00 |" in row
    assert "<b>" not in row and "env=r2026_3" in row  # outside text through the one escaping layer
    html = render(res, "html")
    assert "Against the reference side" in html and f"{fig.ratio:.3f} [{fig.ci_low:.3f}, {fig.ci_high:.3f}]" in html
    assert "r2026.3 &lt;b&gt;" in html and "r2026.3 <b>" not in html
