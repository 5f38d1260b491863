"""Scenarios beyond single-request generation, for real on the tiny model: a continuous-batching
concurrency sweep next to plain greedy, and OpenVINO Tokenizers parity with Hugging Face."""

from __future__ import annotations

import pytest

from harness.records.store import load_results
from reports.goodput import sweep_limits
from tests.conftest import run_suite
from tests.factories import result, sample, spec

SUITE = {
    "name": "scenarios-test",
    "models": [{"name": "tiny", "source": "synthetic:tiny"},
               {"name": "tiny-embed", "source": "synthetic:tiny-embed"},
               {"name": "tiny-rerank", "source": "synthetic:tiny-rerank"},
               {"name": "tiny-vlm", "source": "synthetic:tiny-vlm"},
               {"name": "tiny-whisper", "source": "synthetic:tiny-whisper"},
               {"name": "tiny-sd", "source": "synthetic:tiny-sd"}],
    "precisions": ["fp16", "int8"],
    "prompts": {"input_tokens": [32]},
    "generation": {"max_new_tokens": 16, "ignore_eos": True},
    "warmup": 1,
    "iterations": 2,
    "timeout_s": 300,
    # f32 so that batched and one-by-one decoding must agree token for token
    "properties": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
    "scenarios": [
        {"name": "greedy", "kind": "generate", "models": ["tiny"]},
        {"name": "cb", "kind": "continuous_batching", "models": ["tiny"], "concurrency": [1, 3],
         "max_num_batched_tokens": 256, "enable_prefix_caching": False},
        {"name": "tokenizer", "kind": "tokenizer"},
        {"name": "optimum", "kind": "optimum", "models": ["tiny"]},
        {"name": "torch", "kind": "pytorch", "models": ["tiny"]},
        {"name": "embed", "kind": "embeddings", "models": ["tiny-embed"], "batch_size": 4, "pooling": "mean",
         "normalize": True},
        {"name": "rerank", "kind": "rerank", "models": ["tiny-rerank"], "batch_size": 4},
        {"name": "vlm", "kind": "vlm", "models": ["tiny-vlm"], "image_size": 96},
        {"name": "speech", "kind": "speech", "models": ["tiny-whisper"], "audio_s": 4.0},
        {"name": "t2i", "kind": "text2image", "models": ["tiny-sd"], "width": 64, "height": 64, "steps": 4},
        {"name": "i2i", "kind": "image2image", "models": ["tiny-sd"], "width": 64, "height": 64, "steps": 8,
         "strength": 0.5},
        {"name": "inpaint", "kind": "inpainting", "models": ["tiny-sd"], "width": 64, "height": 64, "steps": 4},
    ],
    "exclude": [{"kind": ["continuous_batching", "tokenizer", "pytorch"], "precision": "int8"},
                {"kind": "tokenizer", "model": ["tiny-vlm", "tiny-whisper"]}],
    "gates": [{"metric": "ttft_ms", "stat": "p90", "max": 60000, "where": {"kind": "continuous_batching"}},
              {"metric": "embedding_cosine", "min": 0.9, "where": {"kind": "embeddings", "precision": "int8"}}],
}


@pytest.fixture(scope="module")
def cb_run(tmp_path_factory, model_cache):
    return run_suite(SUITE, tmp_path_factory.mktemp("cb"), model_cache)


@pytest.mark.integration
def test_sweep_measures_every_request_and_batch(cb_run):
    proc, out = cb_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = load_results(out)
    assert len(res.cells) == 25, [c.key for c in res.cells]
    cb = {int(c.spec.scenario.params["concurrency"]): c for c in res.cells if c.spec.scenario.kind == "continuous_batching"}
    assert sorted(cb) == [1, 3]
    for conc, c in cb.items():
        assert c.status == "ok", c.error
        measured = [s for s in c.samples if not s.warmup]
        assert len(measured) == conc * SUITE["iterations"]
        assert sorted({s.request for s in measured}) == list(range(conc))
        assert len({s.prompt_index for s in c.samples}) == conc * 3  # every request its own prompt
        assert [b.requests for b in c.batches] == [conc] * 3 and sum(b.warmup for b in c.batches) == 1
        for b in c.batches:
            reqs = [s for s in c.samples if s.iteration == b.iteration]
            assert b.output_tokens == sum(s.output_tokens for s in reqs) == conc * 16
            assert b.end_ns == max(s.end_ns for s in reqs)
            assert 0 < b.cache_usage_max_pct <= 100
        s = c.summaries
        assert s["ttft_ms"].n == conc * 2 and s["batch_output_tps"].n == 2
        # total throughput is the batch's tokens over its duration
        b = [b for b in c.batches if not b.warmup][0]
        assert b.values["batch_output_tps"][0] == pytest.approx(b.output_tokens / ((b.end_ns - b.start_ns) / 1e9))
        checks = {ch.name: ch for ch in c.checks}
        assert checks["exact_token_count"].status == "pass"
        assert checks["repeat_determinism"].status == "pass", checks["repeat_determinism"].detail
        assert checks["matches_greedy"].status == "pass", checks["matches_greedy"].detail
    # three requests share the steps: a batch step makes about three times the tokens of a lone request's
    # (counted, not timed: which one is faster per second is this machine's noise to decide)
    def tokens_per_step(c):
        batches = [b for b in c.batches if not b.warmup]
        return sum(b.output_tokens for b in batches) / sum(b.steps for b in batches)
    assert tokens_per_step(cb[3]) > 2.5 * tokens_per_step(cb[1])


@pytest.mark.integration
def test_report_has_a_batching_table_and_the_sweep_limit(cb_run):
    _, out = cb_run
    md = (out / "report.md").read_text()
    assert "### Continuous batching" in md
    assert "| tiny | fp16 | CPU | cb | concurrency=3 " in md
    assert "Highest concurrency or request rate within the suite's gates" in md and "**concurrency 3**" in md


def _gated_cell(conc: int, ttft: float):
    s = spec("generate", key=f"m/fp16/CPU/cb[concurrency={conc}]/in8-out4")
    s.scenario.kind, s.scenario.params = "continuous_batching", {"concurrency": conc}
    from harness.core.schema import Gate

    s.gates = [Gate(metric="ttft_ms", stat="p90", max=12.0)]
    return result(s, [sample(i, chunks=(ttft, ttft + 1, ttft + 2, ttft + 3), e2e_ms=ttft + 4) for i in range(3)])


def test_sweep_limit_is_the_last_concurrency_before_a_gate_fails():
    cells = [_gated_cell(4, 20.0), _gated_cell(1, 10.0), _gated_cell(2, 11.0), _gated_cell(8, 5.0)]
    [lim] = sweep_limits(cells)
    assert lim.sweep == "m/fp16/CPU/cb[concurrency=*]/in8-out4"
    assert lim.tried == [1, 2, 4, 8]
    assert lim.max_within == 2 and lim.first_failing == 4
    assert "ttft_ms p90 <= 12" in lim.failed_gates[0]
    [none] = sweep_limits([_gated_cell(1, 30.0)])
    assert none.max_within is None and none.first_failing == 1


def test_rate_sweeps_have_limits_too():
    cells = []
    for rate, ttft in ((1.0, 5.0), (2.5, 9.0), (4.0, 30.0)):
        c = _gated_cell(1, ttft)
        c.key = f"m/fp16/CPU/load[rate={rate}]/in8-out4"
        c.spec.scenario.kind, c.spec.scenario.params = "serving", {"rate": rate}
        cells.append(c)
    [lim] = sweep_limits(cells)
    assert lim.axis == "rate" and lim.sweep == "m/fp16/CPU/load[rate=*]/in8-out4"
    assert lim.tried == [1, 2.5, 4] and lim.max_within == 2.5 and lim.first_failing == 4


@pytest.mark.integration
def test_tokenizer_parity_and_speed(cb_run):
    _, out = cb_run
    tok = {c.spec.model.name: c for c in load_results(out).cells if c.spec.scenario.kind == "tokenizer"}
    assert sorted(tok) == ["tiny", "tiny-embed", "tiny-rerank", "tiny-sd"]
    for c in tok.values():
        assert c.status == "ok", c.error
        assert next(ch for ch in c.checks if ch.name == "tokenizer_parity").status in ("pass", "fail")
    c = tok["tiny"]
    check = next(ch for ch in c.checks if ch.name == "tokenizer_parity")
    # the synthetic byte-level BPE converts exactly: any mismatch is a real finding, shown with its text
    assert check.status == "pass", check.detail
    assert c.cell_values["tokenizer_encode_mismatches"] == 0
    for tag in ("ov_encode_tps", "hf_encode_tps", "ov_decode_tps", "hf_decode_tps"):
        assert c.summaries[tag].n == SUITE["iterations"] and c.summaries[tag].median > 0, tag
    assert "output_tps" not in c.summaries and "exact_token_count" not in {ch.name for ch in c.checks}
    md = (out / "report.md").read_text()
    assert "### OpenVINO Tokenizers vs Hugging Face" in md


def test_parity_finds_and_describes_a_mismatch():
    from harness.execute.backends.tokenizer_parity import parity

    class FakeOV:
        def encode(self, text, add_special_tokens=True):
            import numpy as np

            class R:
                pass

            ids = [ord(ch) for ch in text] + ([1] if "x" in text else [])
            r = R()
            r.input_ids = type("T", (), {"data": np.array([ids])})()
            return r

        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(i) for i in ids)

    class FakeHF:
        def encode(self, text, add_special_tokens=True):
            return [ord(ch) for ch in text]

        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(i) for i in ids)

    found = parity(FakeOV(), FakeHF(), ["abc", "xyz", ""])
    assert found.encode_mismatches == 2 and found.decode_mismatches == 0  # "xyz" with and without specials
    assert found.encode_examples[0].text == 1 and found.encode_examples[0].at == 3


@pytest.mark.integration
def test_embeddings_and_rerank_with_accuracy_against_fp16(cb_run):
    _, out = cb_run
    cells = {(c.spec.scenario.kind, c.spec.precision): c for c in load_results(out).cells
             if c.spec.scenario.kind in ("embeddings", "rerank")}
    assert sorted(cells) == [("embeddings", "fp16"), ("embeddings", "int8"), ("rerank", "fp16"), ("rerank", "int8")]
    for (kind, precision), c in cells.items():
        assert c.status == "ok", (kind, precision, c.error)
        measured = [s for s in c.samples if not s.warmup]
        assert len(measured) == 2 and all(s.readings["documents"] == 4 for s in measured)
        assert c.summaries["documents_per_s"].median > 0 and c.summaries["e2e_ms"].n == 2
        checks = {ch.name: ch for ch in c.checks}
        assert checks["repeat_determinism"].status == "pass", checks["repeat_determinism"].detail
    emb = cells[("embeddings", "int8")]
    assert 0.9 < emb.cell_values["embedding_cosine"] <= 1.0 + 1e-6
    acc = next(ch for ch in emb.checks if ch.name == "accuracy_vs_fp16")
    assert acc.status == "pass" and "embedding_cosine" in acc.detail
    rr = cells[("rerank", "int8")]
    assert -1.0 <= rr.cell_values["rerank_spearman"] <= 1.0
    md = (out / "report.md").read_text()
    assert "### Text embeddings" in md and "### Text rerank" in md and "### Precisions side by side" in md


@pytest.mark.integration
def test_optimum_intel_runs_the_same_cells_and_matches_genai(cb_run):
    _, out = cb_run
    res = load_results(out)
    opt = {c.spec.precision: c for c in res.cells if c.spec.scenario.kind == "optimum"}
    gen = {c.spec.precision: c for c in res.cells if c.spec.scenario.kind == "generate"}
    assert sorted(opt) == ["fp16", "int8"]
    for precision, c in opt.items():
        assert c.status == "ok", c.error
        checks = {ch.name: ch for ch in c.checks}
        assert checks["exact_token_count"].status == "pass"
        # same IR, same prompts, f32: Optimum Intel's greedy tokens are GenAI's
        assert checks["matches_greedy"].status == "pass", checks["matches_greedy"].detail
        assert [s.input_tokens for s in c.samples] == [s.input_tokens for s in gen[precision].samples]
        for tag in ("ttft_ms", "tpot_ms", "itl_ms", "output_tps"):
            assert c.summaries[tag].n >= 2, tag
    assert "### Optimum Intel (OVModelForCausalLM.generate)" in (out / "report.md").read_text()


@pytest.mark.integration
def test_pytorch_reference_is_what_text_cells_are_judged_against(cb_run):
    _, out = cb_run
    res = load_results(out)
    [torch_cell] = [c for c in res.cells if c.spec.scenario.kind == "pytorch"]
    assert torch_cell.status == "ok", torch_cell.error
    assert torch_cell.summaries["output_tokens"].median == 16 and torch_cell.summaries["ttft_ms"].n == 2
    for precision in ("fp16", "int8"):
        greedy = next(c for c in res.cells if c.spec.scenario.kind == "generate" and c.spec.precision == precision)
        check = next(ch for ch in greedy.checks if ch.name == "accuracy_vs_pytorch")
        assert torch_cell.key in check.detail
        assert 0 <= greedy.cell_values["token_match_pct"] <= 100


@pytest.mark.integration
def test_vlm_with_generated_images(cb_run):
    _, out = cb_run
    cells = {c.spec.precision: c for c in load_results(out).cells if c.spec.scenario.kind == "vlm"}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        s = c.summaries
        # the prompt carries the image's patch tokens: 16 of them at the model's 64-pixel input
        assert s["input_tokens"].median > SUITE["prompts"]["input_tokens"][0] + 10
        assert s["output_tokens"].median == 16 and s["output_tps"].median > 0
        # image encoding is part of TTFT, and openvino-genai's own figure for it is recorded
        assert 0 < s["vlm_embeddings_ms"].median < s["ttft_ms"].median
        checks = {ch.name: ch for ch in c.checks}
        assert checks["exact_token_count"].status == "pass"
        assert checks["repeat_determinism"].status == "pass", checks["repeat_determinism"].detail
    acc = next(ch for ch in cells["int8"].checks if ch.name == "accuracy_vs_fp16")
    assert "vs tiny-vlm/fp16/CPU/vlm" in acc.detail and "token_match_pct" in cells["int8"].cell_values
    assert "### Vision-language (VLMPipeline)" in (out / "report.md").read_text()


def test_synthetic_image_is_deterministic_and_not_noise():
    from harness.core.synthetic_images import synthetic_image

    a, b = synthetic_image(3, 64), synthetic_image(3, 64)
    assert a.shape == (64, 64, 3) and a.dtype.name == "uint8" and (a == b).all()
    assert not (synthetic_image(4, 64) == a).all()
    # neighbouring pixels are close (a picture, not noise)
    assert abs(a[:, 1:].astype(int) - a[:, :-1].astype(int)).mean() < 40


@pytest.mark.integration
def test_speech_to_text_on_a_generated_clip(cb_run):
    _, out = cb_run
    cells = {c.spec.precision: c for c in load_results(out).cells if c.spec.scenario.kind == "speech"}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        s = c.summaries
        assert s["output_tokens"].median == 16
        # RTF is the call's latency over the 4 s clip
        assert s["rtf"].median == pytest.approx(s["e2e_ms"].median / 4000.0, rel=0.05)
        assert 0 < s["speech_encode_ms"].median < s["ttft_ms"].median
        checks = {ch.name: ch for ch in c.checks}
        assert checks["repeat_determinism"].status == "pass", checks["repeat_determinism"].detail
    assert "accuracy_vs_fp16" in {ch.name for ch in cells["int8"].checks}
    assert "### Speech to text (WhisperPipeline)" in (out / "report.md").read_text()


def test_synthetic_speech_is_deterministic_and_bounded():
    from harness.execute.backends.genai_whisper import SAMPLE_RATE, synthetic_speech

    a = synthetic_speech(2, 1.5)
    assert a.shape == (int(1.5 * SAMPLE_RATE),) and a.dtype.name == "float32"
    assert (a == synthetic_speech(2, 1.5)).all() and not (a == synthetic_speech(3, 1.5)).all()
    assert 0.01 < float(abs(a).mean()) and float(abs(a).max()) <= 1.0


@pytest.mark.integration
def test_text_to_image_at_fixed_size_and_steps(cb_run):
    _, out = cb_run
    res = load_results(out)
    cells = {c.spec.precision: c for c in res.cells if c.spec.scenario.kind == "text2image"}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        s = c.summaries
        assert s["image_s"].n == 2 and s["step_ms"].median == pytest.approx(s["image_s"].median * 1000 / 4, rel=0.05)
        assert 0 < s["unet_ms"].median < s["image_s"].median * 1000
        assert next(ch for ch in c.checks if ch.name == "repeat_determinism").status == "pass"
    sim = cells["int8"].cell_values["image_similarity_pct"]
    assert 0 < sim <= 100
    # the diffusion pipeline's tokenizer (in its tokenizer/ folder) gets its parity check too
    tok = next(c for c in res.cells if c.spec.scenario.kind == "tokenizer" and c.spec.model.name == "tiny-sd")
    assert tok.status == "ok", tok.error
    assert "### Text to image (Text2ImagePipeline)" in (out / "report.md").read_text()


@pytest.mark.integration
@pytest.mark.parametrize(("kind", "steps_run", "title"), [("image2image", 4, "Image to image (Image2ImagePipeline)"),
                                                          ("inpainting", 4, "Inpainting (InpaintingPipeline)")])
def test_image_to_image_and_inpainting(cb_run, kind, steps_run, title):
    _, out = cb_run
    res = load_results(out)
    cells = {c.spec.precision: c for c in res.cells if c.spec.scenario.kind == kind}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        s = c.summaries
        # step time is over the steps the pipeline runs: int(steps * strength)
        assert s["step_ms"].median == pytest.approx(s["image_s"].median * 1000 / steps_run, rel=0.05)
        assert 0 < s["unet_ms"].median < s["image_s"].median * 1000
        assert next(ch for ch in c.checks if ch.name == "repeat_determinism").status == "pass"
    assert 0 < cells["int8"].cell_values["image_similarity_pct"] <= 100
    check = next(ch for ch in cells["int8"].checks if ch.name == "accuracy_vs_fp16")
    assert "mean absolute pixel difference" in check.detail
    assert f"### {title}" in (out / "report.md").read_text()


def test_input_image_and_mask_are_fixed():
    import numpy as np

    from harness.execute.backends.genai_image import centre_mask, input_image, steps_run

    a, b = input_image(64, 32), input_image(64, 32)
    assert a.shape == (1, 32, 64, 3) and a.dtype == np.uint8 and (a == b).all() and a.std() > 20
    m = centre_mask(64, 32, 0.5)
    assert (m[0, 8:24, 16:48] == 255).all() and m.sum() == 255 * 3 * 16 * 32
    assert steps_run(20, 0.8) == 16 and steps_run(4, 0.1) == 1 and steps_run(4, 1.0) == 4


def test_thumbnail_block_means():
    import numpy as np

    from harness.execute.backends.genai_image import thumbnail

    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[:32, :, 0] = 255
    t = np.asarray(thumbnail(img, 4))
    assert t.shape == (4, 4, 3) and (t[:2, :, 0] == 255).all() and (t[2:, :, 0] == 0).all()


VIDEO_SUITE = {
    "name": "video-test",
    "models": [{"name": "tiny-ltx", "source": "synthetic:tiny-ltx"}],
    "precisions": ["fp16", "int8"],
    "prompts": {"input_tokens": [16]},
    "warmup": 1,
    "iterations": 2,
    "timeout_s": 300,
    "properties": {"INFERENCE_PRECISION_HINT": "f32"},
    "scenarios": [{"name": "t2v", "kind": "text2video", "width": 64, "height": 64, "num_frames": 9, "steps": 4},
                  {"name": "tokenizer", "kind": "tokenizer"}],
    "exclude": [{"kind": "tokenizer", "precision": "int8"}],
}


@pytest.fixture(scope="module")
def video_run(tmp_path_factory, model_cache):
    return run_suite(VIDEO_SUITE, tmp_path_factory.mktemp("t2v"), model_cache, timeout=1500)


@pytest.mark.integration
def test_text_to_video_speed_and_accuracy_against_fp16(video_run):
    proc, out = video_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = load_results(out)
    cells = {c.spec.precision: c for c in res.cells if c.spec.scenario.kind == "text2video"}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        s = c.summaries
        assert s["video_s"].n == 2
        assert s["frame_ms"].median == pytest.approx(s["video_s"].median * 1000 / 9, rel=0.05)
        assert s["step_ms"].median == pytest.approx(s["video_s"].median * 1000 / 4, rel=0.05)
        assert 0 < s["transformer_ms"].median < s["video_s"].median * 1000
        assert 0 < s["vae_decoder_ms"].median < s["video_s"].median * 1000
        assert "image_s" not in s  # a video is not counted as an image
        assert next(ch for ch in c.checks if ch.name == "repeat_determinism").status == "pass"
        [kept] = c.check_outputs.first_outputs.values()
        assert isinstance(kept, list) and len(kept) == 9  # every frame of a 9-frame video
    assert 0 < cells["int8"].cell_values["image_similarity_pct"] <= 100
    check = next(ch for ch in cells["int8"].checks if ch.name == "accuracy_vs_fp16")
    assert "mean absolute pixel difference" in check.detail and "over 9 kept frames" in check.detail
    # the T5 tokenizer openvino-tokenizers converted from the pipeline's tokenizer/ folder agrees with HF's
    tok = next(c for c in res.cells if c.spec.scenario.kind == "tokenizer")
    assert tok.status == "ok", tok.error
    assert "### Text to video (Text2VideoPipeline)" in (out / "report.md").read_text()


def test_kept_frames_are_evenly_spaced_thumbnails():
    import numpy as np

    from harness.execute.backends.genai_video import kept_frames

    video = np.zeros((17, 64, 32, 3), dtype=np.uint8)
    video[:, :, :, 0] = np.arange(17, dtype=np.uint8)[:, None, None]  # each frame's red is its index
    kept = np.asarray(kept_frames(video, count=5, size=16))
    assert kept.shape == (5, 16, 16, 3) and kept[:, 0, 0, 0].tolist() == [0, 4, 8, 12, 16]
    assert np.asarray(kept_frames(video[:1])).shape == (1, 16, 16, 3)
