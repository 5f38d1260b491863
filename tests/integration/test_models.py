"""Synthetic models, IR export and the IR cache, on the real stack (tiny builds in seconds)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from harness.core.errors import ModelPreparationError
from harness.core.schema import CompressionSpec
from harness.models import SYNTHETIC_MODELS, build_synthetic, classify_source, prepare_model, validate_ir_dir
from harness.models.cache import entry_lock, sha256_file
from harness.models.export import ensure_tokenizers, export_command, last_error
from harness.models.prepare import MANIFEST, export_key
from harness.models.sources import ResolvedSource
from harness.models.synthetic import MARKER, AliasSpec, DraftSpec, LlamaSpec, built_quality
from harness.models.training import TrainingSpec
from tests.conftest import cache_holding_tiny

PRECISIONS = ("fp16", "int8", "int4")
N_TOKENS = 8


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, model_cache) -> Path:
    return cache_holding_tiny(tmp_path_factory, model_cache, "model-cache")


@pytest.fixture(scope="session")
def tiny(cache_dir) -> Path:
    return build_synthetic("tiny", cache_dir)


# Trained like tiny but for a few steps: the build path of a trained model in seconds, for the tests that
# build again and again.
QUICK = "test-quick"
QUICK_SPEC = LlamaSpec(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=256,
                       training=TrainingSpec(steps=3, batch=2, seq_len=16))


@pytest.fixture(scope="session")
def quick():
    SYNTHETIC_MODELS[QUICK] = QUICK_SPEC
    yield QUICK
    SYNTHETIC_MODELS.pop(QUICK, None)


@pytest.fixture(scope="session")
def quick_built(quick, tmp_path_factory) -> Path:
    return build_synthetic(quick, tmp_path_factory.mktemp("quick"))


@pytest.fixture(scope="session")
def tiny_ir(cache_dir):
    return {p: prepare_model("synthetic:tiny", p, CompressionSpec(), cache_dir) for p in PRECISIONS}


def _logger():
    lines: list[str] = []
    return lines, lines.append


# ---------------------------------------------------------------- synthetic models


def test_registry_has_targets_and_drafts():
    assert {"tiny", "small", "tiny-draft", "small-draft"} <= set(SYNTHETIC_MODELS)
    draft = SYNTHETIC_MODELS["tiny-draft"]
    assert isinstance(draft, DraftSpec) and draft.target == "tiny" and draft.num_layers == 1
    # small is grown from a trained 7M-parameter model, which is also its draft
    small = SYNTHETIC_MODELS["small"]
    assert isinstance(small, LlamaSpec) and small.grown_from is not None
    assert SYNTHETIC_MODELS["small-draft"] == AliasSpec(of=small.grown_from.source)


def test_tiny_build_is_cached_and_reports_its_quality(tiny):
    assert (tiny / MARKER).is_file() and (tiny / "generation_config.json").is_file()
    assert json.loads((tiny / "generation_config.json").read_text())["eos_token_id"] == 2
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*") if p.is_file()}
    assert build_synthetic("tiny", tiny.parent.parent) == tiny
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*") if p.is_file()} == before  # reused, not rebuilt
    # trained: far better than a unigram model on held-out stdlib text, and confident (random weights give a
    # held-out loss above the unigram's and a median top-1 probability near 1/8192)
    q = built_quality(tiny)
    assert q is not None and q.heldout_tokens > 10000
    assert q.heldout_loss < q.unigram_loss - 1.5, q
    assert q.median_top1_probability > 0.1, q


def test_trained_build_is_deterministic(quick, quick_built, tmp_path):
    logs: list[str] = []
    again = build_synthetic(quick, tmp_path, log=logs.append)
    assert again.name == quick_built.name
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(again / f) == sha256_file(quick_built / f), f
    assert built_quality(again) == built_quality(quick_built)
    assert any(m.startswith(f"training {quick}: 100% (step 3/3") for m in logs), logs
    # build times in the marker differ; the IR cache key must not
    keys = [export_key(ResolvedSource("synthetic", d, quick), "fp16", CompressionSpec()) for d in (quick_built, again)]
    assert keys[0] == keys[1]


def test_training_changes_the_cache_key(quick, monkeypatch):
    from dataclasses import replace

    from harness.models.synthetic import cache_key

    before = cache_key(quick)
    monkeypatch.setitem(SYNTHETIC_MODELS, quick, replace(QUICK_SPEC, training=TrainingSpec(steps=4, batch=2,
                                                                                            seq_len=16)))
    assert cache_key(quick) != before


def test_tiny_tokenizer_and_config(tiny):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    assert len(tok) == 8192
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert tok("def f(x):").input_ids[0] == tok.bos_token_id
    assert "<|assistant|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                      add_generation_prompt=True)
    cfg = AutoConfig.from_pretrained(tiny)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.tie_word_embeddings) == (256, 4, False)


def test_draft_shares_tokenizer_and_weights(tiny, cache_dir):
    from safetensors.torch import load_file

    draft = build_synthetic("tiny-draft", cache_dir)
    assert sha256_file(draft / "tokenizer.json") == sha256_file(tiny / "tokenizer.json")
    layers = [json.loads((d / "config.json").read_text())["num_hidden_layers"] for d in (draft, tiny)]
    assert layers == [1, 4]
    dw, tw = load_file(draft / "model.safetensors"), load_file(tiny / "model.safetensors")
    assert not any(k.startswith("model.layers.1.") for k in dw)
    for k in dw:
        assert (dw[k] == tw[k]).all(), k


def test_half_written_synthetic_entry_is_rebuilt(quick, quick_built, tmp_path):
    entry = tmp_path / "synthetic" / quick_built.name
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{")
    stale = tmp_path / "synthetic" / f".tmp-{quick_built.name}-crashed"
    stale.mkdir()
    assert build_synthetic(quick, tmp_path) == entry
    assert (entry / MARKER).is_file()
    assert sha256_file(entry / "model.safetensors") == sha256_file(quick_built / "model.safetensors")
    assert not stale.exists()


@pytest.mark.parametrize("damage", ["truncate", "delete", "grow"])
def test_damaged_built_synthetic_model_is_rebuilt(quick, quick_built, tmp_path, damage):
    entry = tmp_path / "synthetic" / quick_built.name
    shutil.copytree(quick_built, entry)
    weights = entry / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "delete":
        weights.unlink()
    else:
        with open(weights, "ab") as f:
            f.write(b"\0" * 10)
    logs = []
    assert build_synthetic(quick, tmp_path, log=logs.append) == entry
    assert sha256_file(weights) == sha256_file(quick_built / "model.safetensors")
    assert any("damaged" in m for m in logs)


def test_unknown_synthetic_name(tmp_path):
    with pytest.raises(ModelPreparationError, match="known: .*tiny"):
        build_synthetic("huge", tmp_path)
    with pytest.raises(ModelPreparationError, match="unknown synthetic model 'huge'"):
        prepare_model("synthetic:huge", "fp16", CompressionSpec(), tmp_path)


def test_entry_lock_serialises_builders(tmp_path):
    events: list[str] = []
    waiting = threading.Event()

    def builder() -> None:
        with entry_lock(tmp_path / "x", on_wait=waiting.set):
            events.append("second")

    with entry_lock(tmp_path / "x"):
        t = threading.Thread(target=builder)
        t.start()
        assert waiting.wait(5)
        time.sleep(0.1)
        events.append("first")
    t.join(5)
    assert events == ["first", "second"]


# ---------------------------------------------------------------- export


def test_export_command_options():
    int4 = export_command(Path("src"), Path("out"), "int4", CompressionSpec(group_size=64, ratio=0.8, sym=True))
    assert int4[1:5] == ["-m", "optimum.commands.optimum_cli", "export", "openvino"]
    assert int4[int4.index("--weight-format"):] == [
        "--weight-format", "int4", "--group-size", "64", "--ratio", "0.8", "--sym", "out"]
    int8 = export_command(Path("src"), Path("out"), "int8", CompressionSpec(group_size=64))
    assert "--group-size" not in int8 and "--sym" not in int8


def test_last_error_picks_the_exception_line():
    log = "loading...\nTraceback (most recent call last):\n  File x\nnncf.errors.InvalidGroupSizeError: 688 % 128\n\n"
    assert last_error(log) == "nncf.errors.InvalidGroupSizeError: 688 % 128"
    assert last_error("just text\nlast words\n") == "last words"
    assert last_error("") == "no output"


@pytest.mark.integration
@pytest.mark.parametrize("precision", PRECISIONS)
def test_tiny_exports_and_generates(tiny_ir, precision):
    import openvino_genai as og

    pm = tiny_ir[precision]
    assert (pm.precision, pm.source_kind, pm.cache_hit) == (precision, "synthetic", False)
    assert pm.export_s and pm.export_s > 0 and 0 < pm.size_mb < pm.total_size_mb
    for f in ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml", MANIFEST):
        assert (pm.path / f).is_file(), f
    cfg = og.GenerationConfig(max_new_tokens=N_TOKENS, ignore_eos=True, apply_chat_template=False)
    assert cfg.apply_chat_template is False
    res = og.LLMPipeline(str(pm.path), "CPU").generate(["def main():"], cfg)
    assert res.perf_metrics.get_num_generated_tokens() == N_TOKENS
    assert res.texts[0]


@pytest.mark.integration
def test_compressed_sizes_are_ordered(tiny_ir):
    sizes = [tiny_ir[p].size_mb for p in ("int4", "int8", "fp16")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


@pytest.mark.integration
def test_int8_and_int4_of_a_text_model_are_compressed_from_its_fp16_ir(tiny_ir):
    """No second PyTorch export: NNCF compresses the fp16 IR's weights (u8 per channel, u4 in groups) and the
    tokenizers and configs are the fp16 entry's."""
    import openvino as ov

    fp16 = tiny_ir["fp16"].path
    for precision, weight_type in (("int8", "u8"), ("int4", "u4")):
        pm = tiny_ir[precision]
        assert f"{precision} weights compressed by NNCF from the fp16 IR" in pm.notes
        types = {op.get_output_element_type(0).get_type_name() for op in
                 ov.Core().read_model(pm.path / "openvino_model.xml").get_ops() if op.get_type_name() == "Constant"}
        assert weight_type in types, types
        for name in ("openvino_tokenizer.xml", "openvino_detokenizer.bin", "config.json", "generation_config.json"):
            assert (pm.path / name).read_bytes() == (fp16 / name).read_bytes(), name


@pytest.mark.integration
def test_second_prepare_is_a_cache_hit(tiny_ir, cache_dir):
    first = tiny_ir["int4"]
    lines, log = _logger()
    pm = prepare_model("synthetic:tiny", "int4", CompressionSpec(), cache_dir, log=log)
    assert (pm.path, pm.cache_hit, pm.export_s) == (first.path, True, first.export_s)
    assert any("cache hit" in line for line in lines)


@pytest.mark.integration
def test_compression_options_key_int4_only(tiny_ir, cache_dir):
    other = CompressionSpec(group_size=64, ratio=0.9, sym=True)
    assert prepare_model("synthetic:tiny", "int8", other, cache_dir).path == tiny_ir["int8"].path


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["truncate_bin", "delete_manifest"])
def test_damaged_entry_is_rebuilt(tiny_ir, cache_dir, damage):
    precision = {"truncate_bin": "fp16", "delete_manifest": "int8"}[damage]
    entry = tiny_ir[precision].path
    if damage == "truncate_bin":
        with (entry / "openvino_model.bin").open("r+b") as f:
            f.truncate(1000)
    else:
        (entry / MANIFEST).unlink()
    lines, log = _logger()
    pm = prepare_model("synthetic:tiny", precision, CompressionSpec(), cache_dir, log=log)
    assert pm.path == entry and not pm.cache_hit
    assert any("damaged" in line for line in lines), lines
    assert pm.size_mb == pytest.approx(tiny_ir[precision].size_mb)
    validate_ir_dir(entry)
    assert prepare_model("synthetic:tiny", precision, CompressionSpec(), cache_dir).cache_hit


@pytest.mark.integration
def test_validate_ir_dir_reports_truncation(tiny_ir, tmp_path):
    src = tiny_ir["int8"].path
    for f in ("openvino_model.xml", "openvino_model.bin"):
        shutil.copy(src / f, tmp_path / f)
    validate_ir_dir(tmp_path)
    full = (tmp_path / "openvino_model.bin").stat().st_size
    with (tmp_path / "openvino_model.bin").open("r+b") as f:
        f.truncate(full // 2)
    with pytest.raises(ModelPreparationError) as e:
        validate_ir_dir(tmp_path)
    msg = str(e.value)
    assert "openvino_model.bin' is truncated" in msg and f"{full // 2} bytes" in msg
    needed = int(msg.rsplit(" ", 1)[1])
    assert full // 2 < needed <= full
    (tmp_path / "openvino_model.xml").write_text("<net><layers>")
    with pytest.raises(ModelPreparationError, match="does not parse"):
        validate_ir_dir(tmp_path)
    (tmp_path / "openvino_model.bin").unlink()
    with pytest.raises(ModelPreparationError, match="missing"):
        validate_ir_dir(tmp_path)


@pytest.mark.integration
def test_user_ir_dir_is_used_as_is(tiny_ir, cache_dir, tmp_path):
    user = tmp_path / "my-ir"
    shutil.copytree(tiny_ir["int4"].path, user)
    before = sorted((cache_dir / "ir").iterdir())
    assert classify_source(str(user)) == "ir_dir"
    pm = prepare_model(str(user), "int4", CompressionSpec(), cache_dir)
    assert (pm.path, pm.source_kind, pm.cache_hit, pm.export_s) == (user, "ir_dir", False, None)
    assert pm.size_mb == pytest.approx(tiny_ir["int4"].size_mb)
    assert sorted((cache_dir / "ir").iterdir()) == before
    with (user / "openvino_model.bin").open("r+b") as f:
        f.truncate(100)
    with pytest.raises(ModelPreparationError, match="truncated"):
        prepare_model(str(user), "int4", CompressionSpec(), cache_dir)


@pytest.mark.integration
def test_hf_dir_draft_runs_speculative(tiny_ir, cache_dir):
    import openvino_genai as og

    hf_dir = build_synthetic("tiny-draft", cache_dir)
    assert classify_source(str(hf_dir)) == "hf_dir"
    draft = prepare_model(str(hf_dir), "int8", CompressionSpec(), cache_dir)
    assert draft.source_kind == "hf_dir" and draft.path.name.startswith(hf_dir.name + "-int8-")
    assert draft.size_mb < tiny_ir["int8"].size_mb
    pipe = og.LLMPipeline(str(tiny_ir["int8"].path), "CPU", draft_model=og.draft_model(str(draft.path), "CPU"))
    cfg = og.GenerationConfig(max_new_tokens=N_TOKENS, ignore_eos=True, num_assistant_tokens=3,
                              apply_chat_template=False)
    res = pipe.generate(["def main():", "import os"], cfg)
    assert len(res.texts) == 2 and all(res.texts)
    assert 0.0 <= res.extended_perf_metrics.get_draft_acceptance_rate() <= 1.0


@pytest.mark.integration
def test_missing_tokenizer_ir_is_converted(tiny, tmp_path):
    ensure_tokenizers(tiny, tmp_path)
    assert (tmp_path / "openvino_tokenizer.xml").is_file() and (tmp_path / "openvino_detokenizer.xml").is_file()


@pytest.mark.integration
def test_export_failure_is_one_line(tmp_path, cache_dir):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelPreparationError) as e:
        prepare_model(str(bad), "fp16", CompressionSpec(), cache_dir)
    msg = str(e.value)
    assert msg.startswith(f"optimum-cli export of '{bad}' to fp16 failed") and "full log:" in msg
    assert "Traceback" not in msg and "\n" not in msg
    assert not list((cache_dir / "ir").glob(".tmp-*"))


# ---------------------------------------------------------------- source errors


def test_unknown_model_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert classify_source("no-such-org/no-such-model") == "hf_id"
    with pytest.raises(ModelPreparationError, match="model id 'no-such-org/no-such-model' is not in the local"):
        prepare_model("no-such-org/no-such-model", "fp16", CompressionSpec(), tmp_path)


@pytest.mark.parametrize("source", ["/nonexistent/model", "./missing-dir", "just-a-name", ""])
def test_missing_path(source, tmp_path):
    with pytest.raises(ModelPreparationError, match="model path not found"):
        classify_source(source)
    with pytest.raises(ModelPreparationError, match="model path not found"):
        prepare_model(source, "fp16", CompressionSpec(), tmp_path)


def test_directory_without_model_and_bad_precision(tmp_path):
    with pytest.raises(ModelPreparationError, match="neither a Hugging Face model"):
        classify_source(str(tmp_path))
    with pytest.raises(ModelPreparationError, match="unknown precision"):
        prepare_model("synthetic:tiny", "int2", CompressionSpec(), tmp_path)


def test_vlm_text_model_is_the_trained_llama(tiny, cache_dir):
    from safetensors.torch import load_file

    vlm = build_synthetic("tiny-vlm", cache_dir)
    tw = load_file(tiny / "model.safetensors")
    vw: dict = {}
    for f in vlm.glob("*.safetensors"):
        vw.update(load_file(f))
    # saved under transformers' checkpoint names (model.language_model.model.*, language_model.lm_head)
    embed = next(v for k, v in vw.items() if k.endswith("embed_tokens.weight"))
    n = tw["model.embed_tokens.weight"].shape[0]
    assert embed.shape[0] == n + 1  # the image token
    assert (embed[:n] == tw["model.embed_tokens.weight"]).all()
    layer = next(v for k, v in vw.items() if k.endswith("layers.2.mlp.down_proj.weight") and "vision" not in k)
    assert (layer == tw["model.layers.2.mlp.down_proj.weight"]).all()
    head = next(v for k, v in vw.items() if k.endswith("lm_head.weight"))
    assert (head[:n] == tw["lm_head.weight"]).all()


def test_prepare_command_reports_the_built_quality(model_cache):
    from tests.conftest import run_cli

    proc = run_cli("prepare", "synthetic:tiny", cache=model_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tiny: held-out loss" in proc.stderr and "vs unigram" in proc.stderr
    proc = run_cli("prepare", "synthetic:tiny-embed", cache=model_cache)
    assert proc.returncode == 0 and "tiny-embed: random weights (not trained)" in proc.stderr


@pytest.mark.parametrize(("index", "task"), [({"_class_name": "LTXPipeline"}, "text-to-video"),
                                             ({"_class_name": "StableDiffusionPipeline"}, "text-to-image"),
                                             ({}, "text-to-image")])
def test_a_diffusers_pipeline_exports_by_its_class(tmp_path, index, task):
    from harness.models.export import export_task

    (tmp_path / "model_index.json").write_text(json.dumps(index))
    assert export_task(tmp_path) == task
    assert export_command(tmp_path, tmp_path / "out", "int8", CompressionSpec())[7:9] == ["--task", task]


def test_a_model_index_that_is_not_json_is_one_line(tmp_path):
    from harness.core.errors import HarnessInputError
    from harness.models.export import export_task

    (tmp_path / "model_index.json").write_text("not json")
    with pytest.raises(HarnessInputError, match="model_index.json: line 1, column 1: model file not valid JSON"):
        export_task(tmp_path)


@pytest.mark.integration  # two Unigram trainings: seconds on an idle machine, minutes on a busy one
def test_t5_tokenizer_builds_are_identical():
    from harness.models.synthetic import TOKENIZER, build_t5_tokenizer

    # the Unigram trainer's scores vary in their last bits between runs; the built vocabulary must not
    a, b = (build_t5_tokenizer(TOKENIZER, 1024) for _ in range(2))
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert len(a) == 1024 and a.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert a("a  cat\n").input_ids == a("a cat").input_ids and a("a cat").input_ids[-1] == 1
