"""The quality kind on the real stack, offline: the built-in tiny model written as a Q8_0 GGUF file
(tests/gguf_files.py), measured at fp16, int8 and through openvino-genai's GGUF reader, and on llama.cpp where the
[peers] extra is installed: fp16 against itself is exactly 0, int8 is not, the baseline is saved once and read
again, the windows are llama-perplexity's, and the llama.cpp cells (or their one-line failure) sit in the same run."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from harness.models import build_synthetic
from harness.records.store import load_results
from tests.conftest import cache_holding_tiny, run_suite
from tests.gguf_files import write_gguf

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
CONTEXT, TOKENS = 64, 1024


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, model_cache) -> Path:
    return cache_holding_tiny(tmp_path_factory, model_cache, "quality-cache")


@pytest.fixture(scope="module")
def gguf(cache_dir, tmp_path_factory) -> Path:
    # "gpt-2": the pre-tokenizer name llama.cpp knows (it refuses "gpt2")
    return write_gguf(build_synthetic("tiny", cache_dir), tmp_path_factory.mktemp("gguf") / "tiny-Q8_0.gguf", "Q8_0",
                      pre="gpt-2")


@pytest.fixture(scope="module")
def run(gguf, cache_dir, tmp_path_factory):
    suite = {
        "name": "quality-test",
        "models": [{"name": "tiny", "source": str(gguf)}],
        "precisions": ["fp16", "int8", "gguf"],
        "runtimes": ["openvino", "llama.cpp"],
        "prompts": {"input_tokens": [16]},
        "generation": {"max_new_tokens": 8},
        "iterations": 2,
        "scenarios": [{"name": "quality", "kind": "quality", "text": "stdlib-heldout", "context": CONTEXT,
                       "tokens": TOKENS},
                      {"name": "decode", "kind": "generate"}],
    }
    folder = tmp_path_factory.mktemp("quality-run")
    proc, out = run_suite(suite, folder, cache_dir)
    return proc, out, load_results(out / "results.json"), folder


def _cell(results, precision: str, kind: str, runtime: str = "openvino"):
    return next(c for c in results.cells if c.spec.precision == precision and c.spec.scenario.kind == kind
                and c.spec.runtime == runtime)


def test_fp16_against_itself_is_zero_and_int8_is_not(run):
    proc, _out, results, _ = run
    fp16, int8 = _cell(results, "fp16", "quality"), _cell(results, "int8", "quality")
    assert fp16.status == "ok" and int8.status == "ok", proc.stdout[-3000:]
    v16, v8 = fp16.cell_values, int8.cell_values
    # the same IR twice: 0 up to the CPU plugin's run-to-run rounding (1.6e-8 nats measured on SmolLM2)
    assert v16["kld_mean"] < 1e-6 and v16["kld_max"] < 1e-4 and v16["top1_agree_pct"] == 100.0
    assert v16["ppl"] == pytest.approx(v16["ppl_base"], rel=1e-6)
    assert v8["kld_mean"] > 1e-6 and v8["kld_se"] > 0 and v8["ppl_base"] == v16["ppl_base"]  # one saved baseline
    assert v8["kld_p999"] >= v8["kld_p99"] >= v8["kld_median"]
    windows = TOKENS // CONTEXT
    assert v16["scored_tokens"] == windows * (CONTEXT - 1 - CONTEXT // 2)
    # one warm-up window, then each window once; the forward pass of each timed
    assert len([s for s in fp16.samples if not s.warmup]) == windows
    assert fp16.summaries["eval_tps"].median > 0
    assert math.isfinite(v16["ppl"]) and v16["ppl"] > 1


def test_the_gguf_readers_graph_is_scored_against_the_same_baseline(run):
    _proc, _out, results, _ = run
    g = _cell(results, "gguf", "quality")
    assert g.status == "ok", g.error
    assert g.cell_values["ppl_base"] == _cell(results, "fp16", "quality").cell_values["ppl_base"]
    assert g.cell_values["kld_mean"] >= 0


def test_the_baseline_is_saved_once_and_read_again(run, cache_dir):
    _proc, _out, results, _ = run
    saved = list((cache_dir / "logits").glob("*.npy"))
    assert len(saved) == 1  # every cell of the model, text and windows shares one
    assert not list((cache_dir / "logits").glob("*.tmp.npy"))


def test_the_report_has_the_quality_table_and_pareto_chart(run):
    _proc, out, _results, _ = run
    md = (out / "report.md").read_text()
    assert "### Quality against size and speed" in md and "★" in md
    html = (out / "report.html").read_text()
    assert "KLD vs weight size" in html


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python (the [peers] extra) is not installed")
def test_llama_cpp_cells_measure_the_same_file_beside_openvino(run):
    _proc, _out, results, _ = run
    q = _cell(results, "gguf", "quality", "llama.cpp")
    ov = _cell(results, "gguf", "quality")
    assert q.status == "ok", q.error
    # the same Q8_0 weights on two runtimes: perplexity within 2%, divergence from the fp16 IR small
    assert q.cell_values["ppl"] == pytest.approx(ov.cell_values["ppl"], rel=0.02)
    assert q.cell_values["kld_mean"] < 0.05
    gen = _cell(results, "gguf", "generate", "llama.cpp")
    assert gen.status == "ok", gen.error
    measured = [s for s in gen.samples if not s.warmup]
    assert measured and all(s.output_tokens == 8 and len(s.chunk_offsets_ms) == 8 for s in measured)
    assert all(s.input_tokens == 16 + 1 for s in measured)  # the prompt's 16 tokens and the file's BOS
    assert gen.summaries["tpot_ms"].median > 0 and gen.runtime_versions.get("llama-cpp-python")


@pytest.mark.skipif(HAS_LLAMA_CPP, reason="llama-cpp-python is installed")
def test_without_the_peers_extra_llama_cpp_cells_fail_in_one_line_and_the_rest_runs(run):
    _proc, _out, results, _ = run
    q = _cell(results, "gguf", "quality", "llama.cpp")
    assert q.status == "failed" and "[peers]" in (q.error or "") and "\n" not in (q.error or "")
    assert _cell(results, "fp16", "quality").status == "ok"
