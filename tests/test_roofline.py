from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.aggregate import cell_result
from harness.events import Event, Prepared, RunnerValues, SampleEvent
from harness.roofline import host_bandwidth, host_fingerprint, measure_bandwidth, weight_bytes_per_token
from harness.schema import HostInfo, MemoryBandwidth
from reports.verdicts import render_qualification
from tests import factories

ROOT = Path(__file__).resolve().parent.parent
HOST = HostInfo(hostname="h", os="Linux", python="3.11", cpu_model="cpu", cpu_flags=[], physical_cores=2,
                logical_cores=2, memory_total_mb=4096.0)


def test_triad_on_small_arrays_gives_a_plausible_bandwidth():
    # 8 MiB arrays mostly sit in cache, so only the range is checked: any memory system moves more than
    # 0.1 GB/s, and nothing reaches 10 TB/s
    bw = measure_bandwidth(seconds=0.05, threads=2, array_mb=8, fingerprint="f")
    for v in (bw.triad_gbs, bw.copy_gbs, bw.triad_median_gbs):
        assert math.isfinite(v) and 0.1 < v < 10_000
    assert bw.triad_median_gbs <= bw.triad_gbs
    assert bw.array_mb == pytest.approx(8.0, abs=0.1) and bw.threads == 2 and not bw.cached
    assert "triad" in bw.method and bw.fingerprint == "f"


def _fake(fingerprint: str, gbs: float = 20.0) -> MemoryBandwidth:
    return MemoryBandwidth(triad_gbs=gbs, copy_gbs=gbs * 1.4, triad_median_gbs=gbs * 0.9, array_mb=1.0, threads=2,
                           seconds=0.1, measured_at="2026-01-01T00:00:00+00:00", fingerprint=fingerprint,
                           method="test")


def test_bandwidth_is_measured_once_per_host_and_read_back(tmp_path: Path):
    calls: list[str] = []

    def measure(fingerprint: str) -> MemoryBandwidth:
        calls.append(fingerprint)
        return _fake(fingerprint, 20.0 + len(calls))

    first = host_bandwidth(tmp_path, HOST, measure=measure)
    assert not first.cached and first.triad_gbs == 21.0 and first.fingerprint == host_fingerprint(HOST)
    again = host_bandwidth(tmp_path, HOST, measure=measure)
    assert again.cached and again.triad_gbs == 21.0 and len(calls) == 1
    # another machine (here: its memory changed) is another fingerprint, measured on its own
    bigger = HOST.model_copy(update={"memory_total_mb": 8192.0})
    assert host_fingerprint(bigger) != host_fingerprint(HOST)
    assert host_bandwidth(tmp_path, bigger, measure=measure).triad_gbs == 22.0 and len(calls) == 2
    assert host_bandwidth(tmp_path, HOST, remeasure=True, measure=measure).triad_gbs == 23.0
    assert host_bandwidth(tmp_path, HOST, measure=measure).triad_gbs == 23.0 and len(calls) == 3


@pytest.mark.parametrize("content", ["{not json", '{"triad_gbs": 1}', ""])
def test_corrupt_bandwidth_cache_is_measured_again(tmp_path: Path, content: str):
    path = tmp_path / "host-bandwidth" / f"{host_fingerprint(HOST)}.json"
    path.parent.mkdir()
    path.write_text(content)
    bw = host_bandwidth(tmp_path, HOST, measure=lambda f: _fake(f, 30.0))
    assert not bw.cached and bw.triad_gbs == 30.0
    assert MemoryBandwidth.model_validate_json(path.read_text()).triad_gbs == 30.0


def _hand_built_ir(folder: Path) -> Path:
    """A model whose weights are known byte for byte: an f16 projection used by two MatMuls, a u8 one with
    zero point and scale, a grouped u4 one, a Gather-only embedding, and MatMuls of activations only."""
    import openvino as ov
    import openvino.opset13 as ops

    def const(shape, dtype, ov_type=None):
        data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) % 7
        return ops.constant(data, dtype=ov_type or ov.Type(dtype))

    x = ops.parameter([1, 4], np.float32, name="x")
    ids = ops.parameter([1], np.int64, name="ids")
    w16 = ops.convert(const([8, 4], np.float16), np.float32)  # 64 bytes
    h = ops.matmul(x, w16, False, True)  # [1, 8]
    w8 = ops.convert(const([8, 8], np.uint8), np.float32)  # 64 bytes
    zp = ops.convert(const([8, 1], np.uint8), np.float32)  # 8 bytes
    scale = ops.convert(const([8, 1], np.float16), np.float32)  # 16 bytes
    h = ops.matmul(h, ops.multiply(ops.subtract(w8, zp), scale), False, True)
    w4 = ops.convert(const([8, 2, 4], np.uint8, ov.Type.u4), np.float32)  # 64 values: 32 bytes
    scale4 = ops.convert(const([8, 2, 1], np.float16), np.float32)  # 32 bytes
    w4 = ops.reshape(ops.multiply(w4, scale4), ops.constant(np.array([8, 8], np.int64)), False)
    h = ops.matmul(h, w4, False, True)  # [1, 8]
    h = ops.matmul(ops.multiply(h, ops.constant(np.float32(0.5))), ops.reshape(h, [8, 1], False), False, False)
    tied = ops.matmul(x, w16, False, True)  # the f16 weight again: read once
    embedding = ops.gather(ops.convert(const([16, 4], np.float16), np.float32), ids, 0)  # 128 bytes, not counted
    model = ov.Model([h, tied, embedding], [x, ids], "hand-built")
    xml = folder / "openvino_model.xml"
    ov.serialize(model, str(xml))
    return xml


def test_weight_bytes_counts_matmul_weights_with_their_decompression(tmp_path: Path):
    assert weight_bytes_per_token(_hand_built_ir(tmp_path)) == 64 + (64 + 8 + 16) + (32 + 32)


def _newest_ir(precision: str) -> Path | None:
    from harness.models.cache import default_cache_dir

    found = [p for base in (default_cache_dir(), ROOT / ".cache" / "test")
             for p in (base / "ir").glob(f"small-{precision}-*/openvino_model.xml")]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def test_weight_bytes_of_the_built_small_model_fall_with_precision():
    irs = {p: _newest_ir(p) for p in ("fp16", "int8", "int4")}
    missing = [p for p, x in irs.items() if x is None]
    if missing:
        pytest.skip(f"the small model is not built at {', '.join(missing)} in the cache (scripts/harness run builds it)")
    fp16, int8, int4 = (weight_bytes_per_token(x) for x in irs.values() if x is not None)
    assert fp16 > int8 > int4
    # 147M parameters, ~138M of them in projections and the head at 2 bytes; int8 about half with its scales
    assert 250e6 < fp16 < 300e6 and 0.45 < int8 / fp16 < 0.6


def _cell(kind: str = "generate", weight_bytes: int | None = 200_000_000, host_gbs: float | None = 20.0):
    events: list[Event] = [Prepared(model_dir="/m", weight_bytes_per_token=weight_bytes)]
    events += [SampleEvent(sample=factories.sample(i, warmup=i == 0)) for i in range(3)]
    if host_gbs is not None:
        events.append(RunnerValues(cell_values={"memory_bandwidth_gbs": host_gbs}))
    return cell_result(factories.spec(kind), events, "ok", None, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0)


def test_roofline_figures_are_absent_rather_than_guessed():
    no_host = _cell(host_gbs=None).cell_values
    assert "roofline_pct" not in no_host and "memory_bandwidth_gbs" not in no_host
    assert no_host["achieved_bandwidth_gbs"] > 0  # the achieved traffic needs no host figure
    no_weights = _cell(weight_bytes=None).cell_values
    assert "achieved_bandwidth_gbs" not in no_weights and "roofline_pct" not in no_weights
    # speculative decoding reads the weights once per several tokens: the plain definition does not apply
    drafted = _cell("speculative").cell_values
    assert "achieved_bandwidth_gbs" not in drafted and "roofline_pct" not in drafted


def test_qualification_report_shows_roofline_per_cell_and_host_bandwidth():
    res = factories.run([_cell(), _cell("speculative", weight_bytes=None)])
    res.metadata.host.memory_bandwidth = _fake("f", 20.0)
    text = render_qualification(res)
    assert "memory bandwidth 20.0 GB/s triad" in text
    assert "| decode tok/s | weight MB/token | achieved GB/s | roofline % |" in text
    plain, drafted = [line for line in text.splitlines() if line.startswith("| `m/")]
    # tpot 7/3 ms: 428.6 tok/s × 200 MB = 85.7 GB/s, 429% of 20 GB/s
    assert plain.endswith("| 428.6 | 200.0 | 85.7 | 429 |")
    assert drafted.endswith("| 428.6 | — | — | — |")
    res.metadata.host.memory_bandwidth = None
    assert "memory bandwidth not measured" in render_qualification(res)


def test_prepare_worker_reads_weight_bytes_for_plain_decoding_only(tmp_path: Path):
    from harness.worker import _weight_bytes

    _hand_built_ir(tmp_path)
    logged: list[str] = []
    assert _weight_bytes(factories.spec("generate"), tmp_path, logged.append) == 216
    assert _weight_bytes(factories.spec("speculative"), tmp_path, logged.append) is None
    (tmp_path / "openvino_model.xml").write_text("<net>")  # an IR it cannot read: the figure only is lost
    assert _weight_bytes(factories.spec("generate"), tmp_path, logged.append) is None
    assert len(logged) == 1 and "weight bytes per token not read" in logged[0]
