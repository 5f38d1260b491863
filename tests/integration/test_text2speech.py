"""Text to speech (Text2SpeechPipeline) on the built-in SpeechT5 model tiny-tts: speed readings, repeat and accuracy
against fp16 through the CLI, and the pieces (audio comparison, parameters, kept waveform, export) on their own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.core.errors import HarnessInputError
from harness.kinds.text2speech import compare_audio
from harness.plan.suite import expand, load_suite
from harness.records.store import load_results
from tests.conftest import run_suite

SUITE = {
    "name": "text2speech-test",
    "models": [{"name": "tiny-tts", "source": "synthetic:tiny-tts"}],
    "precisions": ["fp16", "int8"],
    "prompts": {"input_tokens": [32]},
    "warmup": 1,
    "iterations": 2,
    "timeout_s": 300,
    "properties": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
    "scenarios": [{"name": "tts", "kind": "text2speech"}],
    "gates": [{"metric": "audio_snr_db", "min": 20, "where": {"precision": "int8"}}],
}


@pytest.fixture(scope="module")
def tts_run(tmp_path_factory, model_cache):
    return run_suite(SUITE, tmp_path_factory.mktemp("tts"), model_cache)


@pytest.mark.integration
def test_text_to_speech_speed_repeat_and_accuracy(tts_run):
    proc, out = tts_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = {c.spec.precision: c for c in load_results(out).cells}
    assert sorted(cells) == ["fp16", "int8"]
    for c in cells.values():
        assert c.status == "ok", c.error
        for sample in c.samples:
            samples, v = sample.readings["generated_samples"], sample.values
            # SpeechT5 decodes two 256-sample frames per step; a 16 kHz clip
            assert samples > 0 and samples % 512 == 0
            assert sample.readings["generated_audio_s"] == pytest.approx(samples / 16000)
            e2e_s = (sample.end_ns - sample.start_ns) / 1e9
            assert v["tts_rtf"] == [pytest.approx(e2e_s / (samples / 16000))]
            assert v["tts_samples_per_s"] == [pytest.approx(samples / e2e_s)]
        s = c.summaries
        # the random model stops as soon as minlenratio lets it: ~1 s for a 32-token prompt
        assert 0.5 < s["tts_audio_s"].median < 2.0
        assert s["tts_rtf"].median > 0 and s["tts_rtf"].n == 2
        assert "rtf" not in s  # speech to text's RTF is over an input clip, not this one
        checks = {ch.name: ch for ch in c.checks}
        assert checks["repeat_determinism"].status == "pass", checks["repeat_determinism"].detail
        assert [len(v) for v in c.check_outputs.first_outputs.values()] == [2000]
    int8 = cells["int8"]
    assert 20 < int8.cell_values["audio_snr_db"] < 100 and 0.99 < int8.cell_values["audio_cosine"] <= 1 + 1e-9
    check = next(ch for ch in int8.checks if ch.name == "accuracy_vs_fp16")
    assert check.status == "pass" and "audio_snr_db" in check.detail and "2000 waveform points" in check.detail
    md = (out / "report.md").read_text()
    assert "### Text to speech (Text2SpeechPipeline)" in md


def test_audio_comparison_is_snr_and_cosine_over_the_common_points():
    ref = [1.0, -1.0, 1.0, -1.0]
    noisy = [r + e for r, e in zip(ref, [0.1, 0.1, -0.1, -0.1], strict=True)]
    values, detail = compare_audio(noisy, ref)
    assert values["audio_snr_db"] == pytest.approx(20.0)  # 10·log10(4 / 0.04)
    assert values["audio_cosine"] == pytest.approx(4 / (2 * np.sqrt(4.04)))
    assert detail == "4 waveform points, same length"
    # a longer clip is compared over the points both have; scale changes SNR but not cosine
    values, detail = compare_audio([2 * r for r in ref] + [0.5], ref)
    assert values["audio_cosine"] == pytest.approx(1.0) and values["audio_snr_db"] == pytest.approx(0.0)
    assert "lengths 5 and 4 kept points, first 4 compared" in detail


def test_identical_silent_and_empty_clips():
    values, detail = compare_audio([0.5, -0.25], [0.5, -0.25])
    assert values == {"audio_cosine": pytest.approx(1.0)} and detail.endswith("identical")  # no finite SNR
    assert compare_audio([0.0, 0.0], [0.1, 0.2]) == ({}, "a silent clip: no waveform comparison")
    assert compare_audio([], [0.1]) is None


def _load(tmp_path, scenario: str):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: t\nmodels: [{{name: m, source: synthetic:tiny-tts}}]\nscenarios:\n  - {scenario}\n")
    return expand(load_suite(p)[0], p)


@pytest.mark.parametrize("scenario,needle", [
    ("{name: x, kind: text2speech, minlenratio: 30}",
     "maxlenratio must be greater than minlenratio in every cell, got minlenratio 30 with maxlenratio 20"),
    ("{name: x, kind: text2speech, minlenratio: [1, 4], maxlenratio: [3, 8]}", "got minlenratio 4 with maxlenratio 3"),
    ("{name: x, kind: text2speech, threshold: 1.5}", "threshold: Input should be less than or equal to 1"),
    ("{name: x, kind: text2speech, minlenratio: -1}", "minlenratio: Input should be greater than or equal to 0"),
])
def test_bad_speech_parameters(tmp_path, scenario, needle):
    with pytest.raises(HarnessInputError, match=needle):
        _load(tmp_path, scenario)


def test_length_ratios_are_checked_as_pairs_not_one_by_one(tmp_path):
    # each value alone would fail against the other's default (min 25 > max 20): only the pair counts
    (cell,) = _load(tmp_path, "{name: x, kind: text2speech, minlenratio: 25, maxlenratio: 50}")
    assert cell.scenario.params == {"minlenratio": 25.0, "maxlenratio": 50.0}


def test_kept_waveform_is_every_stride_th_sample_rounded_and_capped():
    from harness.execute.backends.genai_text2speech import (
        KEPT_POINTS,
        STRIDE,
        kept_waveform,
        speaker_embedding,
    )

    audio = np.linspace(-1, 1, STRIDE * KEPT_POINTS + 100, dtype=np.float32)[None]
    kept = kept_waveform(audio)
    assert len(kept) == KEPT_POINTS and kept[1] == round(float(audio[0, STRIDE]), 5)
    assert kept_waveform(audio[:, :STRIDE * 3]) == kept[:3]  # the same positions whatever the length
    spk = speaker_embedding([1, 512])
    assert spk.shape == (1, 512) and spk.dtype == np.float32 and np.linalg.norm(spk) == pytest.approx(1.0)
    assert (spk == speaker_embedding([1, 512])).all()


def test_speecht5_exports_as_text_to_audio_with_its_vocoder(tmp_path):
    from harness.core.errors import ModelPreparationError
    from harness.core.schema import CompressionSpec
    from harness.models.export import export_command

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["SpeechT5ForTextToSpeech"]}))
    # a downloaded SpeechT5 comes without its vocoder: one line saying where to put it
    with pytest.raises(ModelPreparationError, match="without its vocoder: put a SpeechT5HifiGan model"):
        export_command(tmp_path, tmp_path / "out", "int8", CompressionSpec())
    (tmp_path / "vocoder").mkdir()
    (tmp_path / "vocoder" / "config.json").write_text("{}")
    cmd = export_command(tmp_path, tmp_path / "out", "int8", CompressionSpec())
    assert cmd[cmd.index("--task") + 1] == "text-to-audio"
    assert json.loads(cmd[cmd.index("--model-kwargs") + 1]) == {"vocoder": str(tmp_path / "vocoder")}
