"""The quality report section: each quality cell beside the decode cell of the same weights and runtime, lowest KLD
first, the Pareto front of KLD against weight size marked; and the HTML chart of it."""

from __future__ import annotations

from harness.analyze.aggregate import cell_result
from harness.core.events import Done, SampleEvent
from harness.core.schema import CompressionSpec, ScenarioSpec
from reports import render
from reports.html.run_charts import pareto_charts
from reports.quality_table import quality_groups
from tests.factories import run, sample, spec


def _quality(precision: str, kld: float, size: float, runtime: str = "openvino", compression=None):
    s = spec(precision=precision).model_copy(update={
        "scenario": ScenarioSpec(name="quality", kind="quality", params={"context": 64}), "runtime": runtime,
        "compression": compression or CompressionSpec()})
    s.key = f"m/{precision}/CPU/quality/{runtime}/{s.compression.label()}"
    values = {"kld_mean": kld, "kld_se": kld / 100, "ppl": 10 + kld, "ppl_se": 0.3, "top1_agree_pct": 100 - kld,
              "model_size_mb": size}
    return cell_result(s, [Done(cell_values=values)], "ok", None, "t0", "t1", 1.0)


def _decode(precision: str, tpot_ms: float, runtime: str = "openvino", compression=None):
    s = spec(precision=precision).model_copy(update={"runtime": runtime,
                                                     "compression": compression or CompressionSpec()})
    s.key = f"m/{precision}/CPU/generate/{runtime}/{s.compression.label()}"
    samples = [sample(i, chunks=(10.0, 10 + tpot_ms, 10 + 2 * tpot_ms, 10 + 3 * tpot_ms)) for i in range(3)]
    return cell_result(s, [SampleEvent(sample=x) for x in samples] + [Done(cell_values={"peak_rss_mb": 400.0})],
                       "ok", None, "t0", "t1", 1.0)


def test_rows_are_joined_with_their_decode_cell_and_the_front_is_marked():
    g64 = CompressionSpec(group_size=64)
    cells = [_quality("fp16", 0.0, 250.0), _quality("int8", 0.006, 130.0), _quality("int4", 0.27, 85.0, compression=g64),
             _quality("gguf", 0.0027, 94.0, runtime="llama.cpp"), _quality("gguf", 0.23, 94.0),
             _decode("int4", 5.0, compression=g64), _decode("int4", 9.0), _decode("gguf", 7.0, runtime="llama.cpp")]
    (group,) = quality_groups(cells)
    rows = {r.label: r for r in group.rows}
    assert [r.label for r in group.rows][:2] == ["fp16", "gguf · llama.cpp"]  # lowest KLD first
    # front: nothing else both smaller and closer to fp16
    assert {label for label, r in rows.items() if r.pareto} == {"fp16", "gguf · llama.cpp", "int4 g64-r1-asym"}
    # each joined with the generate cell of its own weights and runtime, none where the run has none
    assert rows["int4 g64-r1-asym"].decode.key == "m/int4/CPU/generate/openvino/g64-r1-asym"
    assert rows["gguf · llama.cpp"].decode.key == "m/gguf/CPU/generate/llama.cpp/g128-r1-asym"
    assert rows["int4 g64-r1-asym"].median("tpot_ms") is not None
    assert rows["gguf"].decode is None and rows["int8"].decode is None
    md = render(run(cells), "md")
    assert "### Quality against size and speed" in md and "| int4 g64-r1-asym |" in md
    (chart,) = pareto_charts(cells)
    assert chart.count("<circle") == 5 and "★ fp16" in chart


def test_no_quality_cells_no_section():
    cells = [_decode("int8", 5.0)]
    assert quality_groups(cells) == [] and pareto_charts(cells) == []
    assert "Quality against size" not in render(run(cells), "md")
